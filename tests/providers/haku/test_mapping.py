"""Haku value mapping: properties over generated values, and fixed examples."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from racehub.providers.haku import mapping as m

# Two shared cores: time limits per example would make these fail on a busy machine.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2050, 1, 1),
                        timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes)))


@RELAXED
@given(instant=instants, offset=offsets)
def test_times_with_any_offset_become_the_same_utc_instant(instant: datetime,
                                                           offset: timezone) -> None:
    assert m.parse_time(m.format_time(instant.astimezone(offset)), "registered_at") == instant


def test_a_date_alone_is_local_midnight_in_the_events_zone() -> None:
    chicago = ZoneInfo("America/Chicago")
    assert m.parse_time("2026-07-04", "event_date", chicago) == datetime(2026, 7, 4, 5, 0,
                                                                        tzinfo=UTC)
    assert m.parse_time("2026-07-04", "event_date") == datetime(2026, 7, 4, tzinfo=UTC)


@RELAXED
@given(cents=st.integers(min_value=0, max_value=10**9), as_float=st.booleans())
def test_amounts_parse_to_exact_decimals(cents: int, as_float: bool) -> None:
    amount = Decimal(cents) / 100
    wire: Any = float(amount) if as_float else f"{amount:.2f}"
    assert m.parse_amount(wire, "transaction_amount") == amount


@pytest.mark.parametrize("value", ["forty", "NaN", "Infinity", True])
def test_bad_amounts_name_the_field(value: Any) -> None:
    with pytest.raises(m.MappingError, match="transaction_amount"):
        m.parse_amount(value, "transaction_amount")


@RELAXED
@given(word=st.sampled_from(sorted(m.ASSUMED["genders"])), upper=st.booleans())
def test_known_gender_words_map_whatever_their_case(word: str, upper: bool) -> None:
    value = word.upper() if upper else word
    assert m.parse_gender(value, "gender") in ("M", "F", "X", None)
    assert m.parse_gender(value, "gender") == m.ASSUMED["genders"][word]


@RELAXED
@given(word=st.text(min_size=1, max_size=12).filter(
    lambda w: w.strip() and w.strip().lower() not in m.ASSUMED["genders"]))
def test_unknown_gender_words_name_the_field(word: str) -> None:
    with pytest.raises(m.MappingError) as info:
        m.parse_gender(word, "detail.participant.gender")
    assert info.value.field == "detail.participant.gender"


@RELAXED
@given(names=st.lists(st.from_regex(r"[A-Za-zÀ-ÿ'-]{1,10}", fullmatch=True), min_size=2,
                      max_size=4))
def test_full_names_split_into_given_names_and_the_last_word(names: list[str]) -> None:
    first, last = m.split_name(" ".join(names))
    assert (first, last) == (" ".join(names[:-1]), names[-1])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
row_keys = st.sampled_from(["registration_number", "person_full_name", "email", "age",
                            "gender", "team", "registered_at", "updated_at", "is_cancelled",
                            "transaction_amount"])
detail_keys = st.sampled_from(["participant", "event_categories", "registration_number"])


@RELAXED
@given(row=st.dictionaries(row_keys, json_values, max_size=10),
       detail=st.dictionaries(detail_keys, json_values, max_size=3))
def test_any_row_and_detail_map_or_fail_with_a_named_field(row: dict[str, Any],
                                                           detail: dict[str, Any]) -> None:
    try:
        participant = m.map_participant(row, detail, "52000")
    except m.MappingError as exc:
        assert exc.field and exc.message
        return
    assert participant.ref and participant.event_ref == "52000"
    assert participant.first_name or participant.last_name
    assert participant.gender in (None, "M", "F", "X")


@RELAXED
@given(number=st.from_regex(r"R[0-9]{5,9}", fullmatch=True),
       bib=st.one_of(st.none(), st.from_regex(r"[0-9]{1,6}", fullmatch=True)),
       born=st.dates(min_value=date(1920, 1, 1), max_value=date(2025, 1, 1)))
def test_bib_chip_and_birth_date_come_from_the_detail(number: str, bib: str | None,
                                                      born: date) -> None:
    row = {"registration_number": number, "person_full_name": "Ana María López",
           "gender": "Female", "registered_at": "2026-02-01T10:00:00-05:00",
           "updated_at": "2026-02-02T10:00:00Z", "transaction_amount": 45.5,
           "team": {"name": "Trail Dogs"}}
    detail = {"registration_number": number,
              "participant": {"dob": born.isoformat(), "address": {"zip_code": "37201"}},
              "event_categories": [{"name": "10K", "tag_number": bib, "chip_number": "E2"}]}
    participant = m.map_participant(row, detail, "7")
    assert (participant.ref, participant.bib, participant.birth_date) == (number, bib, born)
    assert (participant.first_name, participant.last_name) == ("Ana María", "López")
    assert participant.gender == "F" and participant.team == "Trail Dogs"
    assert participant.registered_at == datetime(2026, 2, 1, 15, 0, tzinfo=UTC)
    assert participant.amount_paid == Decimal("45.5") and participant.postal_code == "37201"


def test_the_first_category_with_a_tag_number_gives_the_bib() -> None:
    detail = {"participant": {"first_name": "Kofi"},
              "event_categories": [{"name": "Donation"},
                                   {"name": "5K", "tag_number": "512", "chip_number": "C9"}]}
    participant = m.map_participant({"registration_number": "R1"}, detail, "7")
    assert (participant.bib, participant.chip, participant.extra["category"]) == (
        "512", "C9", "5K")


def test_change_times_that_cannot_be_read_count_as_changed() -> None:
    assert m.updated_at({"updated_at": "soon"}) is None
    assert m.updated_at({"updated_at": "2026-01-01T00:00:00Z"}) == datetime(2026, 1, 1,
                                                                            tzinfo=UTC)
    assert m.is_cancelled({"is_cancelled": True}) and not m.is_cancelled({"is_cancelled": 1})


@pytest.mark.parametrize(("event", "field"), [
    ({"name": "No id"}, "id"),
    ({"id": 1, "event_date": "someday"}, "event_date"),
    ({"id": 1, "time_zone": "Mars/Olympus"}, "time_zone"),
])
def test_bad_events_name_the_field(event: dict[str, Any], field: str) -> None:
    with pytest.raises(m.MappingError) as info:
        m.map_event(event)
    assert info.value.field == field
