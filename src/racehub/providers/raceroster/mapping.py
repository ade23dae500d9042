"""Race Roster wire values <-> normalized records.

Facts from PROVIDERS.md (M unless marked): base ``https://raceroster.com/api/v1`` (H), JSON
only; token at ``<api>/oauth/authorize`` (form ``grant_type=access_token`` with client id,
secret, username and password; ``grant_type=refresh_token`` to refresh), bearer tokens (H);
``GET /events`` pages with ``offset``/``limit`` and wraps lists in ``{"data": [...]}``;
sub-events in ``subEvents.data``; integer gender codes (H); token replies sometimes wrapped
in ``{"data": {...}}`` or ``{"data": [{...}]}`` (seen in real responses). Results: the
public v2 API (seen in real responses, H) at
``results.raceroster.com/v2/api/result-events/{id}/sub-events/{id}/results``, no login,
``start``/``limit`` paging (max 1000), ``{"data": [...], "meta": {"totalResults": N}}``,
gender as a text label, times of varying precision, trailing spaces, no bib. The
participants endpoint, the v1 partner results endpoint and the v2 column names are not in
any official source: every such name lives in ASSUMED below, one edit to correct each.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from racehub.providers.base import (
    ProviderEvent,
    ProviderParticipant,
    ProviderResult,
    ProviderWithdrawal,
    ResultStatus,
)
from racehub.providers.values import (
    MappingError,
    id_text,
    parse_duration,
    parse_int,
    text_or_none,
)

# -- documented ---------------------------------------------------------------------------
TOKEN_PATH = "../oauth/authorize"  # relative to the API base: https://raceroster.com/api/
GRANT_PASSWORD = "access_token"  # sic: Race Roster's name for the password grant
GRANT_REFRESH = "refresh_token"
EVENTS_SORT = "startDate"
# Gender codes (H): 0 undisclosed, 1 male, 2 female, 8 co-ed (a mixed team: no person
# gender, as Copernico's "mixed"), 9 non-binary.
GENDER_CODES: dict[int, str | None] = {0: None, 1: "M", 2: "F", 8: None, 9: "X"}
GENDER_TO_CODE = {"M": 1, "F": 2, "X": 9}
# Public results API v2 (H): no login, start/limit paging, meta.totalResults.
RESULTS_V2_BASE_URL = "https://results.raceroster.com/v2/api"
RESULTS_V2_PATH = "result-events/{result_event_id}/sub-events/{sub_event_id}/results"
RESULTS_V2_MAX_LIMIT = 1000
RESULTS_APIS = ("v2", "v1")  # the connection's `results_api` setting; v2 by default

# -- ASSUMED (not in any public source we could read; one place to correct) -----------------
ASSUMED: dict[str, Any] = {
    # No published rate limit: stay polite.
    "rate_per_second": 4.0,
    "rate_burst": 8,
    "events_limit": 100,  # largest `limit` we ask for on /events
    # GET /events/{eventId}/registrations: offset/limit, {"data": [...]}, camelCase rows.
    "registrations_path": "events/{event_id}/registrations",
    "registrations_limit": 100,  # the simulator refuses more
    "registrations_sort": {"sort": "registrationId", "order": "asc"},
    # Server-side filter for incremental reads; rows are filtered again on our side, so a
    # server that ignores it costs calls, not correctness.
    "modified_since_param": "lastModifiedDateFrom",
    # Registration `status` values that mean the person is no longer in.
    "withdrawn_statuses": frozenset({"cancelled", "refunded", "transferred"}),
    # v2 results columns, from open-source clients of the public API (M): the row id, one
    # full name, the gender label, places as text ("1 / 3" for division and gender).
    "results_v2_fields": {
        "ref": "id", "name": "name", "first_name": "firstName", "last_name": "lastName",
        "gender": "genderSexId", "age": "age", "place": "overallPlace",
        "clock_time": "gunTime", "chip_time": "chipTime", "division": "division",
        "bib": "bib",
    },
    # v2 gender labels -> M/F/X; any other label is kept as text, gender unknown.
    "results_v2_genders": {"male": "M", "man": "M", "m": "M", "female": "F", "woman": "F",
                           "f": "F", "non-binary": "X", "nonbinary": "X", "x": "X"},
    # A v2 row with neither chip nor gun time is read as not finished (DNF): no status
    # column has been seen.
    # The v2 result event of a Race Roster event: the `result_event_ids` setting
    # (eventId = resultEventId); without it the event id itself, and the sub-event id is
    # taken to be the same in both APIs.
    # GET /events/{eventId}/results?resultsRaceId=&page=&perPage= (L): the race id is taken
    # to be the sub-event id; rows are assumed to look like this.
    "results_path": "events/{event_id}/results",
    "results_per_page": 100,
    "result_fields": {
        "ref": "resultId", "participant_ref": "registrationId", "bib": "bibNumber",
        "first_name": "firstName", "last_name": "lastName", "gender": "gender",
        "age": "age", "place": "overallPlace", "clock_time": "gunTime",
        "chip_time": "chipTime", "status": "status", "division": "division",
    },
    # Token replies: lifetime when `expires_in` is missing (a JWT lasting about a day).
    "default_token_lifetime": 86_400,
    # Times without an offset (none seen in recorded replies) are read as UTC.
    "naive_time_zone": "UTC",
}

DEFAULT_FIELD_MAPPING: dict[str, str] = {
    "ref": "registrationId",
    "event_ref": "subEventId",
    "first_name": "firstName",
    "last_name": "lastName",
    "email": "email",
    "birth_date": "dateOfBirth",
    "gender": "gender",
    "bib": "bibNumber",
    "modified_at": "lastModifiedDate",
}


# -- scalar parsers (each names the field it failed on) -------------------------------------
def parse_gender(value: Any, field: str) -> str | None:
    """Race Roster's integer code (0/1/2/8/9, also as a string) -> M/F/X/None."""
    code = parse_int(value, field)
    if code is None:
        return None
    if code not in GENDER_CODES:
        raise MappingError(field, f"unknown gender code {value!r} (expected 0, 1, 2, 8 or 9)")
    return GENDER_CODES[code]


