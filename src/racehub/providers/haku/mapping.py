"""Haku wire values <-> normalized records.

Facts from PROVIDERS.md (M unless marked): client-credentials token at
``https://prod-auth.hakuapp.com/oauth2/token`` (Basic ``client_id:client_secret``), sent back
RAW in ``Authorization`` (no "Bearer"); base ``https://api.hakuapp.com``; JSON arrays paged
with ``page``/``per_page`` (read until an empty page: the per-page cap is unclear, so a
short page is not the end); the participants list has no bib, chip or
birth date, so each needs ``GET /events/{id}/registrations/{registration_number}``; about
500 calls an hour (L-M). What is L or not documented lives in ASSUMED below, one edit to
correct each.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from racehub.providers.base import ProviderEvent, ProviderParticipant, ProviderWithdrawal
from racehub.providers.values import (
    MappingError,
    parse_int,
    parse_zone,
)

# -- documented ---------------------------------------------------------------------------
PRODUCTION_BASE_URL = "https://api.hakuapp.com"
PRODUCTION_TOKEN_URL = "https://prod-auth.hakuapp.com/oauth2/token"
GRANT = "client_credentials"
EVENTS_ORDER = {"sort_column": "event_date", "sort_direction": "desc", "show_inactive": "true"}
# Newest change first: an incremental read stops at the first row older than `since`.
PARTICIPANTS_ORDER = {"sort_column": "updated_at", "sort_direction": "desc"}
CALLS_PER_HOUR = 500  # (L-M) the budget the scheduler has to spend wisely

# -- ASSUMED (not in any public source we could read; one place to correct) -----------------
ASSUMED: dict[str, Any] = {
    # No reply from the real Haku API has been seen (nothing "seen in real responses" in
    # PROVIDERS.md): every row shape here and in the simulator is from the spec and
    # open-source clients (M), including the list and detail fields read below.
    "real_shapes_unverified": ("events list", "participants list", "registration detail",
                               "token reply", "error bodies"),
    "per_page": 100,  # "25 in the spec, 100-500 used in practice": asked, never relied on
    "rate_burst": 20,  # back-to-back calls after a quiet spell, within the hourly budget
    # Any base URL other than production (staging, a gateway) serves its own token here.
    "token_path": "oauth2/token",
    # The list rows carry `updated_at` (the list sorts by it, so it exists server-side).
    "updated_at_key": "updated_at",
    # Events: ISO-8601 `event_date` (a date alone means local midnight in `time_zone`),
    # and these optional fields.
    "event_fields": {"time_zone": "time_zone", "city": "city", "region": "state",
                     "country": "country", "modified_at": "updated_at"},
    # Gender words seen on Haku forms, case-insensitive.
    "genders": {"m": "M", "male": "M", "man": "M", "f": "F", "female": "F", "woman": "F",
                "x": "X", "non-binary": "X", "nonbinary": "X", "non_binary": "X",
                "other": "X", "prefer not to say": None, "undisclosed": None},
    # Times without an offset are read as UTC.
    "naive_time_zone": "UTC",
}

# Paths within the record a participant keeps (``{"row": list row, "detail": its
# registration detail}``), as a mapping rule's sources name them.
DEFAULT_FIELD_MAPPING: dict[str, str] = {
    "ref": "row.registration_number",
    "first_name": "detail.participant.first_name",
    "last_name": "detail.participant.last_name",
    "email": "detail.participant.email",
    "phone": "detail.participant.phone",
    "birth_date": "detail.participant.dob",
    "gender": "detail.participant.gender",
    "city": "detail.participant.address.city",
    "region": "detail.participant.address.state",
    "postal_code": "detail.participant.address.zip_code",
    "country": "detail.participant.address.country",
    "bib": "detail.event_categories.0.tag_number",
    "chip": "detail.event_categories.0.chip_number",
    "age": "row.age",
    "team": "row.team.name",
    "registered_at": "row.registered_at",
    "modified_at": "row.updated_at",
    "amount_paid": "row.transaction_amount",
}


# -- scalar parsers (each names the field it failed on) -------------------------------------
def text_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text or None


def ref_text(value: Any, field: str) -> str:
    """A required id (Haku's registration numbers and event ids) as text."""
    text = text_or_none(value)
    if text is None or isinstance(value, float):
        raise MappingError(field, "missing" if text is None else f"not an id: {value!r}")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise MappingError(field, f"not an id: {value!r}")
    return text


def parse_time(value: Any, field: str, zone: ZoneInfo | None = None) -> datetime | None:
    """ISO-8601 -> aware UTC; a date alone is local midnight in ``zone``."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time())
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MappingError(field, f"expected an ISO-8601 date-time, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone or ZoneInfo(str(ASSUMED["naive_time_zone"])))
    return parsed.astimezone(UTC)


def parse_date(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise MappingError(field, f"expected YYYY-MM-DD, got {value!r}") from None


def parse_amount(value: Any, field: str) -> Decimal | None:
    """``57.75``, ``"57.75"`` or ``"$57.75"`` -> Decimal (floats via their shortest text)."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise MappingError(field, f"expected an amount, got {value!r}")
    text = str(value).strip().replace(",", "").replace("$", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise MappingError(field, f"expected an amount, got {value!r}") from None
    if not amount.is_finite():
        raise MappingError(field, f"expected an amount, got {value!r}")
    return amount


def parse_gender(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    key = str(value).strip().lower()
    genders: dict[str, str | None] = ASSUMED["genders"]
    if key not in genders:
        raise MappingError(field, f"unknown gender {value!r}")
    return genders[key]


def format_time(value: datetime) -> str:
    """Aware datetime -> ISO-8601 with offset, seconds precision (simulator, tests)."""
    return value.replace(microsecond=0).isoformat()


def split_name(full_name: str | None) -> tuple[str, str]:
    """"Ana María López" -> ("Ana María", "López"): the list row only has a full name."""
    parts = (full_name or "").split()
    if len(parts) < 2:
        return (parts[0] if parts else ""), ""
    return " ".join(parts[:-1]), parts[-1]


# -- records --------------------------------------------------------------------------------
def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MappingError(field, f"expected an object, got {type(value).__name__}")
    return value


def updated_at(row: Any) -> datetime | None:
    """The list row's change time, or None when it is missing or unreadable (the caller
    then treats the row as changed)."""
    if not isinstance(row, dict):
        return None
    try:
        return parse_time(row.get(str(ASSUMED["updated_at_key"])), "updated_at")
    except MappingError:
        return None


def is_cancelled(row: Any) -> bool:
    return isinstance(row, dict) and row.get("is_cancelled") is True


def map_event(row: Any) -> ProviderEvent:
    row = _object(row, "event")
    f: dict[str, str] = ASSUMED["event_fields"]
    zone = parse_zone(row.get(f["time_zone"]), f["time_zone"])
    return ProviderEvent(
        ref=ref_text(row.get("id"), "id"),
        name=text_or_none(row.get("name")) or f"Event {row.get('id')}",
        start_at=parse_time(row.get("event_date"), "event_date", zone),
        time_zone=zone.key if zone else None,
        city=text_or_none(row.get(f["city"])),
        region=text_or_none(row.get(f["region"])),
        country=text_or_none(row.get(f["country"])),
        modified_at=parse_time(row.get(f["modified_at"]), f["modified_at"]),
        raw=row,
    )


def map_participant(row: Any, detail: Any, event_id: str) -> ProviderParticipant:
    """A list row plus its registration detail (bib, chip, birth date, address)."""
    row = _object(row, "row")
    detail = _object(detail, "detail")
    person = _object(detail.get("participant") or {}, "detail.participant")
    address = _object(person.get("address") or {}, "detail.participant.address")
    categories = detail.get("event_categories") or []
    if not isinstance(categories, list) or not all(isinstance(c, dict) for c in categories):
        raise MappingError("detail.event_categories", "expected a list of objects")
    # The bib is the category's tag_number (inferred); take the first category that has one.
    category = next((c for c in categories if text_or_none(c.get("tag_number"))),
                    categories[0] if categories else {})
    first_name = text_or_none(person.get("first_name"))
    last_name = text_or_none(person.get("last_name"))
    if not first_name and not last_name:
        first_name, last_name = split_name(text_or_none(row.get("person_full_name")))
    if not first_name and not last_name:
        raise MappingError("detail.participant.first_name", "no name in the row or its detail")
    team = row.get("team")
    gender_value = person.get("gender") if person.get("gender") not in (None, "") else row.get(
        "gender")
    extra: dict[str, Any] = {}
    for key, value in (("event_category_info", row.get("event_category_info")),
                       ("category", text_or_none(category.get("name"))),
                       ("wave", text_or_none(category.get("wave_name")))):
        if value not in (None, "", {}):
            extra[key] = value
    return ProviderParticipant(
        ref=ref_text(row.get("registration_number"), "registration_number"),
        event_ref=event_id,
        first_name=first_name or "",
        last_name=last_name or "",
        email=text_or_none(person.get("email")) or text_or_none(row.get("email")),
        birth_date=parse_date(person.get("dob"), "detail.participant.dob"),
        gender=parse_gender(gender_value, "detail.participant.gender"),
        age=parse_int(row.get("age"), "age"),
        bib=text_or_none(category.get("tag_number")),
        chip=text_or_none(category.get("chip_number")),
        phone=text_or_none(person.get("phone")),
        team=text_or_none(team.get("name")) if isinstance(team, dict) else text_or_none(team),
        city=text_or_none(address.get("city")),
        region=text_or_none(address.get("state")),
        postal_code=text_or_none(address.get("zip_code")),
        country=text_or_none(address.get("country")),
        registered_at=parse_time(row.get("registered_at"), "registered_at"),
        modified_at=parse_time(row.get(str(ASSUMED["updated_at_key"])), "updated_at"),
        amount_paid=parse_amount(row.get("transaction_amount"), "transaction_amount"),
        extra=extra,
        raw={"row": row, "detail": detail},
    )


def map_withdrawal(row: Any, event_id: str) -> ProviderWithdrawal:
    row = _object(row, "row")
    return ProviderWithdrawal(
        ref=ref_text(row.get("registration_number"), "registration_number"),
        event_ref=event_id,
        reason="cancelled",
        withdrawn_at=parse_time(row.get(str(ASSUMED["updated_at_key"])), "updated_at"),
        raw=row,
    )
