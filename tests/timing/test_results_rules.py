"""E08 parsing rules: times, statuses, places, the export's neutralization undone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from racehub.core.spreadsheet import FORMULA_TRIGGERS, neutralize
from racehub.timing import results
from racehub.timing.models import ResultStatus
from racehub.timing.results import RowError


@pytest.mark.parametrize(("text", "ms"), [
    ("1:02:03", 3_723_000), ("01:02:03.5", 3_723_500), ("0:00:01,25", 1_250),
    ("12:00:00.123456", 43_200_123), ("3723000", 3_723_000), ("", None), ("  ", None),
])
def test_times_are_read_as_milliseconds(text: str, ms: int | None) -> None:
    assert results.parse_time(text, "ChipTime") == ms


@pytest.mark.parametrize("text", ["1:2:3", "1:60:00", "62:03", "-0:01:00", "1h02", "1.5"])
def test_a_bad_time_names_its_column(text: str) -> None:
    with pytest.raises(RowError, match="^GunTime .* is not a time"):
        results.parse_time(text, "GunTime")


@given(st.integers(min_value=0, max_value=999 * 3_600_000))
def test_displayed_times_read_back_to_the_same_milliseconds(ms: int) -> None:
    assert results.parse_time(results.format_ms(ms), "ChipTime") == ms


# A value that itself starts with ' and a trigger cannot be told from a neutralized one.
@given(st.text(max_size=30).map(str.strip).filter(
    lambda v: not (v[:1] == "'" and v[1:2] in FORMULA_TRIGGERS)))
def test_an_exported_cell_reads_back_as_it_was(value: str) -> None:
    assert results.unneutralize(neutralize(value)) == value


def test_cells_the_export_neutralized_lose_exactly_one_quote() -> None:
    assert results.unneutralize("'=REG-2") == "=REG-2"
    assert results.unneutralize("''=x") == "''=x"
    assert results.unneutralize("'plain") == "'plain"


@pytest.mark.parametrize(("text", "status"), [
    ("Finished", ResultStatus.FINISHED), ("dnf", ResultStatus.DNF),
    ("Did not start", ResultStatus.DNS), ("DSQ", ResultStatus.DQ),
    ("", ResultStatus.FINISHED),
])
def test_statuses(text: str, status: ResultStatus) -> None:
    assert results.parse_status(text, has_time=True) is status


def test_a_blank_status_without_a_time_is_refused() -> None:
    with pytest.raises(RowError, match="Status is blank and the row has no ChipTime"):
        results.parse_status("", has_time=False)


def test_a_finished_row_needs_a_time() -> None:
    with pytest.raises(RowError, match="a finished result needs a ChipTime or a GunTime"):
        results.parse_row(2, {"ExternalReferenceID": "x", "Number": "1",
                              "Status": "finished"}, {})


def test_places_are_whole_numbers_from_one() -> None:
    assert results.parse_place("7", "OverallPlace") == 7
    for bad in ("0", "1st", "-2"):
        with pytest.raises(RowError, match="^CategoryPlace .* is not a place"):
            results.parse_place(bad, "CategoryPlace")


def test_time_columns_nobody_mapped_become_splits_and_other_columns_do_not() -> None:
    row = results.parse_row(2, {"ExternalReferenceID": "a", "Number": "1",
                                "ChipTime": "0:40:00"},
                            {"Split 5K": "0:20:00.5", "Age": "34", "Name": "Ada"})
    assert row.splits == {"Split 5K": 1_200_500}


def test_ids_compare_as_uuids_whatever_their_case() -> None:
    assert results.external_key(" 3F2504E0-4F89-11D3-9A0C-0305E82C3301 ") == \
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    assert results.duplicate_ids(["A", "a", "", "", "'=x", "=x"]) == ["=x"]


def test_bibs_compare_as_numbers_when_both_are_digits() -> None:
    assert results.same_bib("6", "006")
    assert not results.same_bib("6", "6A")
    assert not results.same_bib("6", None)
    assert results.same_bib("", None)
