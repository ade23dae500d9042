"""ChronoTrack value mapping: properties over generated values, and fixed examples."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from racehub.providers.base import ProviderParticipant, ResultStatus
from racehub.providers.chronotrack import mapping as m

# Two shared cores: time limits per example would make these fail on a busy machine.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
names = st.text(st.characters(categories=["L"]), min_size=1, max_size=20).map(str.strip).filter(
    bool)


def test_user_pass_is_the_sha1_hex_of_the_password() -> None:
    assert m.hash_password("secret") == "e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4"
    assert m.hash_password("Zoë") == hashlib.sha1("Zoë".encode()).hexdigest()


@RELAXED
@given(instant=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                            timezones=st.just(UTC)))
def test_epoch_strings_become_the_same_utc_instant(instant: datetime) -> None:
    whole = instant.replace(microsecond=0)
    assert m.parse_epoch(str(int(whole.timestamp())), "event_start_time") == whole


@pytest.mark.parametrize("value", ["soon", "12:00", "1.5e9x"])
def test_bad_epochs_name_the_field(value: str) -> None:
    with pytest.raises(m.MappingError) as info:
        m.parse_epoch(value, "event_start_time")
    assert info.value.field == "event_start_time" and value in str(info.value)


@RELAXED
@given(ms=st.integers(min_value=0, max_value=99 * 3600 * 1000))
def test_durations_round_trip_at_millisecond_precision(ms: int) -> None:
    duration = timedelta(milliseconds=ms)
    assert m.parse_duration(m.format_duration(duration), "results_time") == duration


@pytest.mark.parametrize(("text", "expected"), [
    ("00:25:04", timedelta(minutes=25, seconds=4)), ("25:04", timedelta(minutes=25, seconds=4)),
    ("1:02:03.5", timedelta(hours=1, minutes=2, seconds=3.5)), ("", None),
])
def test_duration_examples(text: str, expected: timedelta | None) -> None:
    assert m.parse_duration(text, "results_time") == expected


@RELAXED
@given(first=names, last=names, bib=st.from_regex(r"[0-9]{1,6}", fullmatch=True),
       age=st.integers(min_value=1, max_value=110),
       birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
       sex=st.sampled_from(["M", "F", "X"]), ref=st.from_regex(r"[A-Za-z0-9-]{1,36}",
                                                               fullmatch=True))
def test_an_uploaded_entry_reads_back_as_the_same_participant(
        first: str, last: str, bib: str, age: int, birth: date, sex: str, ref: str) -> None:
    sent = ProviderParticipant(ref=ref, event_ref="31000:81000", first_name=first,
                               last_name=last, bib=bib, age=age, birth_date=birth, gender=sex)
    row = m.participant_to_entry(sent)
    assert all(isinstance(v, str) for v in row.values())
    back = m.map_entry({**row, "entry_id": "40000001", "race_id": "81000"}, "31000")
    assert (back.first_name, back.last_name, back.bib, back.age, back.birth_date,
            back.gender) == (first, last, bib, age, birth, sex)
    assert back.event_ref == "31000:81000" and back.extra["external_id"] == ref


@RELAXED
@given(rank=st.integers(min_value=1, max_value=50_000),
       ms=st.integers(min_value=1000, max_value=20 * 3600 * 1000))
def test_finish_rows_map_rank_and_times(rank: int, ms: int) -> None:
    chip = timedelta(milliseconds=ms)
    row = {"results_entry_id": "5", "results_bib": "12", "results_rank": str(rank),
           "results_interval_name": "Finish", "results_time": m.format_duration(chip),
           "results_gun_time": m.format_duration(chip + timedelta(seconds=3))}
    result = m.map_result(row, "1:2")
    assert (result.place, result.chip_time, result.clock_time) == (
        rank, chip, chip + timedelta(seconds=3))
    assert result.status is ResultStatus.FINISHED and result.splits == {}


def test_a_row_of_another_interval_is_a_split_not_a_finish() -> None:
    result = m.map_result({"results_entry_id": "5", "results_interval_name": "Half",
                           "results_time": "00:40:00", "results_rank": "3"}, "1:2")
    assert result.splits == {"Half": timedelta(minutes=40)}
    assert result.place is None and result.chip_time is None


@pytest.mark.parametrize(("row", "field"), [
    ({"entry_id": "1", "athlete_first_name": "A", "athlete_sex": "Q"}, "athlete_sex"),
    ({"entry_id": "x1", "athlete_first_name": "A"}, "entry_id"),
    ({"entry_id": "1"}, "athlete_first_name"),
    ({"entry_id": "1", "athlete_last_name": "B", "athlete_birthdate": "12/31/1990"},
     "athlete_birthdate"),
])
def test_bad_entries_name_the_field(row: dict[str, str], field: str) -> None:
    with pytest.raises(m.MappingError) as info:
        m.map_entry(row, "31000:81000")
    assert info.value.field == field


@pytest.mark.parametrize("ref", ["", "a:b", "1:", "1:2:3", "x"])
def test_malformed_event_refs_are_refused(ref: str) -> None:
    with pytest.raises(ValueError, match="event_id"):
        m.split_event_ref(ref)


@pytest.mark.parametrize(("code", "gender"), [("U", None), ("u", None), ("Unknown", None),
                                              ("X", "X"), ("NB", "X"), ("M", "M"), ("F", "F")])
def test_sex_u_is_unknown_not_non_binary(code: str, gender: str | None) -> None:
    assert m.parse_sex(code, "athlete_sex") == gender


def test_an_unreadable_sex_names_the_field() -> None:
    with pytest.raises(m.MappingError) as info:
        m.parse_sex("Q", "athlete_sex")
    assert info.value.field == "athlete_sex"
