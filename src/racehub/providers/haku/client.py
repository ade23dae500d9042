"""Haku adapter: ``https://api.hakuapp.com``, client-credentials tokens sent raw.

Credentials: ``client_id``, ``client_secret``. The token comes from
``https://prod-auth.hakuapp.com/oauth2/token`` for the production API; any other base URL
(staging, a gateway) is asked at ``<base>/oauth2/token``; the ``token_url`` setting
overrides both. It is kept on the instance; a 401 fetches a new one once and the call is
sent again.

Budget: about 500 calls an hour, and the participants list lacks bib, chip and birth date,
so every participant costs a detail call. The adapter therefore reads the list newest
change first and, with ``since``, stops at the first older row and calls for details only
for registrations new or changed since then.

Settings (all optional): ``token_url``, ``per_page``, ``max_pages``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from racehub.providers.base import (
    Capability,
    CredentialCheck,
    Page,
    ProviderAdapter,
    ProviderEvent,
    ProviderParticipant,
    ProviderWithdrawal,
    RowProblem,
)
from racehub.providers.errors import AuthFailed, BadData, NotFound
from racehub.providers.haku import mapping as m
from racehub.providers.haku.settings import HakuSettings
from racehub.providers.http import Redactor
from racehub.providers.oauth import OAuthToken
from racehub.providers.ratelimit import RateLimit


class HakuAdapter(ProviderAdapter):
    provider = "HAKU"
    capabilities = frozenset({
        Capability.CHECK_CREDENTIALS, Capability.LIST_EVENTS, Capability.LIST_PARTICIPANTS,
        Capability.LIST_WITHDRAWN,
    })
    credential_fields = ("client_id", "client_secret")
    default_base_url = m.PRODUCTION_BASE_URL
    default_rate_limit = RateLimit(per_second=m.CALLS_PER_HOUR / 3600,
                                   burst=int(m.ASSUMED["rate_burst"]))
    default_field_mapping = m.DEFAULT_FIELD_MAPPING
    settings_model = HakuSettings
    settings: HakuSettings
    auth_calls = 1  # a token per adapter (one per run)

    @classmethod
    def participant_page_size(cls, settings: HakuSettings) -> int:
        return cls.bounded_page_size(settings.per_page, int(m.ASSUMED["per_page"]))

    @classmethod
    def estimated_read_calls(cls, settings: Any, *, rows: int) -> int:
        # Both lists page over the same registrations list; each registration read costs
        # a detail call besides (the list rows lack the registrant's answers).
        return super().estimated_read_calls(settings, rows=rows) + max(0, rows)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.settings.token_url:
            token_url = self.settings.token_url
        elif self.base_url == m.PRODUCTION_BASE_URL:
            token_url = m.PRODUCTION_TOKEN_URL
        else:
            token_url = f"{self.base_url}/{m.ASSUMED['token_path']}"
        pair = f"{self.credentials['client_id']}:{self.credentials['client_secret']}"
        self._basic = base64.b64encode(pair.encode()).decode()
        self.http.redact = Redactor([*self.credentials.values(), self._basic])
        # Sent raw: Haku wants no "Bearer".
        self.token = OAuthToken(self, url=token_url, endpoint="POST oauth2/token",
                                default_lifetime=3600.0, header=str, secrets=[self._basic])
        self.per_page = self.bounded_page_size(self.settings.per_page, int(m.ASSUMED["per_page"]))
        self.detail_calls = 0  # registration detail requests made (sync statistics)

    @classmethod
    def participant_from_raw(cls, raw: Any, event_ref: str) -> ProviderParticipant:
        # Kept as {"row": list row, "detail": registration detail} (see mapping).
        record = raw if isinstance(raw, dict) else {}
        return m.map_participant(record.get("row"), record.get("detail"), event_ref)

    # -- tokens ---------------------------------------------------------------------------
    def refresh_auth(self) -> None:
        """A new client-credentials token. Called by the HTTP layer on a 401."""
        self.token.refuse_if_fetching()
        self.token.fetch({"grant_type": m.GRANT},
                         headers={"Authorization": f"Basic {self._basic}"})

    def inspect_response(self, status: int, body: Any) -> None:
        """The token endpoint's ``{"error": "invalid_client"}`` names what was refused."""
        if status in (400, 401) and isinstance(body, dict) and isinstance(body.get("error"), str):
            detail = body.get("error_description")
            self.token.error = body["error"] + (f": {detail}" if detail else "")
            raise AuthFailed(self.token.error)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        if self.token.due:
            self.refresh_auth()
        return self.http.request_json("GET", path, params=params)

    def _list(self, path: str, params: dict[str, Any]) -> list[Any]:
        body = self._get(path, params)
        if not isinstance(body, list):
            raise BadData(f"GET {path}: expected a JSON array", provider=self.provider)
        return body

    # -- credentials ----------------------------------------------------------------------
    def check_credentials(self) -> CredentialCheck:
        try:
            self.refresh_auth()
            self._list("events", {"page": 1, "per_page": 1, **m.EVENTS_ORDER})
        except (AuthFailed, NotFound) as exc:
            return CredentialCheck(False, exc.message)
        return CredentialCheck(True, "token issued; events readable")

    # -- events ---------------------------------------------------------------------------
    def list_events(self, since: datetime | None = None) -> Iterator[Page[ProviderEvent]]:
        guard = self.page_guard("GET events")
        for number in guard:
            rows = self._list("events", {"page": number, "per_page": self.per_page,
                                         **m.EVENTS_ORDER})
            items: list[ProviderEvent] = []
            problems: list[RowProblem] = []
            for i, row in enumerate(rows):
                try:
                    event = m.map_event(row)
                except m.MappingError as exc:
                    problems.append(RowProblem.of(i, exc, row, "id"))
                    continue
                if since is None or event.modified_at is None or event.modified_at >= since:
                    items.append(event)
            # An empty page ends the list, never a short one: the real per-page cap is
            # unknown (25 in the spec, 100-500 in use).
            is_last = guard.done(rows)
            yield Page(items, problems, number=number, is_last=is_last, raw=rows)
            if is_last:
                return

    # -- participants ---------------------------------------------------------------------
    def _changed_rows(self, event_id: str, since: datetime | None
                      ) -> Iterator[tuple[int, list[tuple[int, Any]], bool, Any]]:
        """Pages of the participants list, newest change first, as (page number, [(index in
        the reply, row)], is last, reply): only rows changed since ``since`` (inclusive) and
        not already given in the same version.

        A row changed while we page jumps to the top, where we have already been (the rows
        it passes only shift down, so they are seen again, never skipped). So after more
        than one page the top of the list is read again, down to the newest change of the
        first reply: one extra call per run, none for a one-page read.
        """
        path = f"events/{event_id}/participants"
        given: dict[str, datetime | None] = {}  # registration_number -> version given

        def fresh(rows: list[Any], older: Callable[[datetime], bool]
                  ) -> tuple[list[tuple[int, Any]], bool]:
            """The rows not yet given, and whether a row ``older`` than wanted was met
            (sorted newest first: every row after it is older too)."""
            out: list[tuple[int, Any]] = []
            for i, row in enumerate(rows):
                changed = m.updated_at(row)
                if changed is not None and older(changed):
                    return out, True
                key = str(row.get("registration_number")) if isinstance(row, dict) else None
                if key is not None and key in given and given[key] == changed:
                    continue
                if key is not None:
                    given[key] = changed
                out.append((i, row))
            return out, False

        def pages(older: Callable[[datetime], bool], first_number: int, final: bool
                  ) -> Iterator[tuple[int, list[tuple[int, Any]], bool, Any]]:
            guard = self.page_guard(f"GET {path}")
            for number in guard:
                rows = self._list(path, {"page": number, "per_page": self.per_page,
                                         **m.PARTICIPANTS_ORDER})
                out, met_older = fresh(rows, older)
                # An empty page ends the list, never a short one (the cap is unknown).
                done = guard.done(rows) or met_older
                # The first page alone is a consistent view: no second pass after it.
                last = done and (final or number == 1)
                yield first_number + number - 1, out, last, rows
                if done:
                    return

        read = 0
        watermark: datetime | None = None
        for number, out, last, rows in pages(lambda t: since is not None and t < since, 1,
                                             False):
            read = number
            if number == 1:
                watermark = max((t for t in map(m.updated_at, rows) if t is not None),
                                default=None)
            yield number, out, last, rows
        if read <= 1 or watermark is None:
            return
        floor = max(watermark, since) if since is not None else watermark
        yield from pages(lambda t: t <= floor, read + 1, True)

    def list_participants(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderParticipant]]:
        event_id = m.ref_text(event_ref, "event_ref")
        for number, rows, is_last, raw in self._changed_rows(event_id, since):
            items: list[ProviderParticipant] = []
            problems: list[RowProblem] = []
            for i, row in rows:
                if m.is_cancelled(row):
                    continue  # a withdrawal: list_withdrawn reports it
                try:
                    registration = m.ref_text(row.get("registration_number")
                                              if isinstance(row, dict) else None,
                                              "registration_number")
                except m.MappingError as exc:
                    problems.append(RowProblem.of(i, exc, row, "registration_number"))
                    continue
                try:
                    detail = self._detail(event_id, registration)
                except NotFound as exc:  # gone between the list and the detail call
                    problems.append(RowProblem(i, f"registration detail: {exc.message}",
                                               ref=registration, field="registration_number",
                                               raw=row))
                    continue
                try:
                    items.append(m.map_participant(row, detail, event_id))
                except (m.MappingError, TypeError, ValueError, AttributeError) as exc:
                    problems.append(RowProblem.of(i, exc, row, "registration_number"))
            yield Page(items, problems, number=number, is_last=is_last, raw=raw)

    def _detail(self, event_id: str, registration: str) -> Any:
        self.detail_calls += 1
        return self._get(f"events/{event_id}/registrations/{registration}")

    def list_withdrawn(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderWithdrawal]]:
        event_id = m.ref_text(event_ref, "event_ref")
        for number, rows, is_last, raw in self._changed_rows(event_id, since):
            items: list[ProviderWithdrawal] = []
            problems: list[RowProblem] = []
            for i, row in rows:
                if not m.is_cancelled(row):
                    continue
                try:
                    items.append(m.map_withdrawal(row, event_id))
                except m.MappingError as exc:
                    problems.append(RowProblem.of(i, exc, row, "registration_number"))
            yield Page(items, problems, number=number, is_last=is_last, raw=raw)


__all__ = ["HakuAdapter"]
