"""The mapping editor's form, without a page: rows per racehub field, rules from the posted
rows (the default path when only steps are given), the step picker's steps and their
errors, and the paths of a sample."""

from __future__ import annotations

import pytest

from racehub.core.exceptions import Invalid
from racehub.sync import mapping_editor as editor
from racehub.sync.transforms import TARGET_FIELDS, DateFormat, GenderMap, MappingRule, Trim

DEFAULTS = {"first_name": "user.first_name", "birth_date": "user.dob"}


def test_rows_cover_every_field_once_and_show_a_rule_in_its_own_row() -> None:
    rule = MappingRule(target="birth_date", sources=["dob_us"],
                       transforms=[Trim(), DateFormat(source="%m/%d/%Y")])
    rows = editor.rows_of_rules([rule], DEFAULTS)
    assert [r.target for r in rows] == list(TARGET_FIELDS)
    birth = rows[3]
    assert (birth.index, birth.path, birth.sources, birth.transforms) == (
        3, "dob_us", "dob_us", "trim | date:%m/%d/%Y")
    assert birth.steps == ["Trim spaces", "Date from MM/DD/YYYY to YYYY-MM-DD"]
    assert birth.has_rule and not rows[0].has_rule
    assert rows[0].default_path == "user.first_name" and rows[2].default_path is None


def test_a_short_form_gets_the_missing_fields_and_keeps_an_unknown_row_to_name() -> None:
    rows = editor.rows_of_form({"target_0": "city", "sources_0": "town",
                                "target_1": "shoe", "sources_1": "size"}, DEFAULTS)
    assert [r.target for r in rows] == [*TARGET_FIELDS, "shoe"]
    assert rows[7].sources == "town"
    assert [r.index for r in rows] == list(range(len(TARGET_FIELDS) + 1))


def test_rules_take_typed_paths_over_the_dropdown_and_steps_alone_use_the_default_path(
) -> None:
    rules = editor.rules_of_form({
        "target_0": "first_name", "sources_0": "nick", "path_0": "user.first_name",
        "target_3": "birth_date", "transforms_3": "date:%d.%m.%Y",
        "target_7": "city", "path_7": "town"}, DEFAULTS)
    assert [(r.target, r.sources) for r in rules] == [
        ("first_name", ["nick"]), ("birth_date", ["user.dob"]), ("city", ["town"])]
    with pytest.raises(Invalid) as caught:
        editor.rules_of_form({"target_2": "email", "transforms_2": "lower"}, DEFAULTS)
    assert caught.value.field == "sources_2"
    assert "row 1 (email): the provider has no default path" in caught.value.detail
    with pytest.raises(Invalid) as caught:
        editor.rules_of_form({"target_0": "city", "sources_0": "a b"}, DEFAULTS)
    assert caught.value.field == "sources_0" and "is not a field path" in caught.value.detail


def test_the_picker_builds_each_step_with_its_options() -> None:
    def step(kind: str, **options: str) -> object:
        return editor.build_step({"step_kind_4": kind, **{f"step_{k}_4": v
                                                         for k, v in options.items()}}, 4)

    assert step("date", date="%d/%m/%Y") == DateFormat(source="%d/%m/%Y")
    # One's own format wins over the list's.
    assert step("date", date="%d/%m/%Y", date_custom="%d %b %Y") == DateFormat(
        source="%d %b %Y")
    assert step("gender", gender_M="1, m", gender_F="2", gender_other="x") == GenderMap(
        map={"1": "M", "m": "M", "2": "F"}, default="X")
    cases = [
        (("gender",), {"gender_M": "1", "gender_F": "1"}, "step_gender_F_4",
         "the provider's code '1' is given for M and F"),
        (("gender",), {}, "step_gender_M_4", "for at least one gender"),
        (("gender",), {"gender_M": "1", "gender_other": "Q"}, "step_gender_other_4",
         "one of M, F, X, U"),
        (("date",), {"date_custom": "yyyy"}, "step_date_4", "needs strftime directives"),
        (("date",), {}, "step_date_4", "choose the provider's date format"),
        (("default",), {"default": "  "}, "step_default_4", "give the value"),
        (("shout",), {}, "step_kind_4", "choose a step from the list"),
    ]
    for (kind,), options, field, message in cases:
        with pytest.raises(Invalid) as caught:
            step(kind, **options)
        assert (caught.value.field, message in caught.value.detail) == (field, True), kind


def test_adding_and_removing_steps_edits_the_notation() -> None:
    form = {"transforms_1": "trim", "step_kind_1": "join", "step_join_1": ", "}
    assert editor.add_step(form, 1) == 'trim | join:", "'
    assert editor.remove_step({"transforms_1": "trim | upper | last"}, 1, 1) == "trim | last"
    with pytest.raises(Invalid, match="steps: step 1"):
        editor.add_step({"transforms_1": "shout", "step_kind_1": "trim"}, 1)


def test_sample_paths_are_each_listed_once_in_the_order_seen() -> None:
    records = [{"user": {"first_name": "A", "tags": [{"x": 1}]}, "bib": 1},
               {"bib": 2, "extra": None}]
    assert editor.sample_paths(records, known=["bib", "old.path"]) == [
        "bib", "old.path", "user.first_name", "user.tags.0.x", "extra"]  # empty: a path too
    many = [{f"f{n}": n for n in range(editor.MAX_PATHS + 5)}]
    assert len(editor.sample_paths(many)) == editor.MAX_PATHS
