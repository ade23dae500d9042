"""ChronoTrack Live wire values <-> normalized records.

Facts from PROVIDERS.md (M unless marked): ``format=json``; auth by ``client_id``,
``user_id`` and ``user_pass`` = SHA-1 hex of the password; every GET answers an object whose
single wrapper key names the list (``event``, ``event_race``, ``event_entry``,
``race_entry``, ``event_results``, ``race_results``); paging by ``page``/``size`` with
``X-Ctlive-*`` headers; values mostly strings; event start as epoch seconds.
Everything marked L or unknown there lives in ASSUMED below: one edit to correct each.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from racehub.providers import values
from racehub.providers.base import (
    ProviderEvent,
    ProviderParticipant,
    ProviderResult,
    ResultStatus,
)
from racehub.providers.values import (
    MappingError,
    id_text,
    parse_duration,
    parse_int,
    parse_zone,
    text_or_none,
)

# -- documented ---------------------------------------------------------------------------
WRAP_EVENTS = "event"
WRAP_EVENT_RACES = "event_race"
WRAP_EVENT_ENTRIES = "event_entry"
WRAP_RACE_ENTRIES = "race_entry"
WRAP_EVENT_RESULTS = "event_results"
WRAP_RACE_RESULTS = "race_results"

HEADER_ROW_COUNT = "X-Ctlive-Row-Count"
HEADER_PAGE_COUNT = "X-Ctlive-Page-Count"
HEADER_PAGE_SIZE = "X-Ctlive-Page-Size"
HEADER_CURRENT_PAGE = "X-Ctlive-Current-Page"

BRACKET_TYPES = ("OPEN", "SEX", "AGE", "ELITE", "OTHER")  # H

# -- ASSUMED (L or not in any public source; one place to correct) -------------------------
ASSUMED: dict[str, Any] = {
    # No real entry list has been seen (PROVIDERS.md: M, from open-source clients): the
    # entry row fields read here and served by the simulator are unverified, like the
    # entry upload below.
    "real_shapes_unverified": ("entry rows", "entry upload", "event and race fields"),
    # Sex codes: "U" is unknown (seen in real data); these are read as non-binary.
    "unknown_sex_codes": frozenset({"U", "UNKNOWN"}),
    "non_binary_sex_codes": frozenset({"X", "NB", "O", "NON-BINARY"}),
    # Rate limit unknown: stay polite.
    "rate_per_second": 3.0,
    "rate_burst": 6,
    # Largest ``size`` the API honours; unknown, the clients seen use 50-250.
    "max_page_size": 250,
    "default_page_size": 100,
    # Incremental reads: no documented filter. We send this epoch-seconds parameter AND
    # filter on the row's modification field, so a server ignoring it still works.
    "since_param": "modified_after",
    "entry_modified_field": "entry_modified_time",
    # Event fields beyond the start (epoch seconds, M).
    "event_fields": {"id": "event_id", "name": "event_name", "start": "event_start_time",
                     "end": "event_end_time", "time_zone": "event_timezone",
                     "city": "location_city", "region": "location_region",
                     "country": "location_country", "modified": "event_modified_time"},
    "race_fields": {"id": "race_id", "name": "race_name", "start": "race_planned_start_time",
                    "distance": "race_course_distance"},
    # Entries carry their race id (event-level entry lists mix races).
    "entry_race_field": "race_id",
    "entry_external_field": "entry_external_id",
    "birthdate_format": "%Y-%m-%d",
    # The name of the finish interval in results.
    "finish_interval": "Finish",
    # Entry upload (not publicly documented): path, body wrapper and reply keys.
    "entry_upload_path": "race/{race_id}/entry",
    "entry_upload_wrapper": "race_entry",
    "entry_upload_reply_created": "created",
    "entry_upload_reply_updated": "updated",
    "entry_upload_reply_errors": "errors",
    "entries_per_upload": 500,
    # Withdrawal (not publicly documented): the entry is kept and marked as not starting
    # through the same upload, ``{entry_external_id, entry_status: "DNS"}``, rather than
    # removed: a removal would lose what the timer recorded for it, and no delete endpoint
    # is known. A pushed entry is sent as confirmed, so a participant withdrawn and then
    # back is confirmed again. An upload row naming an unknown external id without the
    # athlete's names is refused (there is nothing to withdraw). The bib of an entry marked
    # DNS may be given to another entry (a re-push under new ids after an identifier mode
    # change reuses every bib).
    "entry_status_field": "entry_status",
    "entry_active_status": "CONF",
    "entry_withdrawn_status": "DNS",
}

DEFAULT_FIELD_MAPPING: dict[str, str] = {
    "ref": "entry_id",
    "bib": "entry_bib",
    "age": "entry_race_age",
    "first_name": "athlete_first_name",
    "last_name": "athlete_last_name",
    "gender": "athlete_sex",
    "birth_date": "athlete_birthdate",
    "email": "athlete_email",
    "city": "location_city",
    "region": "location_region",
}


def hash_password(password: str) -> str:
    """``user_pass`` on the wire: the SHA-1 hex digest of the password."""
    return hashlib.sha1(password.encode("utf-8")).hexdigest()


# -- scalar parsers --------------------------------------------------------------------------
def parse_epoch(value: Any, field: str) -> datetime | None:
    """Epoch seconds (a string on the wire, like every value) -> aware UTC datetime."""
    if value in (None, "", "0", 0):
        return None
    try:
        return datetime.fromtimestamp(int(str(value).strip()), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise MappingError(field, f"expected epoch seconds, got {value!r}") from None


def parse_birthdate(value: Any, field: str) -> date | None:
    if value in (None, "", "0000-00-00"):
        return None
    try:
        return datetime.strptime(str(value).strip(), ASSUMED["birthdate_format"]).date()
    except ValueError:
        raise MappingError(field, f"expected YYYY-MM-DD, got {value!r}") from None


def parse_sex(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    code = str(value).strip().upper()
    if code in ("M", "MALE"):
        return "M"
    if code in ("F", "FEMALE"):
        return "F"
    if code in ASSUMED["unknown_sex_codes"]:
        return None  # "U" is unknown, not non-binary
    if code in ASSUMED["non_binary_sex_codes"]:
        return "X"
    raise MappingError(field, f"expected \"M\", \"F\" or \"U\", got {value!r}")


STATUS_WORDS = {s.value: s for s in ResultStatus if s is not ResultStatus.FINISHED}


def format_duration(value: timedelta) -> str:
    """timedelta -> ``HH:MM:SS`` (with ``.fff`` when there are milliseconds)."""
    return values.format_duration(value, two_digit_hours=True, always_millis=False)


# -- refs ------------------------------------------------------------------------------------
def event_ref(event_id: Any, race_id: Any | None = None) -> str:
    """``"event_id:race_id"`` for one race, or ``"event_id"`` for a whole event."""
    return f"{event_id}:{race_id}" if race_id not in (None, "") else str(event_id)


def split_event_ref(ref: str) -> tuple[str, str | None]:
    event_id, sep, race_id = str(ref).strip().partition(":")
    if not event_id.isdigit() or (sep and not race_id.isdigit()):
        raise ValueError(f"ChronoTrack event ref must be 'event_id' or 'event_id:race_id', "
                         f"got {ref!r}")
    return event_id, (race_id or None)


# -- records ---------------------------------------------------------------------------------
def map_race(event: dict[str, Any], race: dict[str, Any]) -> ProviderEvent:
    """One race of an event (what participants register for) -> ProviderEvent."""
    ef, rf = ASSUMED["event_fields"], ASSUMED["race_fields"]
    event_id = id_text(event.get(ef["id"]), ef["id"])
    race_id = id_text(race.get(rf["id"]), rf["id"])
    zone = parse_zone(event.get(ef["time_zone"]), ef["time_zone"])
    start = (parse_epoch(race.get(rf["start"]), rf["start"])
             or parse_epoch(event.get(ef["start"]), ef["start"]))
    return ProviderEvent(
        ref=event_ref(event_id, race_id),
        name=text_or_none(race.get(rf["name"])) or f"Race {race_id}",
        start_at=start,
        end_at=parse_epoch(event.get(ef["end"]), ef["end"]),
        time_zone=zone.key if zone else None,
        parent_ref=event_id,
        parent_name=text_or_none(event.get(ef["name"])),
        distance=text_or_none(race.get(rf["distance"])),
        city=text_or_none(event.get(ef["city"])),
        region=text_or_none(event.get(ef["region"])),
        country=text_or_none(event.get(ef["country"])),
        modified_at=parse_epoch(event.get(ef["modified"]), ef["modified"]),
        raw={"event": event, "race": race},
    )


def map_entry(row: Any, fallback_event_ref: str) -> ProviderParticipant:
    if not isinstance(row, dict):
        raise MappingError("row", f"expected an object, got {type(row).__name__}")
    first = text_or_none(row.get("athlete_first_name"))
    last = text_or_none(row.get("athlete_last_name"))
    if not first and not last:
        raise MappingError("athlete_first_name", "neither first nor last name given")
    event_id, _ = split_event_ref(fallback_event_ref)
    race_id = text_or_none(row.get(ASSUMED["entry_race_field"]))
    extra: dict[str, Any] = {}
    for key, name in (("entry_status", "status"), ("race_name", "race_name"),
                      (ASSUMED["entry_external_field"], "external_id")):
        if (value := text_or_none(row.get(key))) is not None:
            extra[name] = value
    return ProviderParticipant(
        ref=id_text(row.get("entry_id"), "entry_id"),
        event_ref=event_ref(event_id, race_id) if race_id else fallback_event_ref,
        first_name=first or "",
        last_name=last or "",
        email=text_or_none(row.get("athlete_email")),
        birth_date=parse_birthdate(row.get("athlete_birthdate"), "athlete_birthdate"),
        gender=parse_sex(row.get("athlete_sex"), "athlete_sex"),
        age=parse_int(row.get("entry_race_age"), "entry_race_age"),
        bib=text_or_none(row.get("entry_bib")),
        city=text_or_none(row.get("location_city")),
        region=text_or_none(row.get("location_region")),
        modified_at=parse_epoch(row.get(ASSUMED["entry_modified_field"]),
                                ASSUMED["entry_modified_field"]),
        extra=extra,
        raw=row,
    )


def map_result(row: Any, ref_of_event: str) -> ProviderResult:
    if not isinstance(row, dict):
        raise MappingError("row", f"expected an object, got {type(row).__name__}")
    interval = text_or_none(row.get("results_interval_name")) or ASSUMED["finish_interval"]
    status = ResultStatus.FINISHED
    chip_raw = row.get("results_time")
    gun_raw = row.get("results_gun_time")
    if isinstance(chip_raw, str) and chip_raw.strip().upper() in STATUS_WORDS:
        status = STATUS_WORDS[chip_raw.strip().upper()]
        chip_raw = gun_raw = None
    chip = parse_duration(chip_raw, "results_time")
    gun = parse_duration(gun_raw, "results_gun_time")
    is_finish = interval.lower() == str(ASSUMED["finish_interval"]).lower()
    # A row of another interval is a split of that entry, not its finish.
    splits = {} if is_finish or chip is None else {interval: chip}
    return ProviderResult(
        event_ref=ref_of_event,
        participant_ref=text_or_none(row.get("results_entry_id")),
        bib=text_or_none(row.get("results_bib")),
        first_name=text_or_none(row.get("results_first_name")),
        last_name=text_or_none(row.get("results_last_name")),
        gender=parse_sex(row.get("results_sex"), "results_sex"),
        age=parse_int(row.get("results_age"), "results_age"),
        place=parse_int(row.get("results_rank"), "results_rank") if is_finish else None,
        clock_time=gun if is_finish else None,
        chip_time=chip if is_finish else None,
        status=status,
        splits=splits,
        division=text_or_none(row.get("results_primary_bracket_name")),
        raw=row,
    )


def participant_to_entry(participant: ProviderParticipant) -> dict[str, str]:
    """One row of the (assumed) entry upload; every value a string, as ChronoTrack sends.

    The external id is racehub's stable participant ref, never the bib: bibs change."""
    if not participant.ref.strip():
        raise MappingError(ASSUMED["entry_external_field"], "a participant needs a stable id")
    if not (participant.first_name or participant.last_name):
        raise MappingError("athlete_first_name", "neither first nor last name given")
    row = {
        ASSUMED["entry_external_field"]: participant.ref.strip(),
        "athlete_first_name": participant.first_name,
        "athlete_last_name": participant.last_name,
        ASSUMED["entry_status_field"]: ASSUMED["entry_active_status"],
    }
    optional = {
        "entry_bib": participant.bib,
        "athlete_sex": participant.gender,
        "athlete_birthdate": (participant.birth_date.strftime(ASSUMED["birthdate_format"])
                              if participant.birth_date else None),
        "athlete_email": participant.email,
        "entry_race_age": str(participant.age) if participant.age is not None else None,
        "location_city": participant.city,
        "location_region": participant.region,
    }
    row.update({k: str(v) for k, v in optional.items() if v not in (None, "")})
    return row


def withdrawal_entry(ref: str) -> dict[str, str]:
    """One row of the (assumed) entry upload marking a pushed entry as not starting."""
    if not ref.strip():
        raise MappingError(ASSUMED["entry_external_field"], "a withdrawal needs the stable id")
    return {ASSUMED["entry_external_field"]: ref.strip(),
            ASSUMED["entry_status_field"]: ASSUMED["entry_withdrawn_status"]}
