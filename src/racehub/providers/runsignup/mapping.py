"""RunSignUp wire values <-> normalized records.

Facts from PROVIDERS.md (H unless marked). Everything marked **assumed** there (L, or not
documented at all) lives in the ASSUMED block below: one edit to correct each.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
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
    format_duration,
    id_text,
    parse_duration,
    parse_int,
    text_or_none,
)

# -- documented ---------------------------------------------------------------------------
EASTERN = ZoneInfo("America/New_York")  # "all other dates/times are in Eastern Time"
MAX_PARTICIPANTS_PER_PAGE = 2500
MAX_RACES_PER_PAGE = 1000
SORT_BY_REGISTRATION = "registration_id ASC"

ERROR_INVALID_PARAMETERS = 3
ERROR_KEY_AUTH_FAILED = 6
ERROR_PERMISSION_DENIED = 7
ERROR_NOT_LOGGED_IN = 13
ERROR_THROTTLED = 14
ERROR_INVALID_ID = 15
# Auth, any of (all documented): api_key + api_secret query parameters; rsu_api_key query +
# X-RSU-API-SECRET header (the secret stays out of URLs: our default); an OAuth2 bearer token.
AUTH_STYLES = ("header", "query")
SECRET_HEADER = "X-RSU-API-SECRET"
ERROR_RACE_NOT_FOUND = 201
ERROR_EVENT_NOT_FOUND = 301
AUTH_ERRORS = frozenset({ERROR_KEY_AUTH_FAILED, ERROR_PERMISSION_DENIED, ERROR_NOT_LOGGED_IN})
NOT_FOUND_ERRORS = frozenset({ERROR_INVALID_ID, ERROR_RACE_NOT_FOUND, ERROR_EVENT_NOT_FOUND})

# -- ASSUMED (not in any public source we could read; one place to correct) -----------------
ASSUMED = {
    # No published rate limit beyond error 14: stay polite.
    "rate_per_second": 4.0,
    "rate_burst": 8,
    # Shape of GET /race/{id}/removed-participants (only the path and two fields are known).
    "removed_path": "race/{race_id}/removed-participants",
    "removed_list_key": "removed_participants",
    # Bib/chip assignment body for POST /race/{id}/participants and its reply.
    "bib_chip_request_key": "participants",
    "bib_chip_reply_updated_key": "num_updated",
    "bib_chip_reply_errors_key": "errors",
    # Replies of new-result-set and full-results (request shapes are documented).
    "new_result_set_reply_key": "individual_result_set_id",
    "full_results_reply_errors_key": "errors",
    "results_per_post": 1000,  # rows per full-results POST
    # A full-results row without `result_id` for a registration the set already holds adds
    # a second row (nothing documents a de-duplication): a publish reads the set back
    # (get-results with `individual_result_set_id`) and edits by `result_id` instead.
    "full_results_appends_without_result_id": True,
    # No documented call deletes one result row of a set: a row a new publication drops
    # stays on RunSignUp until removed there (the publication warns, `removed_rows`).
    "result_row_delete": None,
    "results_per_page": 1000,  # get-results page size
    # What a rejected OAuth bearer token gets: the key-auth error, in a 200 body like the rest.
    "bad_token_error_code": ERROR_KEY_AUTH_FAILED,
    # A race without `timezone` (seen in real replies): its event times are in an unknown
    # zone. They stay unset (the event says "zone unknown") unless the connection's
    # `time_zone` setting names one; never a guessed Eastern.
    "race_time_zone": None,
    # A participant row without `registration_id` (seen in real replies) is keyed by its
    # `user.user_id` within the event: "user:<user_id>@<event_id>", marked as a fallback.
    "fallback_ref_format": "user:{user_id}@{event_id}",
    # Bibs with leading zeros ("0042") are sent back as text; other digit bibs as numbers.
    "bib_leading_zeros_as_text": True,
}

# Result columns with a fixed meaning; every other column (e.g. `custom-field-<id>`,
# `division-<id>-placement`, whose ids change per result set) is kept in the result's
# `extra`, named by its label in the reply's `results_headers`.
RESULT_COLUMNS = frozenset({
    "result_id", "place", "bib", "registration_id", "user_id", "first_name", "last_name",
    "gender", "age", "clock_time", "chip_time", "pace",
})
# Question responses are only sent with include_questions=T.
QUESTIONS_PATH = "question_responses"

DEFAULT_FIELD_MAPPING: dict[str, str] = {
    "ref": "registration_id",
    "event_ref": "event_id",
    "person_ref": "user.user_id",
    "first_name": "user.first_name",
    "middle_name": "user.middle_name",
    "last_name": "user.last_name",
    "email": "user.email",
    "birth_date": "user.dob",
    "gender": "user.gender",
    "phone": "user.phone",
    "city": "user.address.city",
    "region": "user.address.state",
    "postal_code": "user.address.zipcode",
    "country": "user.address.country_code",
    "age": "age",
    "bib": "bib_num",
    "chip": "chip_num",
    "team": "team_name",
    "registered_at": "registration_date",
    "modified_at": "last_modified",
    "amount_paid": "amount_paid",
}


# -- scalar parsers (each names the field it failed on) -------------------------------------
_LOCAL_RE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$")


def parse_local(value: Any, tz: ZoneInfo, field: str) -> datetime | None:
    """``M/D/YYYY H:MM`` (or ``MM/DD/YYYY``) local to ``tz`` -> aware UTC datetime."""
    if value in (None, ""):
        return None
    match = _LOCAL_RE.match(str(value))
    if not match:
        raise MappingError(field, f"expected M/D/YYYY H:MM, got {value!r}")
    month, day, year, hour, minute, second = match.groups()
    try:
        local = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                         int(second or 0), tzinfo=tz)
    except ValueError as exc:
        raise MappingError(field, f"{value!r} is not a valid date/time ({exc})") from None
    return local.astimezone(UTC)


def format_local(value: datetime, tz: ZoneInfo) -> str:
    """Aware datetime -> RunSignUp's ``M/D/YYYY H:MM`` in ``tz`` (simulator, tests)."""
    local = value.astimezone(tz)
    return f"{local.month}/{local.day}/{local.year} {local.hour}:{local.minute:02d}"


