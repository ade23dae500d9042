"""Copernico value mapping and webhook parsing: properties over generated values."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from racehub.providers.base import ProviderParticipant, ResultStatus
from racehub.providers.copernico import mapping as m

# Two shared cores: time limits per example would make these fail on a busy machine.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Letters of Latin scripts (ASCII, Latin-1 and Latin Extended-A: Spanish, Basque, Catalan,
# French, Polish, Czech...), spaces and apostrophes: what names are made of.
LATIN = st.characters(categories=["L"], max_codepoint=0x17F) | st.sampled_from(" '-")
names = st.text(LATIN, min_size=1, max_size=30).map(str.strip).filter(bool)


def reads_as_mojibake(text: str) -> bool:
    """Text that is itself valid UTF-8 read as cp1252/Latin-1 ("Ã©", "Âª"): a repair cannot
    tell it from mojibake, and no real name looks like that."""
    for codec in ("cp1252", "latin-1"):
        try:
            text.encode(codec).decode("utf-8")
        except UnicodeError:
            continue
        return not text.isascii()
    return False


def mojibake(text: str) -> str:
    """What a sender does: UTF-8 bytes read back as Latin-1."""
    return text.encode("utf-8").decode("latin-1")


@RELAXED
@given(text=names)
def test_double_encoded_text_is_repaired_and_clean_text_is_left_alone(text: str) -> None:
    assume(not reads_as_mojibake(text))
    assert m.repair_text(text) == text
    assert m.repair_text(mojibake(text)) == text
    assert m.repair_text(mojibake(mojibake(text))) == text


@pytest.mark.parametrize(("text", "expected"), [
    ("JosÃ©", "José"), ("MuÃ±oz", "Muñoz"), ("Ã\x8dÃ±igo", "Íñigo"),
    ("JosÃƒÂ©", "José"), ("Núria", "Núria"), ("Ñandú", "Ñandú"), ("plain", "plain"),
    ("Itâ€™s", "It’s"),
])
def test_repair_examples(text: str, expected: str) -> None:
    assert m.repair_text(text) == expected


@RELAXED
@given(ms=st.integers(min_value=0, max_value=100 * 3600 * 1000))
def test_milliseconds_become_exact_durations(ms: int) -> None:
    duration = m.parse_ms(ms, "t")
    assert duration == timedelta(milliseconds=ms) and m.to_ms(duration) == ms
    assert m.parse_ms(str(ms), "t") == duration


@pytest.mark.parametrize("value", ["1:23:45", "-5", "nan", "inf", True])
def test_bad_milliseconds_name_the_field(value: object) -> None:
    with pytest.raises(m.MappingError) as info:
        m.parse_ms(value, "times.official_:::finish:::")
    assert info.value.field == "times.official_:::finish:::"


@RELAXED
@given(first=names, last=names, bib=st.from_regex(r"[0-9]{1,6}", fullmatch=True),
       birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
       gender=st.sampled_from(["M", "F"]), ref=st.from_regex(r"[a-z0-9-]{1,36}", fullmatch=True))
def test_a_pushed_registration_reads_back_as_the_same_participant(
        first: str, last: str, bib: str, birth: date, gender: str, ref: str) -> None:
    sent = ProviderParticipant(ref=ref, event_ref="r:e", first_name=first, last_name=last,
                               bib=bib, birth_date=birth, gender=gender)
    row = m.participant_to_registration(sent, "r", "e")
    assert (row["raceId"], row["eventId"], row["gender"]) == ("r", "e", m.GENDERS[gender])
    back = m.map_registration(json.loads(json.dumps(row)), "r:e")
    assert (back.ref, back.first_name, back.last_name, back.bib, back.birth_date,
            back.gender) == (ref, first, last, bib, birth, gender)


@RELAXED
@given(ms=st.integers(min_value=1, max_value=30 * 3600 * 1000),
       place=st.integers(min_value=1, max_value=60_000), nested=st.booleans())
def test_result_rows_flat_or_nested(ms: int, place: int, nested: bool) -> None:
    times = ({"times": {"official_:::finish:::": ms}} if nested
             else {"times.official_:::finish:::": ms})
    row = {"dorsal": "7", "status": "finished", "position": place, "gender": "male", **times}
    result = m.map_result(row, "r:e")
    assert (result.clock_time, result.place, result.gender, result.status) == (
        timedelta(milliseconds=ms), place, "M", ResultStatus.FINISHED)


@pytest.mark.parametrize(("word", "status"), [("dnf", ResultStatus.DNF),
                                              ("DNS", ResultStatus.DNS),
                                              ("dsq", ResultStatus.DQ)])
def test_non_finishers_have_no_time(word: str, status: ResultStatus) -> None:
    result = m.map_result({"dorsal": "7", "status": word,
                           "times.official_:::finish:::": 1000}, "r:e")
    assert (result.status, result.clock_time) == (status, None)


def test_a_finisher_without_a_time_is_a_row_problem() -> None:
    with pytest.raises(m.MappingError, match="finish time"):
        m.map_result({"dorsal": "7", "status": "finished"}, "r:e")


# -- webhook ----------------------------------------------------------------------------------
DELIVERY = {
    "competitionId": "c0mp-1", "copernicoId": 991, "type": "detection",
    "participantId": "rh-1", "participantsIds": ["rh-1", 2],
    "extraData": {"point": "km21", "location": "Plaza Mayor"}, "rawTime": "10:21:33.120",
    "apiKey": "hook-key-123456",
}


def test_a_delivery_is_read_and_its_key_kept_out_of_the_payload() -> None:
    hook = m.parse_webhook(json.dumps(DELIVERY).encode())
    assert (hook.type, hook.competition_id, hook.copernico_id, hook.participant_id) == (
        "detection", "c0mp-1", "991", "rh-1")
    assert hook.participant_ids == ["rh-1", "2"]
    assert (hook.point, hook.location, hook.raw_time) == ("km21", "Plaza Mayor",
                                                          "10:21:33.120")
    assert hook.api_key == "hook-key-123456"
    assert "apiKey" not in hook.payload and "hook-key-123456" not in repr(hook)


@RELAXED
@given(location=names)
def test_double_encoded_text_in_a_delivery_is_repaired(location: str) -> None:
    assume(not reads_as_mojibake(location))
    body = {**DELIVERY, "extraData": {"point": "meta", "location": mojibake(location)}}
    hook = m.parse_webhook(json.dumps(body, ensure_ascii=False).encode("utf-8"))
    assert hook.location == location
    assert hook.payload["extraData"]["location"] == location


def test_a_latin1_body_is_read_too() -> None:
    body = json.dumps({**DELIVERY, "extraData": {"location": "Logroño"}}, ensure_ascii=False)
    assert m.parse_webhook(body.encode("latin-1")).location == "Logroño"


@pytest.mark.parametrize(("change", "field"), [
    ({"type": "lap"}, "type"), ({"participantsIds": "rh-1"}, "participantsIds"),
    ({"extraData": ["x"]}, "extraData"), ({"apiKey": 5}, "apiKey"),
    ({"participantId": {"id": 1}}, "participantId"), ({"rawTime": [1]}, "rawTime"),
])
def test_bad_deliveries_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(m.WebhookError) as info:
        m.parse_webhook(json.dumps({**DELIVERY, **change}).encode())
    assert info.value.field == field


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2]", b"null"])
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(m.WebhookError) as info:
        m.parse_webhook(body)
    assert info.value.field == "body"


def test_a_repair_never_goes_as_far_as_control_characters() -> None:
    # "ÂŽ" is also what "\x8e" looks like after a round of mojibake; no name holds a C1
    # control character, so the text is left as it is.
    assert m.repair_text("ÂŽ") == "ÂŽ"
    assert m.repair_text(mojibake("ÂŽ")) == "ÂŽ"


def test_offsets_may_be_negative_milliseconds_durations_may_not() -> None:
    assert m.parse_ms(-250, "times.official_:::start:::", negative=True) == timedelta(
        milliseconds=-250)
    with pytest.raises(m.MappingError):
        m.parse_ms(-250, "times.official_:::finish:::")


@pytest.mark.parametrize("word", ["running", "Running", "started"])
def test_an_athlete_on_the_course_has_no_result_yet_and_no_problem(word: str) -> None:
    result = m.map_result({"id": "a1", "dorsal": "12", "status": word, "position": None,
                           "times.official_:::finish:::": None,
                           "times.official_:::start:::": -250}, "r:e")
    assert (result.status, result.place, result.clock_time) == (ResultStatus.RUNNING, None,
                                                                 None)
    assert result.splits == {"start": timedelta(milliseconds=-250)}


@pytest.mark.parametrize("chip", [[123, 456], ["123", "456"], "123"])
def test_athlete_detail_nested_or_flat_with_either_chip_form(chip: object) -> None:
    event = {"eventId": "e2", "dorsal": "0042", "category": "M-Senior", "status": "ok",
             "chip": chip}
    person = {"id": "a1", "name": "Ane", "surname": "Etxeberria", "gender": "female"}
    nested = {**person, "events": [{**event, "eventId": "e1", "dorsal": "9"}, event]}
    for data in (nested, {**person, **event}):
        athlete = m.map_registration(data, "r:e2")
        assert (athlete.ref, athlete.bib, athlete.chip) == ("a1", "0042", "123")
        assert athlete.extra["category"] == "M-Senior" and athlete.raw is data
