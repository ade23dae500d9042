"""RunSignUp value mapping: properties over generated values, and the fixed DST edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from racehub.providers.base import ProviderResult, ResultStatus
from racehub.providers.runsignup import mapping as m

# Two shared cores: time limits per example would make these fail on a busy machine.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONES = [ZoneInfo(z) for z in ("America/New_York", "America/Chicago", "America/Denver",
                               "America/Phoenix", "America/Los_Angeles", "Pacific/Honolulu")]
minute_instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1),
                               timezones=st.just(UTC)).map(
    lambda d: d.replace(second=0, microsecond=0))


@RELAXED
@given(instant=minute_instants, zone=st.sampled_from(ZONES))
def test_local_times_convert_back_to_the_same_utc_instant(instant: datetime,
                                                          zone: ZoneInfo) -> None:
    local = instant.astimezone(zone)
    # A wall-clock time in the repeated autumn hour names two instants; RunSignUp cannot
    # say which, and we read the first (fold=0).
    assume(local.replace(fold=1).utcoffset() == local.replace(fold=0).utcoffset())
    assert m.parse_local(m.format_local(instant, zone), zone, "f") == instant


@pytest.mark.parametrize(("text", "expected"), [
    ("1/15/2026 9:00", datetime(2026, 1, 15, 14, 0, tzinfo=UTC)),  # EST, UTC-5
    ("7/4/2026 9:00", datetime(2026, 7, 4, 13, 0, tzinfo=UTC)),  # EDT, UTC-4
    ("3/8/2026 1:30", datetime(2026, 3, 8, 6, 30, tzinfo=UTC)),  # just before the jump
    ("3/8/2026 3:30", datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),  # just after it
    ("11/1/2026 1:30", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # repeated hour: first
    ("02/10/2023", datetime(2023, 2, 10, 5, 0, tzinfo=UTC)),  # date only: local midnight
])
def test_eastern_times_become_utc(text: str, expected: datetime) -> None:
    assert m.parse_local(text, m.EASTERN, "registration_date") == expected


@pytest.mark.parametrize("text", ["2026-01-15 09:00", "13/1/2026 9:00", "2/30/2026 9:00",
                                  "1/1/2026 25:00", "soon"])
def test_bad_local_times_name_the_field(text: str) -> None:
    with pytest.raises(m.MappingError) as info:
        m.parse_local(text, m.EASTERN, "registration_date")
    assert info.value.field == "registration_date" and text in str(info.value)


@RELAXED
@given(cents=st.integers(min_value=0, max_value=10**9))
def test_money_strings_parse_to_exact_decimals(cents: int) -> None:
    amount = Decimal(cents) / 100
    assert m.parse_money(f"${amount:,.2f}", "amount_paid") == amount


@pytest.mark.parametrize(("text", "expected"), [
    ("$57.75", Decimal("57.75")), ("$1,057.00", Decimal("1057.00")),
    ("-$5.00", Decimal("-5.00")), ("12", Decimal("12")), ("", None), (None, None),
])
def test_money_examples(text: str | None, expected: Decimal | None) -> None:
    assert m.parse_money(text, "amount_paid") == expected


@pytest.mark.parametrize("text", ["fifty", "$", "$NaN", "$Infinity"])
def test_bad_money_is_a_row_problem(text: str) -> None:
    with pytest.raises(m.MappingError, match="amount_paid"):
        m.parse_money(text, "amount_paid")


@RELAXED
@given(ms=st.integers(min_value=0, max_value=100 * 3600 * 1000))
def test_durations_round_trip_at_millisecond_precision(ms: int) -> None:
    duration = timedelta(milliseconds=ms)
    assert m.parse_duration(m.format_duration(duration), "clock_time") == duration


def test_booleans_are_t_and_f_only() -> None:
    assert m.parse_bool("T", "imported") is True
    assert m.parse_bool("F", "imported") is False
    assert m.parse_bool(None, "imported") is None
    with pytest.raises(m.MappingError):
        m.parse_bool("yes", "imported")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
row_keys = st.sampled_from(["registration_id", "event_id", "bib_num", "age", "amount_paid",
                            "registration_date", "last_modified", "imported", "user"])
user_keys = st.sampled_from(["first_name", "last_name", "dob", "gender", "address", "email"])


@RELAXED
@given(row=st.dictionaries(row_keys, json_values, max_size=9),
       user=st.dictionaries(user_keys, json_values, max_size=6))
def test_any_row_maps_or_fails_with_a_named_field(row: dict[str, Any],
                                                  user: dict[str, Any]) -> None:
    row = dict(row)
    if "user" in row and isinstance(row["user"], dict):
        row["user"] = user
    try:
        participant = m.map_participant(row, "100")
    except m.MappingError as exc:
        assert exc.field
        return
    assert participant.ref.isdigit() and participant.event_ref.startswith("100:")
    assert participant.first_name or participant.last_name


@RELAXED
@given(bib=st.integers(min_value=1, max_value=999_999),
       ms=st.integers(min_value=1, max_value=10 * 3600 * 1000),
       status=st.sampled_from(list(ResultStatus)))
def test_results_to_the_wire_and_back_keep_bib_time_and_status(bib: int, ms: int,
                                                               status: ResultStatus) -> None:
    result = ProviderResult(event_ref="1:2", bib=str(bib), place=3, status=status,
                            clock_time=timedelta(milliseconds=ms),
                            chip_time=timedelta(milliseconds=ms))
    back = m.map_result(m.result_to_wire(result), "1:2")
    assert (back.bib, back.status) == (str(bib), status)
    if status is ResultStatus.FINISHED:
        assert back.clock_time == back.chip_time == timedelta(milliseconds=ms)
    else:
        assert back.clock_time is None and back.chip_time is None


def test_a_result_without_bib_or_registration_cannot_be_matched() -> None:
    with pytest.raises(m.MappingError, match="bib"):
        m.result_to_wire(ProviderResult(event_ref="1:2", place=1))


def test_race_events_use_the_race_time_zone_and_keep_the_raw_payload() -> None:
    race = {"race_id": 85675, "name": "Running Up For Air", "timezone": "America/Denver",
            "last_modified": "2/8/2023 21:39", "address": {"city": "Salt Lake City"},
            "events": [{"event_id": 661702, "name": "24 hr", "start_time": "2/10/2023 18:00",
                        "end_time": "2/11/2023 18:00"}]}
    (event,) = m.map_race_events(race)
    assert event.ref == "85675:661702" and event.parent_name == "Running Up For Air"
    assert event.start_at == datetime(2023, 2, 11, 1, 0, tzinfo=UTC)  # MST, UTC-7
    assert event.modified_at == datetime(2023, 2, 9, 2, 39, tzinfo=UTC)  # Eastern
    assert event.raw["event"]["event_id"] == 661702


def test_an_unknown_race_time_zone_is_a_named_problem() -> None:
    with pytest.raises(m.MappingError, match="race.timezone"):
        m.map_race_events({"race_id": 1, "timezone": "Mars/Olympus", "events": []})


def test_event_refs_must_name_race_and_event() -> None:
    assert m.split_event_ref("85675:661702") == ("85675", "661702")
    with pytest.raises(ValueError, match="race_id:event_id"):
        m.split_event_ref("661702")


@RELAXED
@given(bib=st.from_regex(r"\A[0-9]{1,8}\Z"))
def test_bibs_survive_the_round_trip_with_their_leading_zeros(bib: str) -> None:
    wire = m.bib_to_wire(bib)
    assert m.parse_bib(wire, "bib_num") == bib
    assert isinstance(wire, int) == (bib == "0" or not bib.startswith("0"))
