"""The bulk bar of the participants table in Chromium: ticking rows and moving them to a
category, "select every row on this page", all matching the filter, a refused row named
in the summary, and no bar for a viewer."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.events.models import Category, EventParticipant, ParticipantStatus
from tests.e2e.helpers import ConsoleWatch, Seed, login
from tests.factories import make_category, make_participant

pytestmark = pytest.mark.e2e


@pytest.fixture
def field(seed: Seed, committed_db: sessionmaker[Session]) -> dict[str, EventParticipant]:
    with committed_db() as db:
        ten_k = make_category(db, seed.event, "10K")
        make_category(db, seed.event, "Half")
        eps = {name: make_participant(db, seed.event, first_name=name, last_name=last,
                                      bib=bib, category_id=ten_k.id)
               for name, last, bib in (("Ann", "Lee", "1"), ("Bob", "Ray", "2"),
                                       ("Cy", "Lee", "3"))}
        db.commit()
    return eps


def _state(committed_db: sessionmaker[Session]) -> dict[str, tuple[str, str, str | None]]:
    with committed_db() as db:
        rows = db.execute(select(EventParticipant.id, Category.name, EventParticipant.status,
                                 EventParticipant.bib)
                          .join(Category, Category.id == EventParticipant.category_id)).all()
    return {str(i): (name, status.value, bib) for i, name, status, bib in rows}


def test_ticked_rows_move_to_a_category_and_the_summary_shows_in_place(
    page: Page, seed: Seed, field: dict[str, EventParticipant],
    committed_db: sessionmaker[Session],
) -> None:
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    page.get_by_label("Select Ann Lee").check()
    page.get_by_label("Select Bob Ray").check()
    page.get_by_label("Action").select_option("move_category")
    page.get_by_label("New category").select_option(label="Half")
    page.get_by_role("button", name="Apply").click()

    expect(page.locator("#bulk-result")).to_contain_text(
        "Move to a category: 2 changed, 0 unchanged, 0 refused")
    expect(page).to_have_url(re.compile(rf"/events/{seed.event.id}$"))  # not the POST's
    for name in ("Ann", "Bob"):
        expect(page.locator(f'tr[data-participant-id="{field[name].id}"]')).to_contain_text(
            "Half")
    expect(page.locator(f'tr[data-participant-id="{field["Cy"].id}"]')).to_contain_text("10K")
    state = _state(committed_db)
    assert [state[str(field[n].id)][0] for n in ("Ann", "Bob", "Cy")] == ["Half", "Half", "10K"]


def test_all_matching_the_filter_and_a_refused_row_named_in_the_summary(
    page: Page, seed: Seed, field: dict[str, EventParticipant],
    committed_db: sessionmaker[Session],
) -> None:
    with committed_db() as db:  # Bob's bib 2 goes to a walk-up entry while Bob is withdrawn
        db.get_one(EventParticipant, field["Bob"].id).status = ParticipantStatus.WITHDRAWN
        db.flush()
        make_participant(db, seed.event, first_name="Hal", last_name="Holder", bib="2")
        db.get_one(EventParticipant, field["Ann"].id).status = ParticipantStatus.WITHDRAWN
        db.commit()
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    page.get_by_label("Status").select_option("withdrawn")
    expect(page.locator("#participant-total")).to_have_text("2")

    page.get_by_label("All 2 matching the filter").check()
    page.get_by_label("Action").select_option("reinstate")
    page.get_by_role("button", name="Apply").click()

    result = page.locator("#bulk-result")
    expect(result).to_contain_text("Reinstate: 1 changed, 0 unchanged, 1 refused")
    expect(result).to_contain_text(
        "Bob Ray (bib 2): bib 2 is already used in this event by Hal Holder")
    state = _state(committed_db)
    assert state[str(field["Ann"].id)][1:] == ("active", "1")
    assert state[str(field["Bob"].id)][1:] == ("withdrawn", "2")


def test_select_every_row_on_the_page_then_clear_their_bibs(
    page: Page, seed: Seed, field: dict[str, EventParticipant],
    committed_db: sessionmaker[Session],
) -> None:
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    page.get_by_label("Select every participant on this page").check()
    expect(page.get_by_label("Select Cy Lee")).to_be_checked()
    page.get_by_label("Action").select_option("clear_bibs")
    page.get_by_role("button", name="Apply").click()

    expect(page.locator("#bulk-result")).to_contain_text("Clear bibs: 3 changed")
    assert {bib for _, _, bib in _state(committed_db).values()} == {None}


def test_a_request_refused_as_a_whole_says_why_beside_the_table(
    page: Page, seed: Seed, field: dict[str, EventParticipant], console: ConsoleWatch,
) -> None:
    console.expect(r"status of 422 |Error Code 422 ")
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    page.get_by_label("Action").select_option("withdraw")
    page.get_by_role("button", name="Apply").click()  # nothing ticked

    expect(page.get_by_role("alert")).to_contain_text("no participant selected")


def test_a_viewer_gets_no_bulk_bar(page: Page, seed: Seed,
                                   field: dict[str, EventParticipant]) -> None:
    login(page, seed.viewer.email)
    page.goto(f"/events/{seed.event.id}")
    expect(page.locator(f'tr[data-participant-id="{field["Ann"].id}"]')).to_be_visible()
    expect(page.locator("#bulk-form")).to_have_count(0)
    expect(page.get_by_label("Select Ann Lee")).to_have_count(0)