def parse_unix(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise MappingError(field, f"expected Unix seconds, got {value!r}") from None


def parse_iso_date(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise MappingError(field, f"expected YYYY-MM-DD, got {value!r}") from None


def parse_bool(value: Any, field: str) -> bool | None:
    if value in (None, ""):
        return None
    if value in ("T", True):
        return True
    if value in ("F", False):
        return False
    raise MappingError(field, f"expected \"T\" or \"F\", got {value!r}")


def parse_money(value: Any, field: str) -> Decimal | None:
    """``"$1,057.75"`` -> Decimal('1057.75')."""
    if value in (None, ""):
        return None
    text = str(value).strip().replace(",", "")
    negative = text.startswith("-")
    text = text.lstrip("-").lstrip("$").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise MappingError(field, f"expected an amount like \"$55.00\", got {value!r}") from None
    if not amount.is_finite():
        raise MappingError(field, f"expected an amount like \"$55.00\", got {value!r}")
    return -amount if negative else amount


def parse_gender(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    code = str(value).strip().upper()
    if code in ("M", "F"):
        return code
    if code in ("X", "N", "O", "NB"):
        return "X"
    raise MappingError(field, f"expected \"M\" or \"F\", got {value!r}")


Warn = Callable[[str, str], None]


def _no_warnings(field: str, message: str) -> None:
    del field, message


def read_gender(value: Any, field: str, warn: Warn) -> str | None:
    """The gender, or None with a warning for a code we do not know: an unknown code never
    costs the row."""
    try:
        return parse_gender(value, field)
    except MappingError as exc:
        warn(field, f"{exc.message}; gender left unknown")
        return None


def parse_bib(value: Any, field: str) -> str | None:
    """A bib as the provider wrote it: a number's digits, or text as sent ("0042" stays
    "0042": leading zeros are part of the bib)."""
    if value in (None, ""):
        return None
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise MappingError(field, f"expected a bib number, got {value!r}")
    if isinstance(value, int | float):
        return str(int(value))
    return text_or_none(value)


def bib_to_wire(bib: str, field: str = "bib_num") -> int | str:
    """A bib for RunSignUp: digits as a number, except with leading zeros (kept as text)."""
    text = bib.strip()
    if not text.isdigit():
        raise MappingError(field, f"RunSignUp bibs are whole numbers, got {bib!r}")
    if text != "0" and text.startswith("0") and ASSUMED["bib_leading_zeros_as_text"]:
        return text
    return int(text)


STATUS_WORDS = {s.value: s for s in ResultStatus if s is not ResultStatus.FINISHED}


def race_zone(race: dict[str, Any], fallback: ZoneInfo | None = None) -> ZoneInfo | None:
    """The race's zone; without one, ``fallback`` (the connection's setting) or None:
    unknown, never guessed."""
    name = race.get("timezone")
    if not name:
        return fallback
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError("race.timezone", f"unknown time zone {name!r}") from None


def setting_zone(value: Any) -> ZoneInfo | None:
    """The connection's ``time_zone`` setting (an IANA name), or None."""
    if value in (None, ""):
        return None
    try:
        return ZoneInfo(str(value).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time_zone: unknown time zone {value!r}") from None


# -- refs -----------------------------------------------------------------------------------
def event_ref(race_id: Any, event_id: Any) -> str:
    return f"{race_id}:{event_id}"


def split_event_ref(ref: str) -> tuple[str, str]:
    race_id, sep, event_id = str(ref).partition(":")
    if not sep or not race_id.isdigit() or not event_id.isdigit():
        raise ValueError(f"RunSignUp event ref must be 'race_id:event_id', got {ref!r}")
    return race_id, event_id


# -- records --------------------------------------------------------------------------------
def fallback_ref(user_id: str, event_id: str) -> str:
    return str(ASSUMED["fallback_ref_format"]).format(user_id=user_id, event_id=event_id)


def map_race_events(race: dict[str, Any], *, fallback_zone: ZoneInfo | None = None,
                    warn: Warn = _no_warnings) -> list[ProviderEvent]:
    """The race's events. Without ``events`` the race is a problem (the caller may read
    them from GET /race/{id} first); without ``timezone`` the events' times are read in
    ``fallback_zone``, or left unset, and a warning says so."""
    race_id = id_text(race.get("race_id"), "race.race_id")
    if not isinstance(race.get("events"), list):
        raise MappingError("race.events", f"no events list for race {race_id} "
                           f"({text_or_none(race.get('name')) or 'no name'})")
    tz = race_zone(race, fallback_zone)
    if not race.get("timezone"):
        warn("race.timezone", f"race {race_id} gives no time zone: " + (
            f"event times read in the connection's time zone {tz.key}" if tz else
            "event times left unset (set the connection's time_zone to read them)"))
    address = race.get("address") or {}
    modified = parse_local(race.get("last_modified"), EASTERN, "race.last_modified")
    events = []
    for i, event in enumerate(race.get("events") or []):
        event_id = id_text(event.get("event_id"), f"race.events[{i}].event_id")
        events.append(ProviderEvent(
            ref=event_ref(race_id, event_id),
            name=text_or_none(event.get("name")) or f"Event {event_id}",
            start_at=(parse_local(event.get("start_time"), tz, f"events[{i}].start_time")
                      if tz else None),
            end_at=(parse_local(event.get("end_time"), tz, f"events[{i}].end_time")
                    if tz else None),
            time_zone=tz.key if tz else None,
            parent_ref=race_id,
            parent_name=text_or_none(race.get("name")),
            distance=text_or_none(event.get("distance")),
            city=text_or_none(address.get("city")),
            region=text_or_none(address.get("state")),
            country=text_or_none(address.get("country_code")),
            modified_at=modified,
            raw={"race": {k: v for k, v in race.items() if k != "events"}, "event": event},
            time_zone_source=None if tz is None else "provider" if race.get("timezone")
            else "setting",
        ))
    return events


def participant_key(row: dict[str, Any], user: dict[str, Any]) -> tuple[str, bool, str | None]:
    """(ref, ref_is_fallback, fallback_ref): the registration id when the row has one,
    else ``user.user_id`` within the event (see ASSUMED)."""
    event_id = id_text(row.get("event_id"), "event_id")
    user_id = user.get("user_id")
    fallback = (None if user_id in (None, "")
                else fallback_ref(id_text(user_id, "user.user_id"), event_id))
    if row.get("registration_id") not in (None, ""):
        return id_text(row.get("registration_id"), "registration_id"), False, fallback
    if fallback is None:
        raise MappingError("registration_id", "missing, and no user.user_id to key the row by")
    return fallback, True, fallback


def map_participant(row: dict[str, Any], race_id: str,
                    warn: Warn = _no_warnings) -> ProviderParticipant:
    if not isinstance(row, dict):
        raise MappingError("row", f"expected an object, got {type(row).__name__}")
    user = row.get("user")
    if not isinstance(user, dict):
        raise MappingError("user", "missing")
    ref, ref_is_fallback, fallback = participant_key(row, user)
    address = user.get("address") or {}
    if not isinstance(address, dict):
        raise MappingError("user.address", "expected an object")
    extra: dict[str, Any] = {}
    if row.get("imported") not in (None, ""):
        extra["imported"] = parse_bool(row.get("imported"), "imported")
    answers = row.get("question_responses") or []
    if answers:
        extra["question_responses"] = answers
    first_name = text_or_none(user.get("first_name"))
    last_name = text_or_none(user.get("last_name"))
    if not first_name and not last_name:
        raise MappingError("user.first_name", "neither first nor last name given")
    return ProviderParticipant(
        ref=ref,
        ref_is_fallback=ref_is_fallback,
        fallback_ref=fallback,
        event_ref=event_ref(race_id, id_text(row.get("event_id"), "event_id")),
        first_name=first_name or "",
        middle_name=text_or_none(user.get("middle_name")),
        last_name=last_name or "",
        email=text_or_none(user.get("email")),
        birth_date=parse_iso_date(user.get("dob"), "user.dob"),
        gender=read_gender(user.get("gender"), "user.gender", warn),
        age=parse_int(row.get("age"), "age"),
        bib=parse_bib(row.get("bib_num"), "bib_num"),
        chip=text_or_none(row.get("chip_num")),
        phone=text_or_none(user.get("phone")),
        team=text_or_none(row.get("team_name")),
        city=text_or_none(address.get("city")),
        region=text_or_none(address.get("state")),
        postal_code=text_or_none(address.get("zipcode")),
        country=text_or_none(address.get("country_code")),
        registered_at=parse_local(row.get("registration_date"), EASTERN, "registration_date"),
        modified_at=parse_unix(row.get("last_modified"), "last_modified"),
        amount_paid=parse_money(row.get("amount_paid"), "amount_paid"),
        person_ref=text_or_none(user.get("user_id")),
        extra=extra,
        raw=row,
    )


def map_removed(row: dict[str, Any], race_id: str) -> ProviderWithdrawal:
    if not isinstance(row, dict):
        raise MappingError("row", f"expected an object, got {type(row).__name__}")
    user = row.get("user")
    ref, _, _ = participant_key(row, user if isinstance(user, dict) else {})
    return ProviderWithdrawal(
        ref=ref,
        event_ref=event_ref(race_id, id_text(row.get("event_id"), "event_id")),
        reason=text_or_none(row.get("removed_reason")),
        withdrawn_at=parse_unix(row.get("last_modified_ts"), "last_modified_ts"),
        raw=row,
    )


def map_result(row: dict[str, Any], ref_of_event: str, *,
               headers: dict[str, str] | None = None,
               warn: Warn = _no_warnings) -> ProviderResult:
    """One result row. Columns beyond RESULT_COLUMNS and splits go to ``extra`` under their
    label in ``headers`` (the reply's ``results_headers``), else under their own name."""
    if not isinstance(row, dict):
        raise MappingError("row", f"expected an object, got {type(row).__name__}")
    labels = headers or {}
    extra: dict[str, str] = {}
    for key, value in row.items():
        if key in RESULT_COLUMNS or key.startswith("split-"):
            continue
        text = text_or_none(value)
        if text is not None:
            extra[labels.get(key) or key] = text
    status = ResultStatus.FINISHED
    clock_raw = row.get("clock_time")
    if isinstance(clock_raw, str) and clock_raw.strip().upper() in STATUS_WORDS:
        status = STATUS_WORDS[clock_raw.strip().upper()]
        clock_raw = None
    splits = {}
    for key, value in row.items():
        if key.startswith("split-") and value not in (None, ""):
            duration = parse_duration(value, key)
            if duration is not None:
                splits[key.removeprefix("split-")] = duration
    return ProviderResult(
        event_ref=ref_of_event,
        ref=text_or_none(row.get("result_id")),
        participant_ref=text_or_none(row.get("registration_id")),
        bib=parse_bib(row.get("bib"), "bib"),
        first_name=text_or_none(row.get("first_name")),
        last_name=text_or_none(row.get("last_name")),
        gender=read_gender(row.get("gender"), "gender", warn),
        age=parse_int(row.get("age"), "age"),
        place=parse_int(row.get("place"), "place"),
        clock_time=parse_duration(clock_raw, "clock_time"),
        chip_time=parse_duration(row.get("chip_time"), "chip_time"),
        status=status,
        splits=splits,
        extra=extra,
        raw=row,
    )


def result_to_wire(result: ProviderResult) -> dict[str, Any]:
    """One row of the documented full-results ``request`` JSON."""
    row: dict[str, Any] = {}
    if result.ref:
        row["result_id"] = int(result.ref) if result.ref.isdigit() else result.ref
    if result.participant_ref:
        row["registration_id"] = int(result.participant_ref)
    if result.bib:
        row["bib"] = bib_to_wire(result.bib, "bib") if result.bib.strip().isdigit() else result.bib
    if result.place is not None:
        row["place"] = result.place
    if result.status is not ResultStatus.FINISHED:
        row["clock_time"] = result.status.value
    elif result.clock_time is not None:
        row["clock_time"] = format_duration(result.clock_time)
    if result.chip_time is not None and result.status is ResultStatus.FINISHED:
        row["chip_time"] = format_duration(result.chip_time)
    for split_id, duration in result.splits.items():
        row[f"split-{split_id}"] = format_duration(duration)
    if "registration_id" not in row and "bib" not in row:
        raise MappingError("bib", "a result needs a registration id or a bib to match on")
    return row


def participant_to_bib_chip(participant: ProviderParticipant) -> dict[str, Any]:
    """Bib/chip assignment row (assumed shape, see ASSUMED)."""
    if participant.ref_is_fallback:
        raise MappingError("registration_id", "RunSignUp sent no registration id for this "
                           f"row ({participant.ref}): bibs are assigned by registration id")
    if not participant.ref.isdigit():
        raise MappingError("registration_id", f"expected a numeric id, got {participant.ref!r}")
    row: dict[str, Any] = {"registration_id": int(participant.ref)}
    if participant.bib is not None:
        row["bib_num"] = bib_to_wire(participant.bib)
    if participant.chip is not None:
        row["chip_num"] = participant.chip
    return row
