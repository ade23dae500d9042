"""The field-mapping transforms: pure functions, checked on generated values."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from racehub.sync.transforms import (
    Case,
    DateFormat,
    Default,
    GenderMap,
    Join,
    MappingRule,
    SplitName,
    TransformError,
    Trim,
    apply_mapping,
    apply_rule,
    change_case,
    format_transforms,
    get_path,
    join_values,
    map_gender,
    parse_transforms,
    reformat_date,
    source_paths,
    split_name,
    trim,
)

word = st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=12)
messy = st.text(alphabet=st.sampled_from(list("ab Cé\t\n -'")), max_size=30)
gender = st.sampled_from(["M", "F", "X", "U"])


@given(messy)
def test_trim_is_idempotent_and_leaves_no_runs_of_spaces(value: str) -> None:
    once = trim(value)
    assert trim(once) == once
    assert once is not None and "  " not in once and once == once.strip()
    assert once.split() == value.split()  # words kept, in order


@given(messy, st.sampled_from(["upper", "lower", "title"]))
def test_case_changes_are_idempotent(value: str, mode: str) -> None:
    once = change_case(value, mode)
    assert change_case(once, mode) == once
    assert once is not None and once.casefold() == value.casefold()


def test_title_case_capitalises_each_part_of_a_name() -> None:
    assert change_case("o'neil-SMITH jean", "title") == "O'Neil-Smith Jean"


@given(st.lists(word, min_size=1, max_size=3), word)
def test_split_then_join_gives_the_full_name_back(first_words: list[str], last: str) -> None:
    full = " ".join([*first_words, last])
    first, last_part = split_name(full, "first"), split_name(full, "last")
    assert last_part == last
    assert join_values([first, last_part], " ") == full


@given(word, word)
def test_split_understands_the_last_comma_first_form(first: str, last: str) -> None:
    assert split_name(f"{last}, {first}", "first") == first
    assert split_name(f"{last}, {first}", "last") == last


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
       st.sampled_from(["%m/%d/%Y", "%d.%m.%Y", "%Y%m%d", "%d/%m/%Y"]))
def test_date_format_round_trips(day: date, fmt: str) -> None:
    text = day.strftime(fmt)
    iso = reformat_date(text, fmt, "%Y-%m-%d")
    assert iso == day.isoformat()
    assert reformat_date(iso, "%Y-%m-%d", fmt) == text


def test_a_date_not_in_the_format_names_value_and_format() -> None:
    with pytest.raises(TransformError, match=r"'1990-02-31' does not match the date format"):
        reformat_date("1990-02-31", "%Y-%m-%d", "%Y-%m-%d")


@given(st.dictionaries(st.text(min_size=1, max_size=4).filter(lambda s: s.strip() and "," not in s),
                       gender, min_size=1, max_size=5), st.text(max_size=4), gender)
def test_a_gender_map_with_a_default_always_gives_a_racehub_code(
    mapping: dict[str, str], code: str, default: str
) -> None:
    assert map_gender(code, mapping, default) in {"M", "F", "X", "U"}


def test_gender_codes_match_trimmed_and_case_insensitively_and_unknown_ones_are_named() -> None:
    race_roster = {"0": "U", "1": "M", "2": "F", "9": "X"}
    assert map_gender(" 2 ", race_roster, None) == "F"
    assert map_gender("m", {"M": "M"}, None) == "M"
    with pytest.raises(TransformError, match="gender code '8' is not in the map"):
        map_gender("8", race_roster, None)


transform = st.one_of(
    st.just(Trim()),
    st.builds(Case, mode=st.sampled_from(["upper", "lower", "title"])),
    st.builds(SplitName, part=st.sampled_from(["first", "last"])),
    st.builds(Join, separator=st.sampled_from([" ", ", ", "-"])),
    st.builds(Default, value=st.text(alphabet="abcXYZ 0-9", min_size=1, max_size=8)
              .filter(lambda s: s.strip() == s)),
    st.builds(DateFormat, source=st.sampled_from(["%m/%d/%Y", "%d.%m.%Y"]),
              target=st.sampled_from(["%Y-%m-%d", "%d/%m/%Y"])),
    st.builds(GenderMap, map=st.dictionaries(st.sampled_from(["1", "2", "m", "f"]), gender,
                                             min_size=1),
              default=st.one_of(st.none(), gender)),
)


@given(st.lists(transform, max_size=5))
def test_the_editor_notation_round_trips(transforms: list) -> None:  # type: ignore[type-arg]
    assert parse_transforms(format_transforms(transforms)) == transforms


def test_the_notation_names_the_step_at_fault() -> None:
    assert parse_transforms("trim | upper | gender:1=M,2=F,*=U | date:%m/%d/%Y") == [
        Trim(), Case(mode="upper"), GenderMap(map={"1": "M", "2": "F"}, default="U"),
        DateFormat(source="%m/%d/%Y")]
    with pytest.raises(ValueError, match=r"step 2 \('gender:1=Z'\)"):
        parse_transforms("trim | gender:1=Z")
    with pytest.raises(ValueError, match=r"step 1 \('shout'\): unknown step"):
        parse_transforms("shout")


HAKU_DETAIL = {
    "registration_number": "HK-1",
    "person_full_name": "  ada   LOVELACE ",
    "participant": {"dob": "12/10/1815", "gender": "Female"},
    "event_categories": [{"name": "10K", "tag_number": 101, "chip_number": None}],
}


def test_a_mapping_reads_nested_paths_and_list_items() -> None:
    rules = [
        MappingRule(target="first_name", sources=["person_full_name"],
                    transforms=[Trim(), SplitName(part="first"), Case(mode="title")]),
        MappingRule(target="last_name", sources=["person_full_name"],
                    transforms=parse_transforms("trim | last | title")),
        MappingRule(target="birth_date", sources=["participant.dob"],
                    transforms=parse_transforms("date:%m/%d/%Y")),
        MappingRule(target="gender", sources=["participant.gender"],
                    transforms=parse_transforms("gender:Female=F,Male=M")),
        MappingRule(target="bib", sources=["event_categories.0.tag_number"]),
        MappingRule(target="team", sources=["event_categories.0.chip_number"],
                    transforms=[Default(value="none")]),
    ]
    values, errors = apply_mapping(rules, HAKU_DETAIL)
    assert errors == {}
    assert values == {"first_name": "Ada", "last_name": "Lovelace", "birth_date": "1815-12-10",
                      "gender": "F", "bib": "101", "team": "none"}


def test_a_failing_rule_names_its_field_and_step_and_the_others_still_apply() -> None:
    rules = [MappingRule(target="gender", sources=["participant.gender"],
                         transforms=parse_transforms("gender:1=M")),
             MappingRule(target="bib", sources=["registration_number"])]
    values, errors = apply_mapping(rules, HAKU_DETAIL)
    assert errors == {"gender": "gender: gender: gender code 'Female' is not in the map "
                                "(add it, or set a default)"}
    assert values["bib"] == "HK-1"


def test_several_sources_are_joined_skipping_empty_parts() -> None:
    rule = MappingRule(target="last_name", sources=["user.last_name", "user.middle_name"],
                       transforms=[Join(separator=" ")])
    assert apply_rule(rule, {"user": {"last_name": "Hopper", "middle_name": None}}) == "Hopper"


def test_paths_that_point_at_an_object_are_refused_with_a_hint() -> None:
    rule = MappingRule(target="city", sources=["participant"])
    with pytest.raises(TransformError, match="point the path at a field inside it"):
        apply_rule(rule, HAKU_DETAIL)


def test_unknown_targets_and_bad_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="no field 'shoe_size'"):
        MappingRule(target="shoe_size", sources=["x"])
    with pytest.raises(ValueError, match="is not a field path"):
        MappingRule(target="city", sources=["user..city"])


def test_get_path_and_source_paths_walk_the_record() -> None:
    assert get_path(HAKU_DETAIL, "event_categories.0.name") == "10K"
    assert get_path(HAKU_DETAIL, "event_categories.3.name") is None
    assert get_path(HAKU_DETAIL, "participant.missing.deeper") is None
    assert source_paths(HAKU_DETAIL) == [
        "registration_number", "person_full_name", "participant.dob", "participant.gender",
        "event_categories.0.name", "event_categories.0.tag_number",
        "event_categories.0.chip_number"]
