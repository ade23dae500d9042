"""RunSignUp adapter: ``https://runsignup.com/Rest``, ``format=json``.

Credentials: ``api_key`` + ``api_secret`` (the secret sent in the X-RSU-API-SECRET header;
setting ``auth_style: "query"`` sends both as query parameters instead), or an OAuth2
``access_token`` (sent as a bearer token; RunSignUp's tokens last about a month).

Settings (all optional): ``race_ids`` (list: the races this connection reads; default the
races of the connection's ``eventIds``; without either ``list_events`` pages through
``GET /races``, ``races_per_page`` at a time, <= 1000),
``results_per_page`` (participants, <= 2500),
``max_pages`` (a bound on any paging loop), ``individual_result_set_id`` (post results into
this set instead of creating one), ``result_set_name``, ``time_zone`` (IANA name: the zone
of races that give none; without it their event times stay unset), ``mapping_sources``
(the paths the connection's mapping reads, set by ``sync.adapters``: question responses
are asked for with ``include_questions=T`` when one is read).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from racehub.providers.base import (
    Capability,
    CredentialCheck,
    Page,
    ProviderAdapter,
    ProviderEvent,
    ProviderParticipant,
    ProviderResult,
    ProviderWithdrawal,
    PushReport,
    RowProblem,
)
from racehub.providers.errors import (
    AuthFailed,
    BadData,
    NotFound,
    Throttled,
)
from racehub.providers.ratelimit import RateLimit
from racehub.providers.runsignup import mapping as m
from racehub.providers.runsignup.settings import RunSignUpSettings

T = TypeVar("T")


class RunSignUpAdapter(ProviderAdapter):
    provider = "RUNSIGNUP"
    capabilities = frozenset({
        Capability.CHECK_CREDENTIALS, Capability.LIST_EVENTS, Capability.LIST_PARTICIPANTS,
        Capability.LIST_WITHDRAWN, Capability.PUSH_PARTICIPANTS, Capability.GET_RESULTS,
        Capability.POST_RESULTS,
    })
    # api_key + api_secret, or an OAuth access_token instead: checked in __init__.
    optional_credential_fields = ("api_key", "api_secret", "access_token")
    default_base_url = "https://runsignup.com/Rest"
    default_rate_limit = RateLimit(per_second=float(m.ASSUMED["rate_per_second"]),
                                   burst=int(m.ASSUMED["rate_burst"]))
    default_field_mapping = m.DEFAULT_FIELD_MAPPING
    settings_model = RunSignUpSettings
    settings: RunSignUpSettings

    @classmethod
    def participant_page_size(cls, settings: RunSignUpSettings) -> int:
        return cls.bounded_page_size(settings.results_per_page, m.MAX_PARTICIPANTS_PER_PAGE)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.http.default_params["format"] = "json"
        self._authenticate()
        self.per_page = self.bounded_page_size(self.settings.results_per_page,
                                       m.MAX_PARTICIPANTS_PER_PAGE)
        # For races that give no time zone (see mapping.ASSUMED["race_time_zone"]); the
        # settings model checked the name.
        self.fallback_zone = m.setting_zone(self.settings.time_zone)

    @classmethod
    def participant_from_raw(cls, raw: Any, event_ref: str) -> ProviderParticipant:
        race_id = event_ref.partition(":")[0] if event_ref else ""
        return m.map_participant(raw, race_id or "0")

    def _authenticate(self) -> None:
        """An OAuth access token when the connection has one; else the API key and secret,
        the secret in the X-RSU-API-SECRET header unless ``auth_style`` is "query"."""
        token = self.credentials.get("access_token", "").strip()
        if token:
            self.http.client.headers["Authorization"] = f"Bearer {token}"
            return
        key = self.credentials.get("api_key", "").strip()
        secret = self.credentials.get("api_secret", "").strip()
        if not (key and secret):
            missing = [name for name, v in (("api_key", key), ("api_secret", secret)) if not v]
            raise AuthFailed(f"missing credential field(s): {', '.join(missing)} (or give an "
                             "OAuth access_token instead)", provider=self.provider)
        if self.settings.auth_style == "query":
            self.http.default_params.update({"api_key": key, "api_secret": secret})
        else:
            self.http.default_params["rsu_api_key"] = key
            self.http.client.headers[m.SECRET_HEADER] = secret

    # -- errors inside HTTP 200 ----------------------------------------------------------
    def inspect_response(self, status: int, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
            return
        error = body["error"]
        try:
            code = int(error.get("error_code"))
        except (TypeError, ValueError):
            code = -1
        text = f"RunSignUp error {code}: {error.get('error_msg') or 'no message'}"
        if code == m.ERROR_THROTTLED:
            raise Throttled(text)  # http.py adds Retry-After if the response had one
        if code in m.AUTH_ERRORS:
            raise AuthFailed(text)
        if code in m.NOT_FOUND_ERRORS:
            raise NotFound(text)
        raise BadData(text)

    # -- credentials ----------------------------------------------------------------------
    def check_credentials(self) -> CredentialCheck:
        """Reads one participant of each event the connection names (its ``eventIds``), so
        an event that does not exist, or a race the key has no rights on, fails the test;
        without events, of the first event of its first ``race_ids`` race; else the key
        alone (``/races``)."""
        try:
            targets = self._configured_events()
            if not targets and (race_ids := self._race_ids()):
                targets = [(race_ids[0], self._first_event_id(race_ids[0]))]
            for race_id, event_id in targets:
                # Reading participants needs the key's rights on the race, not just a valid key.
                self.http.request_json("GET", f"race/{race_id}/participants", params={
                    "event_id": event_id, "page": 1, "results_per_page": 1})
            if targets:
                return CredentialCheck(True, "key accepted; " + ", ".join(
                    f"event {m.event_ref(r, e)}" for r, e in targets) + " readable")
            self.http.request_json("GET", "races", params={"page": 1, "results_per_page": 1})
            return CredentialCheck(True, "key accepted")
        except (AuthFailed, NotFound) as exc:
            return CredentialCheck(False, exc.message)
        except ValueError as exc:  # a configured event ref that is not race_id:event_id
            return CredentialCheck(False, str(exc))

    def _configured_events(self) -> list[tuple[str, str]]:
        """The connection's ``eventIds`` that name an event (``race_id:event_id``)."""
        return list(dict.fromkeys(m.split_event_ref(ref) for ref in self.settings.eventIds
                                  if ":" in ref))

    def _first_event_id(self, race_id: str) -> str:
        race = self._get_race(race_id)
        events = race.get("events") or []
        if not events:
            raise NotFound(f"race {race_id} has no events", provider=self.provider)
        return str(events[0].get("event_id"))

    # -- events ---------------------------------------------------------------------------
    def _race_ids(self) -> list[str]:
        """``race_ids``, else the races of the connection's events (``race_id:event_id``
        refs, or bare race ids), in order, once each."""
        ids = self.settings.race_ids or [ref.split(":")[0] for ref in self.settings.eventIds]
        return list(dict.fromkeys(i.strip() for i in ids if i.strip()))

    def _get_race(self, race_id: str) -> dict[str, Any]:
        body = self.http.request_json("GET", f"race/{race_id}", params={"events": "T"})
        race = body.get("race") if isinstance(body, dict) else None
        if not isinstance(race, dict):
            raise BadData(f"GET race/{race_id}: no 'race' object in the reply",
                          provider=self.provider)
        return race

    def list_events(self, since: datetime | None = None) -> Iterator[Page[ProviderEvent]]:
        race_ids = self._race_ids()
        if race_ids:
            for number, race_id in enumerate(race_ids, start=1):
                race = self._get_race(race_id)
                yield self._events_page([race], since, number, number == len(race_ids), race)
            return
        per_page = self.bounded_page_size(self.settings.races_per_page, m.MAX_RACES_PER_PAGE)
        guard = self.page_guard("GET races")
        for number in guard:
            body = self.http.request_json("GET", "races", params={
                "events": "T", "page": number, "results_per_page": per_page})
            blocks = body.get("races") if isinstance(body, dict) else None
            if not isinstance(blocks, list):
                raise BadData("GET races: no 'races' list in the reply", provider=self.provider)
            # RunSignUp states no total: a short (or empty) page is the last (documented).
            is_last = guard.done(blocks) or len(blocks) < per_page
            races = [self._with_events(b.get("race") if isinstance(b, dict) else b)
                     for b in blocks]
            yield self._events_page(races, since, number, is_last, body)
            if is_last:
                return

    def _with_events(self, race: Any) -> Any:
        """A ``/races`` row without its ``events`` list (seen in real replies, even with
        ``events=T``) gets them from ``GET /race/{id}``; if that has none either, the
        race stays without and becomes a problem naming it."""
        if not isinstance(race, dict) or isinstance(race.get("events"), list):
            return race
        race_id = str(race.get("race_id") or "")
        if not race_id.isdigit():
            return race
        try:
            full = self._get_race(race_id)
        except (NotFound, BadData):
            return race
        events = full.get("events")
        return {**race, "events": events} if isinstance(events, list) else race

    def _events_page(self, races: list[Any], since: datetime | None, number: int,
                     is_last: bool, raw: Any) -> Page[ProviderEvent]:
        items: list[ProviderEvent] = []
        problems: list[RowProblem] = []
        warnings: list[RowProblem] = []
        for i, race in enumerate(races):
            ref = str(race.get("race_id")) if isinstance(race, dict) else None
            try:
                if not isinstance(race, dict):
                    raise m.MappingError("race", "expected an object")
                noted: list[tuple[str, str]] = []

                def note(field: str, message: str, noted: list[tuple[str, str]] = noted) -> None:
                    noted.append((field, message))

                events = m.map_race_events(race, fallback_zone=self.fallback_zone, warn=note)
            except m.MappingError as exc:
                problems.append(RowProblem(i, exc.message, ref=ref, field=exc.field, raw=race))
                continue
            warnings += [RowProblem(i, msg, ref=ref, field=field) for field, msg in noted]
            items.extend(e for e in events
                         if since is None or e.modified_at is None or e.modified_at >= since)
        return Page(items, problems, warnings, number=number, is_last=is_last, raw=raw)

    # -- participants ---------------------------------------------------------------------
    def list_participants(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderParticipant]]:
        race_id, event_id = m.split_event_ref(event_ref)
        # Keyset paging on registration_id while every row has one: rows added, changed or
        # removed while we page neither shift later pages nor get read twice (page numbers
        # would). Rows without a registration id (seen in real replies) give no key to page
        # on: from the first page with one, the read keeps its last key and pages by
        # number, so such a row never ends the read early.
        after: str | None = None
        page_no = 1
        keyed = True
        guard = self.page_guard(f"GET race/{race_id}/participants of event {event_id}")
        for number in guard:
            params: dict[str, Any] = {
                "event_id": event_id, "page": page_no, "results_per_page": self.per_page,
                "sort": m.SORT_BY_REGISTRATION,
            }
            if self._include_questions():
                params["include_questions"] = "T"
            if after is not None:
                params["after_registration_id"] = after
            if since is not None:
                params["modified_after_timestamp"] = int(since.timestamp())
            body = self.http.request_json("GET", f"race/{race_id}/participants", params=params)
            rows = self._event_rows(body, event_id, f"GET race/{race_id}/participants")
            # RunSignUp states no total: a short (or empty) page is the last (documented);
            # a page repeating the one before is an error (RepeatedPage), not more rows.
            is_last = guard.done(rows) or len(rows) < self.per_page
            page = self._map_rows(rows, lambda row, warn: m.map_participant(row, race_id, warn),
                                  number, is_last, body)
            yield page
            if page.is_last:
                return
            keyed = keyed and all(isinstance(r, dict) and str(r.get("registration_id", ""))
                                  .isdigit() for r in rows)
            if keyed:
                after, page_no = str(rows[-1]["registration_id"]), 1
            else:
                page_no += 1

    def _include_questions(self) -> bool:
        """Question responses come only with ``include_questions=T``: asked when the
        connection's mapping reads them (``mapping_sources``, set from its field mapping)
        or its ``include_questions`` setting says so."""
        if self.settings.include_questions:
            return True
        return any(s.split(".")[0] == m.QUESTIONS_PATH for s in self.settings.mapping_sources)

    def _event_rows(self, body: Any, event_id: str, where: str) -> list[Any]:
        if not isinstance(body, list):
            raise BadData(f"{where}: expected a list of event blocks", provider=self.provider)
        for block in body:
            if not isinstance(block, dict):
                continue
            event = block.get("event") or {}
            if str(event.get("event_id")) == event_id:
                # The rows are in the sibling "participants"; event.participants is always [].
                rows = block.get("participants") or []
                if not isinstance(rows, list):
                    raise BadData(f"{where}: 'participants' is not a list",
                                  provider=self.provider)
                return rows
        return []

    def _map_rows(self, rows: list[Any], mapper: Callable[[Any, m.Warn], T], number: int,
                  is_last: bool, raw: Any) -> Page[T]:
        items: list[T] = []
        problems: list[RowProblem] = []
        warnings: list[RowProblem] = []
        for i, row in enumerate(rows):
            ref = row.get("registration_id") if isinstance(row, dict) else None
            if ref in (None, "") and isinstance(row, dict) and isinstance(row.get("user"), dict):
                ref = row["user"].get("user_id") and f"user {row['user']['user_id']}"
            noted: list[RowProblem] = []

            def warn(field: str, message: str, i: int = i, ref: Any = ref,
                     noted: list[RowProblem] = noted) -> None:
                noted.append(RowProblem(i, message, ref=None if ref in (None, "") else str(ref),
                                        field=field))

            try:
                items.append(mapper(row, warn))
                warnings += noted
            except (m.MappingError, TypeError, ValueError, AttributeError, KeyError) as exc:
                # A row of an unexpected shape is that row's problem, not the page's.
                field = exc.field if isinstance(exc, m.MappingError) else None
                message = (exc.message if isinstance(exc, m.MappingError)
                           else f"unexpected row shape ({type(exc).__name__}: {exc})")
                problems.append(RowProblem(i, message, ref=None if ref in (None, "")
                                           else str(ref), field=field, raw=row))
        return Page(items, problems, warnings, number=number, is_last=is_last, raw=raw)

    # -- withdrawals ----------------------------------------------------------------------
    def list_withdrawn(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderWithdrawal]]:
        race_id, event_id = m.split_event_ref(event_ref)
        path = str(m.ASSUMED["removed_path"]).format(race_id=race_id)
        key = str(m.ASSUMED["removed_list_key"])
        guard = self.page_guard(f"GET {path}")
        for number in guard:
            params: dict[str, Any] = {"event_id": event_id, "page": number,
                                      "results_per_page": self.per_page}
            if since is not None:
                params["modified_after_timestamp"] = int(since.timestamp())
            body = self.http.request_json("GET", path, params=params)
            rows = body.get(key) if isinstance(body, dict) else None
            if not isinstance(rows, list):
                raise BadData(f"GET {path}: no '{key}' list in the reply", provider=self.provider)
            page = self._map_rows(rows, lambda row, warn: m.map_removed(row, race_id), number,
                                  guard.done(rows) or len(rows) < self.per_page, body)
            yield page
            if page.is_last:
                return

    # -- bib/chip assignment --------------------------------------------------------------
    def push_participants(
        self, event_ref: str, participants: Sequence[ProviderParticipant], *,
        replace_existing: bool = True,  # RunSignUp updates in place: nothing to replace
    ) -> PushReport:
        race_id, event_id = m.split_event_ref(event_ref)
        rows: list[dict[str, Any]] = []
        problems: list[RowProblem] = []
        for i, participant in enumerate(participants):
            try:
                rows.append(m.participant_to_bib_chip(participant))
            except m.MappingError as exc:
                problems.append(RowProblem(i, exc.message, ref=participant.ref, field=exc.field))
        if not rows:
            return PushReport(0, problems)
        body = self.http.request_json("POST", f"race/{race_id}/participants", data={
            "event_id": event_id, "request_format": "json",
            "request": json.dumps({str(m.ASSUMED["bib_chip_request_key"]): rows}),
        })
        accepted, refused = self._reply_counts(
            body, str(m.ASSUMED["bib_chip_reply_updated_key"]),
            str(m.ASSUMED["bib_chip_reply_errors_key"]), len(rows))
        index = {str(p.ref): i for i, p in enumerate(participants)}
        problems += [RowProblem(index.get(ref, -1), msg, ref=ref) for ref, msg in refused]
        return PushReport(accepted, problems, raw=body)

    @staticmethod
    def _reply_counts(body: Any, count_key: str, errors_key: str,
                      sent: int) -> tuple[int, list[tuple[str, str]]]:
        refused: list[tuple[str, str]] = []
        if isinstance(body, dict):
            for error in body.get(errors_key) or []:
                if isinstance(error, dict):
                    ref = str(error.get("registration_id") or error.get("bib") or "")
                    refused.append((ref, str(error.get("error_msg") or "refused")))
            count = body.get(count_key)
            if isinstance(count, int):
                return count, refused
        return sent - len(refused), refused

    # -- results --------------------------------------------------------------------------
    def _result_sets(self, race_id: str, event_id: str) -> list[dict[str, Any]]:
        body = self.http.request_json("GET", f"race/{race_id}/results/get-result-sets",
                                      params={"event_id": event_id})
        sets = body.get("individual_results_sets") if isinstance(body, dict) else None
        if not isinstance(sets, list):
            raise BadData("GET results/get-result-sets: no 'individual_results_sets' list",
                          provider=self.provider)
        return [s for s in sets if isinstance(s, dict)]

    def get_results(self, event_ref: str) -> Iterator[Page[ProviderResult]]:
        race_id, event_id = m.split_event_ref(event_ref)
        sets = self._result_sets(race_id, event_id)
        number = 0
        for set_index, result_set in enumerate(sets):
            for page in self._set_pages(event_ref, result_set.get("individual_result_set_id"),
                                        first_number=number + 1,
                                        last_set=set_index == len(sets) - 1):
                number = page.number
                yield page
        if not sets:
            yield Page([], number=1, is_last=True)

    def result_sets(self, event_ref: str) -> list[tuple[str, str]]:
        race_id, event_id = m.split_event_ref(event_ref)
        return [(str(s.get("individual_result_set_id")),
                 str(s.get("individual_result_set_name") or ""))
                for s in self._result_sets(race_id, event_id)]

    def read_result_set(self, event_ref: str, result_set_id: str
                        ) -> Iterator[Page[ProviderResult]]:
        yield from self._set_pages(event_ref, result_set_id, first_number=1, last_set=True)

    def _set_pages(self, event_ref: str, set_id: Any, *, first_number: int,
                   last_set: bool) -> Iterator[Page[ProviderResult]]:
        """The pages of one result set; the last one ``is_last`` only if ``last_set``."""
        race_id, event_id = m.split_event_ref(event_ref)
        per_page = int(m.ASSUMED["results_per_page"])
        number = first_number - 1
        guard = self.page_guard(f"GET results/get-results of result set {set_id}")
        for page_no in guard:
            body = self.http.request_json("GET", f"race/{race_id}/results/get-results",
                                          params={"event_id": event_id,
                                                  "individual_result_set_id": set_id,
                                                  "page": page_no,
                                                  "results_per_page": per_page})
            blocks = body.get("individual_results_sets") if isinstance(body, dict) else None
            if not isinstance(blocks, list):
                raise BadData("GET results/get-results: no 'individual_results_sets' list",
                              provider=self.provider)
            rows = [r for b in blocks if isinstance(b, dict) for r in (b.get("results") or [])]
            # Columns such as custom-field-<id> change ids per result set: the reply's
            # results_headers name them.
            headers = {str(k): str(v) for b in blocks if isinstance(b, dict)
                       and isinstance(b.get("results_headers"), dict)
                       for k, v in b["results_headers"].items()}
            number += 1
            # No total or has-more field: a short (or empty) page is the last.
            short = guard.done(rows) or len(rows) < per_page

            def map_row(row: Any, warn: m.Warn, headers: dict[str, str] = headers
                        ) -> ProviderResult:
                return m.map_result(row, event_ref, headers=headers, warn=warn)

            page = self._map_rows(rows, map_row, number, short and last_set, body)
            for problem_index, problem in enumerate(page.problems):
                row = problem.raw if isinstance(problem.raw, dict) else {}
                page.problems[problem_index] = RowProblem(
                    problem.row, problem.message,
                    ref=str(row.get("result_id") or row.get("bib") or "") or None,
                    field=problem.field, raw=problem.raw)
            yield page
            if short:
                return

    def post_results(self, event_ref: str, results: Sequence[ProviderResult], *,
                     result_set_id: str | None = None) -> PushReport:
        """Into ``result_set_id`` when given, else the ``individual_result_set_id`` setting,
        else a new result set. ``ProviderResult.ref`` (a result id) edits that row."""
        race_id, event_id = m.split_event_ref(event_ref)
        rows: list[tuple[int, dict[str, Any]]] = []
        problems: list[RowProblem] = []
        for i, result in enumerate(results):
            try:
                rows.append((i, m.result_to_wire(result)))
            except m.MappingError as exc:
                problems.append(RowProblem(i, exc.message, ref=result.bib or result.ref,
                                           field=exc.field))
        if not rows:
            return PushReport(0, problems)
        set_id = (result_set_id or self.settings.individual_result_set_id
                  or self._new_result_set(race_id, event_id))
        accepted = 0
        replies = []
        chunk = int(m.ASSUMED["results_per_post"])
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            # Not sent again on a 5xx: the rows may be stored already (ASSUMED
            # "full_results_appends_without_result_id"); a publish reads the set back.
            body = self.http.request_json(
                "POST", f"race/{race_id}/results/full-results", params={"event_id": event_id},
                data={"request_format": "json", "individual_result_set_id": str(set_id),
                      "request": json.dumps({"results": [row for _, row in part]})},
                idempotent=False,
            )
            replies.append(body)
            ok, refused = self._reply_counts(body, "num_results_added",
                                             str(m.ASSUMED["full_results_reply_errors_key"]),
                                             len(part))
            accepted += ok
            # The reply names refused rows by registration id or bib: find the sent row.
            by_key = {str(row[k]): i for i, row in part
                      for k in ("registration_id", "bib") if k in row}
            problems += [RowProblem(by_key.get(ref, -1), msg, ref=ref) for ref, msg in refused]
        return PushReport(accepted, problems, raw={"individual_result_set_id": set_id,
                                                   "replies": replies})

    def create_result_set(self, event_ref: str, name: str) -> str:
        race_id, event_id = m.split_event_ref(event_ref)
        return str(self._new_result_set(race_id, event_id, name))

    def _new_result_set(self, race_id: str, event_id: str, name: str | None = None) -> Any:
        name = name or self.settings.result_set_name or "Results"
        body = self.http.request_json("POST", f"race/{race_id}/results/new-result-set",
                                      data={"event_id": event_id,
                                            "individual_result_set_name": name},
                                      idempotent=False)  # a second set, if sent again
        key = str(m.ASSUMED["new_result_set_reply_key"])
        set_id = body.get(key) if isinstance(body, dict) else None
        if set_id in (None, ""):
            raise BadData(f"POST results/new-result-set: no '{key}' in the reply",
                          provider=self.provider)
        return set_id


__all__ = ["RunSignUpAdapter"]