def parse_time(value: Any, field: str) -> datetime | None:
    """ISO-8601 with an offset (``2026-10-04T07:30:00-04:00``, ``...Z``) -> aware UTC."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise MappingError(field, f"expected an ISO-8601 date-time, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(str(ASSUMED["naive_time_zone"])))
    return parsed.astimezone(UTC)


def parse_date(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    text = str(value).strip()[:10]  # some replies carry a time of day on dates of birth
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise MappingError(field, f"expected YYYY-MM-DD, got {value!r}") from None


def parse_zone(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return ZoneInfo(str(value)).key
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(field, f"unknown time zone {value!r}") from None


def unwrap(body: Any) -> Any:
    """Race Roster wraps replies in ``{"data": ...}`` (token replies only sometimes)."""
    if isinstance(body, dict) and "data" in body:
        return body["data"]
    return body


def unwrap_token(body: Any) -> Any:
    """A token reply: bare, ``{"data": {...}}`` or ``{"data": [{...}]}`` (a one-item list,
    seen in real responses)."""
    reply = unwrap(body)
    if isinstance(reply, list) and len(reply) == 1 and isinstance(reply[0], dict):
        return reply[0]
    return reply


# -- refs -----------------------------------------------------------------------------------
def event_ref(event_id: Any, sub_event_id: Any) -> str:
    return f"{event_id}:{sub_event_id}"


def split_event_ref(ref: str) -> tuple[str, str | None]:
    """``eventId:subEventId`` (one sub-event) or ``eventId`` (all of the event)."""
    event_id, sep, sub_event_id = str(ref).partition(":")
    if not event_id.isdigit() or (sep and not sub_event_id.isdigit()):
        raise ValueError(f"Race Roster event ref must be 'eventId:subEventId' or 'eventId', "
                         f"got {ref!r}")
    return event_id, sub_event_id or None


# -- records --------------------------------------------------------------------------------
def map_event(event: Any) -> list[ProviderEvent]:
    """One Race Roster event -> one ProviderEvent per sub-event (what people register for)."""
    if not isinstance(event, dict):
        raise MappingError("event", f"expected an object, got {type(event).__name__}")
    event_id = id_text(event.get("eventId"), "eventId")
    zone = parse_zone(event.get("timeZone"), "timeZone")
    start = parse_time(event.get("startDate"), "startDate")
    modified = parse_time(event.get("lastModifiedDate"), "lastModifiedDate")
    region, country = event.get("region"), event.get("country")
    subs = event.get("subEvents")
    rows = subs.get("data") if isinstance(subs, dict) else subs
    if not isinstance(rows, list):
        raise MappingError("subEvents.data", "expected a list of sub-events")
    events = []
    for i, sub in enumerate(rows):
        if not isinstance(sub, dict):
            raise MappingError(f"subEvents.data[{i}]", "expected an object")
        sub_id = id_text(sub.get("subEventId"), f"subEvents.data[{i}].subEventId")
        distance = sub.get("subEventDistance")
        events.append(ProviderEvent(
            ref=event_ref(event_id, sub_id),
            name=text_or_none(sub.get("name")) or f"Sub-event {sub_id}",
            start_at=start,
            time_zone=zone,
            parent_ref=event_id,
            parent_name=text_or_none(event.get("name")),
            distance=text_or_none(distance.get("label")) if isinstance(distance, dict) else None,
            city=text_or_none(event.get("city")),
            region=text_or_none(region.get("code")) if isinstance(region, dict) else None,
            country=text_or_none(country.get("code")) if isinstance(country, dict) else None,
            modified_at=modified,
            raw={"event": {k: v for k, v in event.items() if k != "subEvents"}, "subEvent": sub},
        ))
    return events


def _row(row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise MappingError("row", f"expected an object, got {type(row).__name__}")
    return row


def is_withdrawn(row: Any) -> bool:
    status = row.get("status") if isinstance(row, dict) else None
    return isinstance(status, str) and status.strip().lower() in ASSUMED["withdrawn_statuses"]


def map_registration(row: Any, event_id: str) -> ProviderParticipant:
    row = _row(row)
    first_name, last_name = text_or_none(row.get("firstName")), text_or_none(row.get("lastName"))
    if not first_name and not last_name:
        raise MappingError("firstName", "neither first nor last name given")
    code = row.get("gender")
    return ProviderParticipant(
        ref=id_text(row.get("registrationId"), "registrationId"),
        event_ref=event_ref(event_id, id_text(row.get("subEventId"), "subEventId")),
        first_name=first_name or "",
        last_name=last_name or "",
        email=text_or_none(row.get("email")),
        birth_date=parse_date(row.get("dateOfBirth"), "dateOfBirth"),
        gender=parse_gender(code, "gender"),
        bib=text_or_none(row.get("bibNumber")),
        modified_at=parse_time(row.get("lastModifiedDate"), "lastModifiedDate"),
        extra={k: v for k, v in (("status", text_or_none(row.get("status"))),
                                 ("gender_code", code)) if v not in (None, "")},
        raw=row,
    )


def map_withdrawal(row: Any, event_id: str) -> ProviderWithdrawal:
    row = _row(row)
    return ProviderWithdrawal(
        ref=id_text(row.get("registrationId"), "registrationId"),
        event_ref=event_ref(event_id, id_text(row.get("subEventId"), "subEventId")),
        reason=text_or_none(row.get("status")),
        withdrawn_at=parse_time(row.get("lastModifiedDate"), "lastModifiedDate"),
        raw=row,
    )


STATUS_WORDS = {s.value: s for s in ResultStatus}


def map_result(row: Any, ref_of_event: str) -> ProviderResult:
    row = _row(row)
    f: dict[str, str] = ASSUMED["result_fields"]
    status_text = (text_or_none(row.get(f["status"])) or "FIN").upper()
    if status_text not in STATUS_WORDS:
        raise MappingError(f["status"], f"expected one of {', '.join(STATUS_WORDS)}, "
                                        f"got {row.get(f['status'])!r}")
    status = STATUS_WORDS[status_text]
    finished = status is ResultStatus.FINISHED
    return ProviderResult(
        event_ref=ref_of_event,
        ref=text_or_none(row.get(f["ref"])),
        participant_ref=text_or_none(row.get(f["participant_ref"])),
        bib=text_or_none(row.get(f["bib"])),
        first_name=text_or_none(row.get(f["first_name"])),
        last_name=text_or_none(row.get(f["last_name"])),
        gender=parse_gender(row.get(f["gender"]), f["gender"]),
        age=parse_int(row.get(f["age"]), f["age"]),
        place=parse_int(row.get(f["place"]), f["place"]) if finished else None,
        clock_time=parse_duration(row.get(f["clock_time"]), f["clock_time"]) if finished else None,
        chip_time=parse_duration(row.get(f["chip_time"]), f["chip_time"]) if finished else None,
        status=status,
        division=text_or_none(row.get(f["division"])),
        raw=row,
    )


def parse_gender_label(value: Any) -> str | None:
    """A v2 gender label ("Male", "Female", ...) -> M/F/X; None when blank or unknown (the
    label stays in the result's ``extra``)."""
    text = text_or_none(value)
    return None if text is None else ASSUMED["results_v2_genders"].get(text.lower())


def split_name(full: str | None) -> tuple[str | None, str | None]:
    """One full name -> (first word, the rest): v2 rows carry a single ``name``."""
    if not full:
        return None, None
    first, _, rest = " ".join(full.split()).partition(" ")
    return first, rest or None


def map_result_v2(row: Any, ref_of_event: str) -> ProviderResult:
    """One row of the public v2 results API. No bib (matching to participants is the
    results-pull's job); every column not read into a field is kept, as stripped text, in
    ``extra`` under its own name (division and gender places, pace, city, custom fields)."""
    row = _row(row)
    f: dict[str, str] = ASSUMED["results_v2_fields"]
    first, last = text_or_none(row.get(f["first_name"])), text_or_none(row.get(f["last_name"]))
    full = text_or_none(row.get(f["name"]))
    if not (first or last):
        first, last = split_name(full)
    if not (first or last):
        raise MappingError(f["name"], "no name")
    chip = parse_duration(row.get(f["chip_time"]), f["chip_time"])
    clock = parse_duration(row.get(f["clock_time"]), f["clock_time"])
    finished = chip is not None or clock is not None
    gender_label = text_or_none(row.get(f["gender"]))
    gender = parse_gender_label(gender_label)
    # Read into fields; an unknown gender label stays in extra, so it is not lost.
    read = {f[k] for k in ("ref", "name", "first_name", "last_name", "chip_time",
                           "clock_time", "place", "age", "bib", "division")}
    if gender is not None:
        read.add(f["gender"])
    extra = {str(k): text for k, v in row.items()
             if k not in read and not isinstance(v, dict | list)
             and (text := text_or_none(v)) is not None}
    return ProviderResult(
        event_ref=ref_of_event,
        ref=text_or_none(row.get(f["ref"])),
        bib=text_or_none(row.get(f["bib"])),
        first_name=first, last_name=last,
        gender=gender,
        age=parse_int(row.get(f["age"]), f["age"]),
        place=parse_int(row.get(f["place"]), f["place"]) if finished else None,
        clock_time=clock, chip_time=chip,
        status=ResultStatus.FINISHED if finished else ResultStatus.DNF,
        division=text_or_none(row.get(f["division"])),
        extra=extra,
        raw=row,
    )


def format_time(value: datetime) -> str:
    """Aware datetime -> ISO-8601 with offset, seconds precision (simulator, tests)."""
    return value.replace(microsecond=0).isoformat()
