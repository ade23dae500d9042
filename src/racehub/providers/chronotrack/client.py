"""ChronoTrack Live adapter: ``https://api.chronotrack.com/api``, ``format=json``.

Credentials: ``client_id``, ``user_id`` (the login) and ``user_pass`` (the password; the
wire carries its SHA-1 hex digest, never the password itself).

Event refs are ``"event_id:race_id"`` (one race: what participants register for) or
``"event_id"`` (every race of the event). Settings (all optional): ``eventIds`` (the events
``list_events`` reads; without it, ``GET /event`` is paged), ``page_size``, ``max_pages``.

Paging is by ``page``/``size``; the ``X-Ctlive-Page-Count`` and ``X-Ctlive-Current-Page``
headers say which page is the last; without them an empty page (or the stated row count)
ends the loop, never a short page; a page repeating the previous one is an error.
Page numbers shift when rows are added or removed while we read, so when
``X-Ctlive-Row-Count`` changes mid-way the pages are read once more and only rows not seen
yet are returned: nothing is skipped or returned twice.
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
    PushReport,
    RowProblem,
)
from racehub.providers.chronotrack import mapping as m
from racehub.providers.chronotrack.settings import ChronoTrackSettings
from racehub.providers.errors import AuthFailed, BadData
from racehub.providers.http import ProviderResponse
from racehub.providers.ratelimit import RateLimit

T = TypeVar("T")


def _header_int(response: ProviderResponse, name: str) -> int | None:
    value = response.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class ChronoTrackAdapter(ProviderAdapter):
    provider = "CHRONOTRACK"
    capabilities = frozenset({
        Capability.CHECK_CREDENTIALS, Capability.LIST_EVENTS, Capability.LIST_PARTICIPANTS,
        Capability.PUSH_PARTICIPANTS, Capability.WITHDRAW_PARTICIPANTS, Capability.GET_RESULTS,
    })
    credential_fields = ("client_id", "user_id", "user_pass")
    default_base_url = "https://api.chronotrack.com/api"
    default_rate_limit = RateLimit(per_second=float(m.ASSUMED["rate_per_second"]),
                                   burst=int(m.ASSUMED["rate_burst"]))
    default_field_mapping = m.DEFAULT_FIELD_MAPPING
    settings_model = ChronoTrackSettings
    settings: ChronoTrackSettings

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        hashed = m.hash_password(self.credentials["user_pass"])
        # The digest is as good as the password to ChronoTrack: scrub it from messages too.
        self.http.redact.secrets = sorted({*self.http.redact.secrets, hashed},
                                          key=len, reverse=True)
        self.http.default_params.update({
            "format": "json",
            "client_id": self.credentials["client_id"],
            "user_id": self.credentials["user_id"],
            "user_pass": hashed,
        })
        self.page_size = self.bounded_page_size(
            self.settings.page_size, int(m.ASSUMED["max_page_size"]),
            default=int(m.ASSUMED["default_page_size"]))

    @classmethod
    def participant_from_raw(cls, raw: Any, event_ref: str) -> ProviderParticipant:
        return m.map_entry(raw, event_ref)

    @classmethod
    def check_start_list_ref(cls, event_ref: str) -> None:
        _, race_id = m.split_event_ref(event_ref)
        if race_id is None:
            raise ValueError(f"a ChronoTrack start list goes to one race: use "
                             f"'event_id:race_id', not {event_ref!r}")

    @classmethod
    def push_row(cls, participant: ProviderParticipant) -> dict[str, Any]:
        return dict(m.participant_to_entry(participant))

    # -- credentials ----------------------------------------------------------------------
    def check_credentials(self) -> CredentialCheck:
        try:
            response = self.http.request("GET", "event", params={"page": 1, "size": 1})
        except AuthFailed as exc:
            return CredentialCheck(False, exc.message)
        rows = _header_int(response, m.HEADER_ROW_COUNT)
        seen = f"; {rows} event(s) visible" if rows is not None else ""
        return CredentialCheck(True, f"login accepted{seen}", account=self.credentials["user_id"])

    # -- paging ---------------------------------------------------------------------------
    def _rows(self, body: Any, wrapper: str, where: str) -> list[Any]:
        rows = body.get(wrapper) if isinstance(body, dict) else None
        if isinstance(rows, dict):  # a single record (GET /event/{id}) comes unlisted
            rows = [rows]
        if not isinstance(rows, list):
            raise BadData(f"{where}: no '{wrapper}' list in the reply", provider=self.provider)
        return rows

    def _map_rows(self, rows: list[Any], mapper: Callable[[Any], T], ref_key: str
                  ) -> tuple[list[T], list[RowProblem]]:
        items: list[T] = []
        problems: list[RowProblem] = []
        for i, row in enumerate(rows):
            try:
                items.append(mapper(row))
            except (m.MappingError, TypeError, ValueError, AttributeError, KeyError) as exc:
                # A row of an unexpected shape is that row's problem, not the page's.
                ref = row.get(ref_key) if isinstance(row, dict) else None
                field = exc.field if isinstance(exc, m.MappingError) else None
                message = (exc.message if isinstance(exc, m.MappingError)
                           else f"unexpected row shape ({type(exc).__name__}: {exc})")
                problems.append(RowProblem(i, message, ref=None if ref is None else str(ref),
                                           field=field, raw=row))
        return items, problems

    def _paged(self, path: str, wrapper: str, mapper: Callable[[Any], T], *,
               ref_key: str, key: Callable[[T], str], params: dict[str, Any] | None = None,
               keep: Callable[[T], bool] = lambda item: True) -> Iterator[Page[T]]:
        seen: set[str] = set()
        counts: set[int] = set()
        number = 0
        for sweep in (1, 2):
            guard = self.page_guard(f"GET {path}")
            for page_no in guard:
                response = self.http.request("GET", path, params={
                    **(params or {}), "page": page_no, "size": self.page_size})
                rows = self._rows(response.body, wrapper, f"GET {path}")
                page_count = _header_int(response, m.HEADER_PAGE_COUNT)
                current = _header_int(response, m.HEADER_CURRENT_PAGE) or page_no
                if (total := _header_int(response, m.HEADER_ROW_COUNT)) is not None:
                    counts.add(total)
                # The last page: the headers say so, or an empty page, or the stated row
                # count reached; never merely a short page (the real cap may be smaller).
                last_here = (guard.done(rows, total=total)
                             or (page_count is not None and current >= page_count))
                items, problems = self._map_rows(rows, mapper, ref_key)
                fresh = [i for i in items if key(i) not in seen and keep(i)]
                seen.update(key(i) for i in items)
                # The list moved under us: one more sweep finds the rows it shifted past.
                again = last_here and sweep == 1 and len(counts) > 1
                number += 1
                yield Page(fresh, problems, number=number, is_last=last_here and not again,
                           total=total, raw=response.body)
                if last_here:
                    break
            if len(counts) <= 1:
                return
            counts = set()  # the second sweep is the last, whatever it sees

    # -- events ---------------------------------------------------------------------------
    def _event_ids(self) -> list[str]:
        return [i.split(":")[0].strip() for i in self.settings.eventIds]

    def _races(self, event: dict[str, Any]) -> list[Any]:
        event_id = m.id_text(event.get(m.ASSUMED["event_fields"]["id"]), "event_id")
        races: list[Any] = []
        for page in self._paged(f"event/{event_id}/race", m.WRAP_EVENT_RACES, lambda r: r,
                                ref_key="race_id", key=lambda r: json.dumps(r, sort_keys=True)):
            races += page.items
        return races

    def _events_page(self, events: list[Any], since: datetime | None, number: int,
                     is_last: bool, total: int | None, raw: Any) -> Page[ProviderEvent]:
        items: list[ProviderEvent] = []
        problems: list[RowProblem] = []
        for i, event in enumerate(events):
            try:
                if not isinstance(event, dict):
                    raise m.MappingError("event", "expected an object")
                mapped = [m.map_race(event, race) for race in self._races(event)]
            except m.MappingError as exc:
                ref = str(event.get("event_id")) if isinstance(event, dict) else None
                problems.append(RowProblem(i, exc.message, ref=ref, field=exc.field, raw=event))
                continue
            items += [e for e in mapped
                      if since is None or e.modified_at is None or e.modified_at >= since]
        return Page(items, problems, number=number, is_last=is_last, total=total, raw=raw)

    def list_events(self, since: datetime | None = None) -> Iterator[Page[ProviderEvent]]:
        event_ids = self._event_ids()
        if event_ids:
            for number, event_id in enumerate(event_ids, start=1):
                body = self.http.request_json("GET", f"event/{event_id}")
                rows = self._rows(body, m.WRAP_EVENTS, f"GET event/{event_id}")
                yield self._events_page(rows, since, number, number == len(event_ids),
                                        None, body)
            return
        for page in self._paged("event", m.WRAP_EVENTS, lambda e: e, ref_key="event_id",
                                key=lambda e: str(e.get("event_id"))
                                if isinstance(e, dict) else repr(e)):
            yield self._events_page(page.items, since, page.number, page.is_last, page.total,
                                    page.raw)

    # -- participants ---------------------------------------------------------------------
    def list_participants(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderParticipant]]:
        event_id, race_id = m.split_event_ref(event_ref)
        path, wrapper = ((f"race/{race_id}/entry", m.WRAP_RACE_ENTRIES) if race_id
                         else (f"event/{event_id}/entry", m.WRAP_EVENT_ENTRIES))
        params: dict[str, Any] = {}
        if since is not None:
            params[str(m.ASSUMED["since_param"])] = int(since.timestamp())

        def changed(p: ProviderParticipant) -> bool:
            return since is None or p.modified_at is None or p.modified_at >= since

        yield from self._paged(path, wrapper, lambda row: m.map_entry(row, event_ref),
                               ref_key="entry_id", key=lambda p: p.ref, params=params,
                               keep=changed)

    # -- entry upload (assumed shape, see mapping.ASSUMED) ----------------------------------
    def push_participants(
        self, event_ref: str, participants: Sequence[ProviderParticipant], *,
        replace_existing: bool = True,  # entries are updated in place: nothing is removed
    ) -> PushReport:
        race_id = self._upload_race(event_ref)
        rows: list[tuple[int, dict[str, str]]] = []
        problems: list[RowProblem] = []
        for i, participant in enumerate(participants):
            try:
                rows.append((i, m.participant_to_entry(participant)))
            except m.MappingError as exc:
                problems.append(RowProblem(i, exc.message, ref=participant.ref, field=exc.field))
        return self._upload(race_id, rows, problems)

    def withdraw_participants(self, event_ref: str, refs: Sequence[str]) -> PushReport:
        """Mark each entry as not starting (``entry_status`` DNS through the entry upload,
        see ``mapping.ASSUMED``): kept, not removed, so nothing the timer recorded is lost."""
        race_id = self._upload_race(event_ref)
        rows: list[tuple[int, dict[str, str]]] = []
        problems: list[RowProblem] = []
        for i, ref in enumerate(refs):
            try:
                rows.append((i, m.withdrawal_entry(ref)))
            except m.MappingError as exc:
                problems.append(RowProblem(i, exc.message, ref=ref or None, field=exc.field))
        return self._upload(race_id, rows, problems)

    def _upload_race(self, event_ref: str) -> str:
        _, race_id = m.split_event_ref(event_ref)
        if race_id is None:
            # Like a malformed ref, a caller's mistake: no request is sent.
            raise ValueError(f"entries are uploaded to one race: use 'event_id:race_id', "
                             f"not {event_ref!r}")
        return race_id

    def _upload(self, race_id: str, rows: list[tuple[int, dict[str, str]]],
                problems: list[RowProblem]) -> PushReport:
        path = str(m.ASSUMED["entry_upload_path"]).format(race_id=race_id)
        external = str(m.ASSUMED["entry_external_field"])
        accepted, replies = 0, []
        chunk = int(m.ASSUMED["entries_per_upload"])
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            body = self.http.request_json("POST", path, json={
                str(m.ASSUMED["entry_upload_wrapper"]): [row for _, row in part]})
            replies.append(body)
            if not isinstance(body, dict):
                raise BadData(f"POST {path}: expected an object in the reply",
                              provider=self.provider)
            by_ref = {row[external]: i for i, row in part}
            refused = [e for e in body.get(str(m.ASSUMED["entry_upload_reply_errors"])) or []
                       if isinstance(e, dict)]
            for error in refused:
                ref = str(error.get(external) or "")
                problems.append(RowProblem(by_ref.get(ref, -1),
                                           str(error.get("error") or "refused"), ref=ref or None,
                                           field=m.text_or_none(error.get("field"))))
            counted = [body.get(str(m.ASSUMED[k])) for k in ("entry_upload_reply_created",
                                                            "entry_upload_reply_updated")]
            accepted += (sum(c for c in counted if isinstance(c, int))
                         if any(isinstance(c, int) for c in counted) else len(part) - len(refused))
        return PushReport(accepted, sorted(problems, key=lambda p: p.row), raw=replies)

    # -- results --------------------------------------------------------------------------
    def get_results(self, event_ref: str) -> Iterator[Page[ProviderResult]]:
        event_id, race_id = m.split_event_ref(event_ref)
        path, wrapper = ((f"race/{race_id}/results", m.WRAP_RACE_RESULTS) if race_id
                         else (f"event/{event_id}/results", m.WRAP_EVENT_RESULTS))

        def key(r: ProviderResult) -> str:
            who = r.participant_ref or r.bib or repr(r.raw)
            return f"{who}|{','.join(r.splits) or 'finish'}"

        yield from self._paged(path, wrapper, lambda row: m.map_result(row, event_ref),
                               ref_key="results_entry_id", key=key)


__all__ = ["ChronoTrackAdapter"]
