"""Race Roster value mapping: properties over generated values, and fixed examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from racehub.providers.base import ResultStatus
from racehub.providers.raceroster import mapping as m
from racehub.providers.values import format_duration

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
    wire = m.format_time(instant.astimezone(offset))
    parsed = m.parse_time(wire, "startDate")
    assert parsed == instant and parsed is not None and parsed.utcoffset() == timedelta(0)


def test_zulu_and_naive_times_are_utc() -> None:
    assert m.parse_time("2026-10-04T11:30:00Z", "f") == datetime(2026, 10, 4, 11, 30,
                                                                  tzinfo=UTC)
    assert m.parse_time("2026-10-04T11:30:00", "f") == datetime(2026, 10, 4, 11, 30, tzinfo=UTC)


@RELAXED
@given(code=st.integers(min_value=-5, max_value=20), as_text=st.booleans())
def test_gender_codes_map_as_documented_or_name_the_field(code: int, as_text: bool) -> None:
    value: Any = str(code) if as_text else code
    if code in (0, 1, 2, 8, 9):
        assert m.parse_gender(value, "gender") == {0: None, 1: "M", 2: "F", 8: None,
                                                   9: "X"}[code]
    else:
        with pytest.raises(m.MappingError) as info:
            m.parse_gender(value, "gender")
        assert info.value.field == "gender" and "unknown gender code" in info.value.message


@RELAXED
@given(ms=st.integers(min_value=0, max_value=100 * 3600 * 1000))
def test_durations_round_trip_at_millisecond_precision(ms: int) -> None:
    duration = timedelta(milliseconds=ms)
    assert m.parse_duration(format_duration(duration), "gunTime") == duration


@pytest.mark.parametrize("text", ["1:60:00", "soon", "1:2:3:4", "-0:01:00", "0:00:60"])
def test_bad_durations_name_the_field(text: str) -> None:
    with pytest.raises(m.MappingError, match="gunTime"):
        m.parse_duration(text, "gunTime")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
row_keys = st.sampled_from(["registrationId", "subEventId", "firstName", "lastName", "email",
                            "dateOfBirth", "gender", "bibNumber", "status",
                            "lastModifiedDate"])


@RELAXED
@given(row=st.dictionaries(row_keys, json_values, max_size=10))
def test_any_registration_maps_or_fails_with_a_named_field(row: dict[str, Any]) -> None:
    try:
        participant = m.map_registration(row, "150000")
    except m.MappingError as exc:
        assert exc.field and exc.message
        return
    assert participant.ref.isdigit() and participant.event_ref.startswith("150000:")
    assert participant.first_name or participant.last_name
    assert participant.gender in (None, "M", "F", "X")
    assert participant.modified_at is None or participant.modified_at.tzinfo is not None


@RELAXED
@given(registration_id=st.integers(min_value=1, max_value=10**9),
       sub_event_id=st.integers(min_value=1, max_value=10**7),
       code=st.sampled_from([0, 1, 2, 8, 9]),
       born=st.dates(min_value=datetime(1920, 1, 1).date(),
                     max_value=datetime(2025, 1, 1).date()),
       bib=st.one_of(st.none(), st.from_regex(r"[0-9A-Z]{1,6}", fullmatch=True)))
def test_well_formed_registrations_keep_their_values(registration_id: int, sub_event_id: int,
                                                     code: int, born: Any,
                                                     bib: str | None) -> None:
    row = {"registrationId": registration_id, "subEventId": sub_event_id, "firstName": "Léa",
           "lastName": "Hébert", "dateOfBirth": born.isoformat(), "gender": code,
           "bibNumber": bib, "status": "active",
           "lastModifiedDate": "2026-05-01T09:00:00-06:00"}
    participant = m.map_registration(row, "7")
    assert participant.ref == str(registration_id)
    assert participant.event_ref == f"7:{sub_event_id}"
    assert participant.birth_date == born and participant.bib == bib
    assert participant.extra["gender_code"] == code
    assert participant.modified_at == datetime(2026, 5, 1, 15, 0, tzinfo=UTC)


def test_withdrawn_statuses_are_recognised_whatever_their_case() -> None:
    assert m.is_withdrawn({"status": "Cancelled"})
    assert m.is_withdrawn({"status": "refunded"})
    assert not m.is_withdrawn({"status": "active"})
    assert not m.is_withdrawn({"status": None})


def test_an_event_becomes_one_event_per_sub_event_in_utc() -> None:
    event = {"eventId": 151, "name": "Harbour Run", "city": "Halifax", "region": {"code": "NS"},
             "country": {"code": "CA"}, "startDate": "2026-06-21T08:00:00-03:00",
             "timeZone": "America/Halifax", "lastModifiedDate": "2026-05-01T12:00:00Z",
             "subEvents": {"data": [
                 {"subEventId": 9, "name": "5K", "subEventDistance": {"label": "5K"}},
                 {"subEventId": 10, "name": "10K"}]}}
    five, ten = m.map_event(event)
    assert (five.ref, ten.ref) == ("151:9", "151:10")
    assert five.start_at == datetime(2026, 6, 21, 11, 0, tzinfo=UTC)  # ADT = UTC-3
    assert (five.region, five.country, five.distance, ten.distance) == ("NS", "CA", "5K", None)
    assert five.raw["subEvent"]["subEventId"] == 9 and "subEvents" not in five.raw["event"]


@pytest.mark.parametrize(("event", "field"), [
    ({"eventId": "x1", "subEvents": {"data": []}}, "eventId"),
    ({"eventId": 1, "timeZone": "Mars/Olympus", "subEvents": {"data": []}}, "timeZone"),
    ({"eventId": 1, "startDate": "next week", "subEvents": {"data": []}}, "startDate"),
    ({"eventId": 1, "subEvents": {"data": [{"name": "5K"}]}}, "subEvents.data[0].subEventId"),
    ({"eventId": 1}, "subEvents.data"),
])
def test_bad_events_name_the_field(event: dict[str, Any], field: str) -> None:
    with pytest.raises(m.MappingError) as info:
        m.map_event(event)
    assert info.value.field == field


def test_results_carry_status_and_drop_times_of_non_finishers() -> None:
    dnf = m.map_result({"resultId": 5, "bibNumber": "12", "status": "dnf",
                        "gunTime": "0:30:00"}, "1:2")
    assert dnf.status is ResultStatus.DNF and dnf.clock_time is None and dnf.bib == "12"
    with pytest.raises(m.MappingError, match="status"):
        m.map_result({"status": "LOST"}, "1:2")


def test_event_refs_name_an_event_and_maybe_a_sub_event() -> None:
    assert m.split_event_ref("151:9") == ("151", "9")
    assert m.split_event_ref("151") == ("151", None)
    with pytest.raises(ValueError, match="eventId:subEventId"):
        m.split_event_ref("151:x")


@pytest.mark.parametrize("body", [
    {"access_token": "t"}, {"data": {"access_token": "t"}}, {"data": [{"access_token": "t"}]}])
def test_a_token_reply_bare_wrapped_or_in_a_one_item_list(body: dict[str, Any]) -> None:
    assert m.unwrap_token(body) == {"access_token": "t"}


def test_a_v2_result_row_as_seen_in_real_responses() -> None:
    row = {"id": "k779gnpstcnydzxd", "overallPlace": 1, "name": "Anne Marie Tremblay ",
           "gunTime": "1:08:58.1", "chipTime": "16:21.6", "division": "F35-39",
           "divisionPlace": "1 / 3", "genderSexId": "Female", "genderPlace": "1 / 20",
           "overallPace": "4:41 ", "fromCity": "Halifax ", "custom123": ""}
    result = m.map_result_v2(row, "1:2")
    assert (result.ref, result.first_name, result.last_name, result.gender) == (
        "k779gnpstcnydzxd", "Anne", "Marie Tremblay", "F")
    assert result.chip_time == timedelta(minutes=16, seconds=21.6)
    assert result.clock_time == timedelta(hours=1, minutes=8, seconds=58.1)
    assert (result.bib, result.place, result.division) == (None, 1, "F35-39")
    assert result.extra == {"divisionPlace": "1 / 3", "genderPlace": "1 / 20",
                            "overallPace": "4:41", "fromCity": "Halifax"}


def test_a_v2_row_with_an_unknown_gender_label_keeps_it_and_one_without_time_is_dnf() -> None:
    result = m.map_result_v2({"id": "x", "name": "Sam", "genderSexId": "Co-ed",
                              "overallPlace": "", "chipTime": "", "gunTime": ""}, "1:2")
    assert (result.gender, result.extra["genderSexId"]) == (None, "Co-ed")
    assert (result.status, result.place, result.first_name, result.last_name) == (
        ResultStatus.DNF, None, "Sam", None)
    with pytest.raises(m.MappingError) as info:
        m.map_result_v2({"id": "y", "name": " "}, "1:2")
    assert info.value.field == "name"
