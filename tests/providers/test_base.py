"""What every adapter takes from providers.base: the page-size and paging-bound settings,
and row problems."""

from __future__ import annotations

from typing import Any

import pytest

from racehub.providers.base import (
    DEFAULT_MAX_PAGES,
    BadData,
    PageGuard,
    PageLimitReached,
    RepeatedPage,
    RowProblem,
)
from racehub.providers.haku import mapping as haku_mapping
from racehub.providers.haku.client import HakuAdapter
from racehub.providers.raceroster import mapping as rr_mapping
from racehub.providers.raceroster.client import RaceRosterAdapter
from racehub.providers.values import MappingError

HAKU = {"client_id": "c", "client_secret": "s"}
RACE_ROSTER = {"client_id": "c", "client_secret": "s", "username": "u", "password": "p"}


def haku(**settings: Any) -> HakuAdapter:
    return HakuAdapter(base_url="http://haku.test", credentials=HAKU, settings=settings)


@pytest.mark.parametrize(("asked", "used"), [
    (None, int(haku_mapping.ASSUMED["per_page"])),  # unset: the provider's maximum
    (5, 5),
    (10_000, int(haku_mapping.ASSUMED["per_page"])),  # never above it
])
def test_a_page_size_is_kept_within_the_providers_limits(asked: int | None, used: int) -> None:
    assert haku(**({} if asked is None else {"per_page": asked})).per_page == used


@pytest.mark.parametrize("asked", [0, -3, "many"])
def test_a_page_size_below_one_is_refused_naming_the_setting(asked: Any) -> None:
    with pytest.raises(BadData, match="settings.per_page: "):
        haku(per_page=asked)


def test_a_page_size_keeps_the_adapters_own_minimum() -> None:
    # Race Roster re-reads each page's last row, so a page holds at least two.
    adapter = RaceRosterAdapter(base_url="http://rr.test", credentials=RACE_ROSTER,
                                settings={"page_size": 1})
    assert adapter.page_size == 2
    assert RaceRosterAdapter(base_url="http://rr.test", credentials=RACE_ROSTER).page_size == (
        int(rr_mapping.ASSUMED["registrations_limit"]))


def test_every_paging_loop_has_a_bound() -> None:
    assert haku().max_pages == DEFAULT_MAX_PAGES
    assert haku(max_pages=3).max_pages == 3


def test_a_row_that_fails_to_map_is_a_problem_naming_its_field_and_ref() -> None:
    problem = RowProblem.of(4, MappingError("birth_date", "not a date"),
                            {"id": 77, "birth_date": "soon"}, "id")
    assert (problem.row, problem.ref, problem.field, problem.message) == (
        4, "77", "birth_date", "not a date")
    assert str(problem) == "row 5 (77): birth_date: not a date"
    odd = RowProblem.of(0, KeyError("name"), {"id": ""}, "id")
    assert odd.ref is None and odd.field is None
    assert odd.message == "unexpected row shape (KeyError: 'name')"
    assert RowProblem.of(1, TypeError("x"), ["not", "an", "object"], "id").ref is None


# -- the shared paging guard -------------------------------------------------------------

def test_a_page_guard_ends_on_an_empty_page_not_on_a_short_one() -> None:
    guard = PageGuard("GET things", provider="X", max_pages=10)
    pages = iter([[{"id": 1}, {"id": 2}], [{"id": 3}], [{"id": 4}], []])
    read, numbers = [], []
    for number in guard:
        numbers.append(number)
        rows = next(pages)
        read += rows
        if guard.done(rows):
            break
    assert numbers == [1, 2, 3, 4] and [r["id"] for r in read] == [1, 2, 3, 4]
    assert guard.rows_read == 4


def test_a_page_guard_ends_at_the_stated_total() -> None:
    guard = PageGuard("GET things", max_pages=10)
    assert guard.done([{"id": 1}, {"id": 2}], total=3) is False
    assert guard.done([{"id": 3}]) is True  # the total stated once holds for the read


def test_a_page_with_nothing_new_ends_the_read() -> None:
    guard = PageGuard("GET things", max_pages=10)
    assert guard.done([{"id": 1}, {"id": 2}]) is False
    assert guard.done([{"id": 2}], new=0) is True


def test_a_repeated_page_is_an_error_naming_the_read() -> None:
    guard = PageGuard("GET things", provider="X", max_pages=10)
    guard.done([{"id": 1, "n": "a"}])
    with pytest.raises(RepeatedPage, match="GET things: a page repeated the previous one "
                                           "after 1 row"):
        guard.done([{"n": "a", "id": 1}])
    assert issubclass(RepeatedPage, BadData)


def test_reaching_max_pages_is_an_error_never_a_silent_stop() -> None:
    guard = PageGuard("GET things", provider="X", max_pages=3)
    numbers = []
    with pytest.raises(PageLimitReached, match=r"GET things: more than 3 pages .* after 3 row"):
        for number in guard:
            numbers.append(number)
            guard.done([{"id": number}])
    assert numbers == [1, 2, 3]


def test_an_adapters_page_guard_carries_its_provider_and_bound() -> None:
    guard = haku(max_pages=7).page_guard("GET events")
    assert (guard.where, guard.provider, guard.max_pages) == ("GET events", "HAKU", 7)
