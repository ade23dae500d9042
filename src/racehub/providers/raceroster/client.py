"""Race Roster adapter: ``https://raceroster.com/api/v1``, JSON, OAuth bearer tokens.

Credentials: ``client_id``, ``client_secret``, ``username``, ``password``. The adapter asks
the token endpoint (``<base>/../oauth/authorize``, or the ``token_url`` setting) for a
token on its first call and keeps it, with the refresh token, on the instance. A 401 on any
call refreshes once (refresh grant, falling back to the password grant) and the call is
sent again, so paging continues where it was.

Results come from the public v2 results API (no login) unless the ``results_api`` setting
says ``v1`` (the partner endpoint, assumed). v2 pages by ``start``/``limit`` up to
``meta.totalResults``; its rows carry no bib, so they are returned with what they carry
(ids, names, gender, times, places; other columns in ``ProviderResult.extra``) and
matching them to participants is left to the results pull.

Every list ends on an empty page, a page with nothing new or the stated total (see
``base.PageGuard``), never on a page merely shorter than asked: the real caps are unknown.

Settings (all optional): ``token_url``, ``page_size`` (registrations per request, capped
at the assumed maximum), ``results_api`` (``v2``/``v1``), ``results_base_url`` (the v2
host), ``result_event_ids`` (``eventId = resultEventId``), ``results_per_page`` (v1),
``max_pages`` (a bound on any paging loop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urljoin

from racehub.providers.base import (
    Capability,
    CredentialCheck,
    Page,
    ProviderAdapter,
    ProviderEvent,
    ProviderParticipant,
    ProviderResult,
    ProviderWithdrawal,
    RowProblem,
)
from racehub.providers.errors import AuthFailed, BadData, NotFound
from racehub.providers.oauth import OAuthToken
from racehub.providers.raceroster import mapping as m
from racehub.providers.raceroster.settings import RaceRosterSettings
from racehub.providers.ratelimit import RateLimit

T = TypeVar("T")

# OAuth error codes that mean "these credentials/tokens are not good" (RFC 6749 5.2, 6750).
AUTH_ERROR_CODES = frozenset({"invalid_client", "invalid_grant", "unauthorized_client",
                              "invalid_token", "access_denied", "invalid_request"})


class RaceRosterAdapter(ProviderAdapter):
    provider = "RACE_ROSTER"
    capabilities = frozenset({
        Capability.CHECK_CREDENTIALS, Capability.LIST_EVENTS, Capability.LIST_PARTICIPANTS,
        Capability.LIST_WITHDRAWN, Capability.GET_RESULTS,
    })
    credential_fields = ("client_id", "client_secret", "username", "password")
    default_base_url = "https://raceroster.com/api/v1"
    default_rate_limit = RateLimit(per_second=float(m.ASSUMED["rate_per_second"]),
                                   burst=int(m.ASSUMED["rate_burst"]))
    default_field_mapping = m.DEFAULT_FIELD_MAPPING
    settings_model = RaceRosterSettings
    settings: RaceRosterSettings
    auth_calls = 1  # a token per adapter (one per run)

    @classmethod
    def participant_page_size(cls, settings: RaceRosterSettings) -> int:
        # Each page re-reads the previous page's last row (see _registrations).
        return cls.bounded_page_size(settings.page_size, int(m.ASSUMED["registrations_limit"]),
                                     minimum=2) - 1

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = OAuthToken(
            self, url=(self.settings.token_url
                       or urljoin(self.base_url + "/", m.TOKEN_PATH)),
            endpoint="POST oauth/authorize",
            default_lifetime=float(m.ASSUMED["default_token_lifetime"]))
        # At least 2: each page re-reads the previous page's last row (see _registrations).
        self.page_size = self.bounded_page_size(
            self.settings.page_size, int(m.ASSUMED["registrations_limit"]), minimum=2)

    @classmethod
    def participant_from_raw(cls, raw: Any, event_ref: str) -> ProviderParticipant:
        return m.map_registration(raw, event_ref.partition(":")[0])

    # -- tokens ---------------------------------------------------------------------------
    def _token_call(self, form: dict[str, str]) -> None:
        self.token.fetch(form, unwrap=m.unwrap_token)

    def _password_grant(self) -> None:
        self._token_call({"grant_type": m.GRANT_PASSWORD,
                          "client_id": self.credentials["client_id"],
                          "client_secret": self.credentials["client_secret"],
                          "username": self.credentials["username"],
                          "password": self.credentials["password"]})

    def refresh_auth(self) -> None:
        """A new token: by the refresh token when we have one, else (or if that is refused)
        by the password grant. Called by the HTTP layer on a 401."""
        self.token.refuse_if_fetching()
        if self.token.refresh_token:
            try:
                self._token_call({"grant_type": m.GRANT_REFRESH,
                                  "refresh_token": self.token.refresh_token,
                                  "client_id": self.credentials["client_id"],
                                  "client_secret": self.credentials["client_secret"]})
                return
            except (AuthFailed, BadData):
                self.token.refresh_token = None  # expired or revoked: log in again
        self._password_grant()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        if self.token.due:
            self.refresh_auth()
        return self.http.request_json("GET", path, params=params)

    def inspect_response(self, status: int, body: Any) -> None:
        """OAuth errors ``{error, error_description, hint}`` name what was refused."""
        if status not in (400, 401, 403) or not isinstance(body, dict):
            return
        error = body.get("error")
        if not isinstance(error, str):
            return
        detail = "; ".join(str(body[k]) for k in ("error_description", "hint") if body.get(k))
        text = f"{error}" + (f": {detail}" if detail else "")
        if error in AUTH_ERROR_CODES or status in (401, 403):
            self.token.error = text
            raise AuthFailed(text)
        raise BadData(text)

    # -- credentials ----------------------------------------------------------------------
    def check_credentials(self) -> CredentialCheck:
        try:
            self._password_grant()
            self._get("events", {"offset": 0, "limit": 1})
        except (AuthFailed, NotFound) as exc:
            return CredentialCheck(False, exc.message)
        return CredentialCheck(True, "token issued; events readable",
                               account=self.credentials["username"])

    # -- events ---------------------------------------------------------------------------
    def list_events(self, since: datetime | None = None) -> Iterator[Page[ProviderEvent]]:
        limit = int(m.ASSUMED["events_limit"])
        guard = self.page_guard("GET events")
        offset = 0
        for number in guard:
            body = self._get("events", {"offset": offset, "limit": limit,
                                        "sort": m.EVENTS_SORT, "order": "asc"})
            rows = self._data_list(body, "GET events")
            offset += len(rows)
            items: list[ProviderEvent] = []
            problems: list[RowProblem] = []
            for i, row in enumerate(rows):
                try:
                    events = m.map_event(row)
                except m.MappingError as exc:
                    problems.append(RowProblem.of(i, exc, row, "eventId"))
                    continue
                items += [e for e in events
                          if since is None or e.modified_at is None or e.modified_at >= since]
            # An empty page ends the list: a server capping pages below `limit` would
            # make a short page look like the last one.
            is_last = guard.done(rows)
            yield Page(items, problems, number=number, is_last=is_last, raw=body)
            if is_last:
                return

    # -- registrations --------------------------------------------------------------------
    def list_participants(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderParticipant]]:
        event_id, sub_event_id = m.split_event_ref(event_ref)
        for number, rows, first, is_last, body in self._registrations(event_id, since):
            page = self._map_rows(
                rows, lambda r: m.map_registration(r, event_id), number, is_last, body,
                first=first,
                keep=lambda r: not m.is_withdrawn(r) and self._in_sub_event(r, sub_event_id))
            page.items = [p for p in page.items
                          if since is None or p.modified_at is None or p.modified_at >= since]
            yield page

    def list_withdrawn(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderWithdrawal]]:
        event_id, sub_event_id = m.split_event_ref(event_ref)
        for number, rows, first, is_last, body in self._registrations(event_id, since):
            page = self._map_rows(
                rows, lambda r: m.map_withdrawal(r, event_id), number, is_last, body,
                first=first,
                keep=lambda r: m.is_withdrawn(r) and self._in_sub_event(r, sub_event_id))
            page.items = [w for w in page.items
                          if since is None or w.withdrawn_at is None or w.withdrawn_at >= since]
            yield page

    @staticmethod
    def _in_sub_event(row: Any, sub_event_id: str | None) -> bool:
        if sub_event_id is None or not isinstance(row, dict):
            return True
        # A row whose subEventId is unreadable is kept: its mapping reports the problem.
        value = row.get("subEventId")
        return not str(value).isdigit() or str(value) == sub_event_id

    def _registrations(self, event_id: str, since: datetime | None
                       ) -> Iterator[tuple[int, list[Any], int, bool, Any]]:
        """Offset pages of an event's registrations, each row once, none skipped: (page
        number, rows not yet seen, their index in the reply, is last, the reply).

        Offsets shift when registrations before our position disappear between two
        requests. So rows are read in registrationId order and each request starts one row
        early, at the previous page's last row: a page that does not reach back to the last
        id we saw means rows moved up past us, and we step back a page and read again.
        """
        path = str(m.ASSUMED["registrations_path"]).format(event_id=event_id)
        offset, last_id, number = 0, -1, 0
        guard = self.page_guard(f"GET {path}")
        for _ in guard:
            params: dict[str, Any] = {"offset": offset, "limit": self.page_size,
                                      **m.ASSUMED["registrations_sort"]}
            if since is not None:
                params[str(m.ASSUMED["modified_since_param"])] = m.format_time(since)
            body = self._get(path, params)
            rows = self._data_list(body, f"GET {path}")
            ids = [self._row_id(r) for r in rows]
            # Position of the last row we have already seen (by id; ids only grow).
            seen_up_to = max((i for i, rid in enumerate(ids) if rid is not None
                              and rid <= last_id), default=-1)
            # Not even the row we started on came back (an empty page included): the
            # list moved up past us.
            if offset > 0 and seen_up_to < 0:
                offset = max(0, offset - self.page_size)
                continue
            fresh = rows[seen_up_to + 1:]
            last_id = max([last_id, *(rid for rid in ids if rid is not None)])
            # The end: a page with nothing past the row we started on (or an empty one).
            # Never "shorter than page_size": the server's real cap may be smaller.
            is_last = guard.done(rows, new=len(fresh))
            number += 1
            yield number, fresh, seen_up_to + 1, is_last, body
            if is_last:
                return
            offset += len(rows) - 1

    @staticmethod
    def _row_id(row: Any) -> int | None:
        value = row.get("registrationId") if isinstance(row, dict) else None
        return int(value) if isinstance(value, int | str) and str(value).isdigit() else None

    # -- results --------------------------------------------------------------------------
    def get_results(self, event_ref: str) -> Iterator[Page[ProviderResult]]:
        event_id, sub_event_id = m.split_event_ref(event_ref)
        if sub_event_id is None:
            raise BadData(f"results need a sub-event: 'eventId:subEventId', got {event_ref!r}",
                          provider=self.provider)
        if self.settings.results_api == "v2":
            yield from self._results_v2(event_ref, event_id, sub_event_id)
            return
        path = str(m.ASSUMED["results_path"]).format(event_id=event_id)
        per_page = self.settings.results_per_page or int(m.ASSUMED["results_per_page"])
        guard = self.page_guard(f"GET {path}")
        for number in guard:
            body = self._get(path, {"resultsRaceId": sub_event_id, "page": number,
                                    "perPage": per_page})
            rows = self._data_list(body, f"GET {path}")
            is_last = guard.done(rows)
            yield self._map_rows(rows, lambda r: m.map_result(r, event_ref), number, is_last,
                                 body, ref_key=m.ASSUMED["result_fields"]["ref"])
            if is_last:
                return

    def _results_v2(self, event_ref: str, event_id: str, sub_event_id: str
                    ) -> Iterator[Page[ProviderResult]]:
        """The public results API: ``start``/``limit`` pages up to ``meta.totalResults``."""
        base = (self.settings.results_base_url or m.RESULTS_V2_BASE_URL).rstrip("/")
        result_event_id = self.settings.result_event_ids.get(event_id) or event_id
        path = m.RESULTS_V2_PATH.format(result_event_id=result_event_id,
                                        sub_event_id=sub_event_id)
        limit = self.bounded_page_size(self.settings.results_limit, m.RESULTS_V2_MAX_LIMIT)
        guard = self.page_guard(f"GET {path}")
        start = 0
        for number in guard:
            with self._without_login():
                body = self.http.request_json("GET", path, url=f"{base}/{path}",
                                              params={"start": start, "limit": limit})
            rows = self._data_list(body, f"GET {path}")
            meta = body.get("meta") if isinstance(body, dict) else None
            total = meta.get("totalResults") if isinstance(meta, dict) else None
            total = total if isinstance(total, int) and not isinstance(total, bool) else None
            start += len(rows)
            is_last = guard.done(rows, total=total)
            page = self._map_rows(rows, lambda r: m.map_result_v2(r, event_ref), number,
                                  is_last, body, ref_key=m.ASSUMED["results_v2_fields"]["ref"])
            page.total = total
            yield page
            if is_last:
                return

    @contextmanager
    def _without_login(self) -> Iterator[None]:
        """The public results host needs no login: our token is not sent there."""
        headers = self.http.client.headers
        token = headers.pop("Authorization", None)
        try:
            yield
        finally:
            if token is not None and "Authorization" not in headers:
                headers["Authorization"] = token

    # -- helpers --------------------------------------------------------------------------
    def _data_list(self, body: Any, where: str) -> list[Any]:
        rows = m.unwrap(body)
        if not isinstance(rows, list):
            raise BadData(f"{where}: expected {{\"data\": [...]}}", provider=self.provider)
        return rows


    def _map_rows(self, rows: list[Any], mapper: Callable[[Any], T], number: int,
                  is_last: bool, raw: Any, *, ref_key: str = "registrationId", first: int = 0,
                  keep: Callable[[Any], bool] | None = None) -> Page[T]:
        """Map the rows ``keep`` accepts; problems name the row by its index in the reply
        (``first`` is the index of ``rows[0]``)."""
        items: list[T] = []
        problems: list[RowProblem] = []
        for i, row in enumerate(rows, start=first):
            if keep is not None and not keep(row):
                continue
            try:
                items.append(mapper(row))
            except (m.MappingError, TypeError, ValueError, AttributeError, KeyError) as exc:
                # A row of an unexpected shape is that row's problem, not the page's.
                problems.append(RowProblem.of(i, exc, row, ref_key))
        return Page(items, problems, number=number, is_last=is_last, raw=raw)


__all__ = ["RaceRosterAdapter"]
