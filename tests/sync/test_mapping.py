"""The mapping pipeline: the adapter's default mapping, then the connection's rules."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from racehub.providers.runsignup import mapping as rsu
from racehub.sync.mapping import PARTICIPANT_FIELDS, connection_rules, map_participant
from racehub.sync.transforms import (
    TARGET_FIELDS,
    DateFormat,
    GenderMap,
    MappingRule,
    SplitName,
    Trim,
)


def rsu_row(**user: Any) -> dict[str, Any]:
    return {
        "registration_id": 501, "event_id": 7, "bib_num": "0042", "team_name": "Harriers",
        "user": {"user_id": 9, "first_name": "Ada", "last_name": "Lovelace",
                 "email": "ada@example.org", "dob": "1990-04-02", "gender": "F",
                 "address": {"city": "Boston", "state": "MA", "country_code": "US"},
                 **user},
    }


def participant(**user: Any) -> Any:
    return rsu.map_participant(rsu_row(**user), "3")


def test_without_rules_the_default_mapping_gives_every_field() -> None:
    mapped = map_participant(participant(), [])
    assert mapped.values == {
        "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org",
        "birth_date": date(1990, 4, 2), "gender": "F", "bib": "0042", "team": "Harriers",
        "city": "Boston", "region": "MA", "country": "US"}
    assert mapped.from_rule == frozenset()
    assert mapped.problems == ()
    assert mapped.ref == "501"


def test_an_empty_provider_value_is_none_never_made_up() -> None:
    mapped = map_participant(participant(first_name="", email=None, dob="", gender=None), [])
    assert mapped.values["first_name"] is None
    assert mapped.values["email"] is None
    assert mapped.values["birth_date"] is None
    assert mapped.values["gender"] is None
    assert set(mapped.values) == set(PARTICIPANT_FIELDS)


def test_a_rule_overrides_only_its_target_from_the_raw_record() -> None:
    rules = [MappingRule(target="first_name", sources=["user.last_name"], transforms=[Trim()]),
             MappingRule(target="birth_date", sources=["user.dob_us"],
                         transforms=[DateFormat(source="%m/%d/%Y")])]
    mapped = map_participant(participant(dob_us="04/03/1991"), rules)
    assert mapped.values["first_name"] == "Lovelace"
    assert mapped.values["birth_date"] == date(1991, 4, 3)
    assert mapped.values["last_name"] == "Lovelace"  # the default, untouched
    assert mapped.from_rule == {"first_name", "birth_date"}


def test_a_failing_rule_is_a_problem_naming_its_field_and_the_default_stays() -> None:
    rules = [MappingRule(target="gender", sources=["user.gender"],
                         transforms=[GenderMap(map={"1": "M"})])]
    mapped = map_participant(participant(gender="F"), rules, row=4)
    [problem] = mapped.problems
    assert (problem.field, problem.row, problem.ref) == ("gender", 4, "501")
    assert "'F'" in problem.message
    assert mapped.values["gender"] == "F"
    assert "gender" not in mapped.from_rule


def test_a_rule_value_that_does_not_fit_the_field_is_a_problem_and_empty() -> None:
    rules = [MappingRule(target="birth_date", sources=["user.dob_us"]),
             MappingRule(target="country", sources=["user.country_name"])]
    mapped = map_participant(participant(dob_us="04/03/1991", country_name="United States"),
                             rules)
    assert {p.field for p in mapped.problems} == {"birth_date", "country"}
    assert mapped.values["birth_date"] is None and mapped.values["country"] is None
    assert mapped.from_rule == frozenset()


def test_a_rule_whose_sources_are_empty_gives_empty_not_the_default() -> None:
    # The rule names where the value is: an empty source is the provider's empty value.
    rules = [MappingRule(target="last_name", sources=["user.full_name"],
                         transforms=[SplitName(part="last")])]
    mapped = map_participant(participant(), rules)
    assert mapped.values["last_name"] is None
    assert mapped.from_rule == {"last_name"}


def test_stored_rules_no_longer_allowed_are_set_aside_not_an_error() -> None:
    stored = [{"target": "chip", "sources": ["chip_num"], "transforms": []},
              {"target": "team", "sources": ["team_name"], "transforms": [{"op": "trim"}]}]
    parsed = connection_rules(stored)
    assert [r.target for r in parsed.rules] == ["team"]
    [ignored] = parsed.ignored
    assert ignored.startswith("rule 1 (chip): ") and "no field 'chip'" in ignored


def test_rule_targets_are_exactly_the_fields_the_pipeline_fills() -> None:
    assert set(TARGET_FIELDS) == set(PARTICIPANT_FIELDS)
    for name in ("chip", "phone", "registration_id", "category"):
        with pytest.raises(ValueError, match=f"no field '{name}'"):
            MappingRule(target=name, sources=["x"])
