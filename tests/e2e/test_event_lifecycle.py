"""Editing, archiving and deleting an event, and editing and deleting a category, in the
browser: as an event manager (who may) and as a viewer (who may not)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.events.models import Category, Event
from tests.e2e.helpers import ConsoleWatch, Seed, login
from tests.factories import make_category, make_event, make_participant

pytestmark = pytest.mark.e2e


def test_an_event_manager_edits_archives_and_deletes_events(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    with committed_db() as db:
        make_participant(db, seed.event, first_name="Ada", last_name="Lovelace")
        empty = make_event(db, seed.tenant, name="Cancelled Trail")
        db.commit()
    login(page, seed.admin.email)

    # Edit every field; a name of only spaces is refused in the form's words.
    page.goto(f"/events/{seed.event.id}")
    page.get_by_role("link", name="Edit event").click()
    page.get_by_label("Name").fill("   ")
    page.get_by_label("Location").fill("Lyon")
    page.locator("input[name=name]").evaluate("e => e.removeAttribute('required')")
    console.expect(r"status of 422 ")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_have_text("Name is required")
    page.get_by_label("Name").fill("Lake Run 2027")
    page.get_by_label("Status").select_option("open")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lake Run 2027")
    expect(page.locator(".page-head")).to_contain_text("Lyon")

    # Delete is refused while participants are in it, saying so.
    console.expect(r"status of 409 ")
    page.get_by_text("Delete event").click()
    page.get_by_role("button", name="Delete Lake Run 2027").click()
    expect(page.locator("#event-error")).to_have_text(
        "Lake Run 2027 cannot be deleted: it has 1 participant.")

    # Archive: it leaves the list, the filter shows it, unarchive brings it back.
    page.get_by_role("button", name="Archive").click()
    expect(page.get_by_role("button", name="Unarchive")).to_be_visible()
    page.goto("/events")
    expect(page.locator("article.tile")).to_have_count(1)
    expect(page.locator("article.tile")).to_contain_text("Cancelled Trail")
    page.get_by_label("Archived only").check()
    page.get_by_role("button", name="Search").click()
    expect(page.locator("article.tile")).to_have_count(1)
    expect(page.locator("article.tile")).to_contain_text("Lake Run 2027")
    page.get_by_role("link", name="Lake Run 2027").click()
    page.get_by_role("button", name="Unarchive").click()
    expect(page.get_by_role("button", name="Archive")).to_be_visible()

    # An empty event is deleted.
    page.goto(f"/events/{empty.id}")
    page.get_by_text("Delete event").click()
    page.get_by_role("button", name="Delete Cancelled Trail").click()
    expect(page).to_have_url(re.compile(r"/events\?flash="))
    expect(page.get_by_text("Cancelled Trail deleted")).to_be_visible()
    with committed_db() as db:
        assert db.get(Event, empty.id) is None


def test_an_event_manager_edits_and_deletes_a_category_moving_its_participants(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    with committed_db() as db:
        ten = make_category(db, seed.event, name="10K", bib_range_start=1, bib_range_end=99)
        half = make_category(db, seed.event, name="Half")
        runner = make_participant(db, seed.event, first_name="Ada", last_name="Lovelace",
                                  category_id=ten.id)
        db.commit()
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    page.get_by_role("link", name="Edit 10K").click()

    page.get_by_label("Name").fill("10K Road")
    page.get_by_label("Bibs to").fill("200")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Category saved")).to_be_visible()
    expect(page.locator("table").first).to_contain_text("1–200")

    page.get_by_role("link", name="Edit 10K Road").click()
    console.expect(r"status of 409 ")
    page.get_by_role("button", name="Delete 10K Road").click()
    expect(page.locator("#delete-error")).to_contain_text(
        "10K Road cannot be deleted: it has 1 participant")
    page.get_by_label("Move its participants to").select_option(label="Half")
    page.get_by_role("button", name="Delete 10K Road").click()
    expect(page.get_by_text("10K Road deleted; 1 participant moved")).to_be_visible()
    with committed_db() as db:
        assert db.get(Category, ten.id) is None
        moved = db.get(type(runner), runner.id)
        assert moved is not None and moved.category_id == half.id


def test_a_viewer_may_neither_edit_archive_nor_delete(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    with committed_db() as db:
        category = make_category(db, seed.event, name="10K")
        db.commit()
    login(page, seed.viewer.email)
    page.goto(f"/events/{seed.event.id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Lake Run 2026")
    for name in ("Edit event", "Edit 10K"):
        expect(page.get_by_role("link", name=name)).to_have_count(0)
    for name in ("Archive", "Delete Lake Run 2026"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_text("Delete event")).to_have_count(0)

    console.expect(r"status of 403 ")
    response = page.goto(f"/events/{seed.event.id}/categories/{category.id}/edit")
    assert response is not None and response.status == 403
    with committed_db() as db:
        assert db.get(Category, category.id) is not None
