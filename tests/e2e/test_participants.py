"""Adding and editing a participant through the form, and the CSRF check on that form."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.events.models import EventParticipant
from tests.e2e.helpers import ConsoleWatch, Seed, login
from tests.factories import make_participant

pytestmark = pytest.mark.e2e


@pytest.fixture
def pair(seed: Seed, committed_db: sessionmaker[Session]) -> tuple[EventParticipant, ...]:
    with committed_db() as db:
        ada = make_participant(db, seed.event, first_name="Ada", last_name="Lovelace",
                               bib="101", team="Old Team", registration_id="R-1")
        bea = make_participant(db, seed.event, first_name="Bea", last_name="Other",
                               bib="202", registration_id="R-2")
        db.commit()
    return ada, bea


def _row(committed_db: sessionmaker[Session], ep_id: uuid.UUID) -> EventParticipant:
    with committed_db() as db:
        ep = db.get(EventParticipant, ep_id)
        assert ep is not None
        return ep


def test_edit_participant_saves_team_and_bib(
    page: Page, seed: Seed, pair: tuple[EventParticipant, ...],
    committed_db: sessionmaker[Session],
) -> None:
    ada, _ = pair
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    page.locator(f'tr[data-participant-id="{ada.id}"]').get_by_role("link", name="Edit").click()

    expect(page).to_have_url(re.compile(rf"/participants/{ada.id}/edit$"))
    expect(page.get_by_label("Team")).to_have_value("Old Team")
    expect(page.get_by_label("Bib")).to_have_value("101")
    page.get_by_label("Team").fill("Fast Feet")
    page.get_by_label("Bib").fill("111")
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(re.compile(rf"/events/{seed.event.id}\?.*q=111"))
    expect(page.get_by_role("status")).to_have_text("Participant saved")
    row = page.locator(f'tr[data-participant-id="{ada.id}"]')
    expect(row.locator("td.bib")).to_have_text("111")
    expect(row).to_contain_text("Fast Feet")
    expect(row).to_contain_text("Lovelace, Ada")

    saved = _row(committed_db, ada.id)
    assert (saved.bib, saved.team, saved.registration_id) == ("111", "Fast Feet", "R-1")


def test_duplicate_bib_names_the_other_participant_and_keeps_the_form(
    page: Page, seed: Seed, pair: tuple[EventParticipant, ...],
    committed_db: sessionmaker[Session], console: ConsoleWatch,
) -> None:
    ada, bea = pair
    console.expect(r"status of 409 ")
    login(page, seed.admin.email)
    page.goto(f"/participants/{ada.id}/edit")
    page.get_by_label("Team").fill("Changed Team")
    page.get_by_label("Bib").fill("202")
    page.get_by_label("City").fill("Lyon")
    page.get_by_role("button", name="Save").click()

    alert = page.get_by_role("alert")
    # Named by name and registration, never by an internal id.
    expect(alert).to_have_text("Bib 202 is already used in this event by Bea Other "
                               "(registration R-2)")
    expect(alert).to_have_attribute("data-field", "bib")
    expect(page).to_have_url(re.compile(rf"/participants/{ada.id}/edit$"))
    expect(page.get_by_label("Bib")).to_have_value("202")
    expect(page.get_by_label("Team")).to_have_value("Changed Team")
    expect(page.get_by_label("City")).to_have_value("Lyon")
    expect(page.get_by_label("First name")).to_have_value("Ada")

    saved = _row(committed_db, ada.id)
    assert (saved.bib, saved.team) == ("101", "Old Team")

    # Fixing the bib on the re-rendered form (it still has a valid CSRF token) saves it all.
    page.get_by_label("Bib").fill("303")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Participant saved")
    saved = _row(committed_db, ada.id)
    assert (saved.bib, saved.team) == ("303", "Changed Team")


def test_each_invalid_field_shows_its_problem_beside_it(
    page: Page, seed: Seed, pair: tuple[EventParticipant, ...],
    committed_db: sessionmaker[Session], console: ConsoleWatch,
) -> None:
    ada, _ = pair
    console.expect(r"status of 422 ")
    login(page, seed.admin.email)
    page.goto(f"/participants/{ada.id}/edit")
    # Both pass the browser's own checks (maxlength only) and fail the schema's minimum.
    page.get_by_label("Nationality").fill("F")
    page.get_by_label("Country").fill("X")
    page.get_by_label("Team").fill("Kept Team")
    page.get_by_role("button", name="Save").click()

    # Named as the form labels it, not by its path (person.nationality).
    expect(page.get_by_role("alert")).to_have_text(
        "Nationality must be at least 2 characters (and 1 more below)")
    for label in ("Nationality", "Country"):
        # By its accessible name: the problem beside it is its description, not its name.
        control = page.get_by_role("textbox", name=label, exact=True)
        expect(control).to_have_attribute("aria-invalid", "true")
        expect(control).to_have_accessible_description(re.compile("at least 2 characters"))
    expect(page.get_by_label("City")).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Team")).to_have_value("Kept Team")
    assert _row(committed_db, ada.id).team == "Old Team"

    page.get_by_label("Nationality").fill("FRA")
    page.get_by_label("Country").fill("FR")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Participant saved")
    with committed_db() as db:
        saved = db.get(EventParticipant, ada.id)
        assert saved is not None
        assert (saved.person.nationality, saved.person.country, saved.team) == (
            "FRA", "FR", "Kept Team")


def test_walk_up_entry_is_added_from_the_event_page(
    page: Page, seed: Seed, pair: tuple[EventParticipant, ...],
    committed_db: sessionmaker[Session], console: ConsoleWatch,
) -> None:
    _, bea = pair
    console.expect(r"status of 409 ")
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    page.get_by_role("link", name="Add participant").click()

    expect(page).to_have_url(re.compile(rf"/events/{seed.event.id}/participants/new$"))
    page.get_by_label("First name").fill("Émile")
    page.get_by_label("Last name").fill("Zátopek")
    page.get_by_label("Team").fill("Walk-ups")
    page.get_by_label("Bib").fill("202")  # Bea's
    page.get_by_role("button", name="Add participant").click()

    expect(page.get_by_role("alert")).to_contain_text("Bib 202 is already used in this event "
                                                      "by Bea Other")
    expect(page.get_by_role("textbox", name="Bib", exact=True)).to_have_attribute(
        "aria-invalid", "true")
    expect(page.get_by_label("Last name")).to_have_value("Zátopek")
    page.get_by_label("Bib").fill("404")
    page.get_by_role("button", name="Add participant").click()

    expect(page.get_by_role("status")).to_have_text("Émile Zátopek added")
    expect(page.locator("tr[data-participant-id]")).to_have_count(1)
    row = page.locator("tr[data-participant-id]")
    expect(row.locator("td.bib")).to_have_text("404")
    expect(row).to_contain_text("Zátopek, Émile")
    with committed_db() as db:
        added = db.get(EventParticipant, uuid.UUID(row.get_attribute("data-participant-id")))
        assert added is not None
        assert (added.bib, added.team, added.status.value, added.source_provider) == (
            "404", "Walk-ups", "active", None)
        assert added.id != bea.id


def test_post_without_csrf_token_is_refused(
    page: Page, seed: Seed, pair: tuple[EventParticipant, ...],
    committed_db: sessionmaker[Session],
) -> None:
    ada, _ = pair
    login(page, seed.admin.email)
    page.goto(f"/participants/{ada.id}/edit")
    token = page.locator('input[name="csrf_token"]').first.input_value()
    assert token
    url = f"/participants/{ada.id}/edit"
    form = {"first_name": "Ada", "last_name": "Lovelace", "bib": "777", "team": "Forged",
            "status": "active"}

    # ``page.request`` sends the context's cookies: the session and the CSRF cookie.
    missing = page.request.post(url, form=form, max_redirects=0)
    assert missing.status == 403
    assert "CSRF check" in missing.text()
    wrong = page.request.post(url, form={**form, "csrf_token": token[::-1]}, max_redirects=0)
    assert wrong.status == 403
    saved = _row(committed_db, ada.id)
    assert (saved.bib, saved.team) == ("101", "Old Team")

    ok = page.request.post(url, form={**form, "csrf_token": token}, max_redirects=0)
    assert ok.status == 303, ok.text()
    assert ok.headers["location"].startswith(f"/events/{seed.event.id}?")
    saved = _row(committed_db, ada.id)
    assert (saved.bib, saved.team) == ("777", "Forged")

    # The header htmx sends is accepted in place of the form field.
    header = page.request.post(url, form={**form, "team": "Via Header"},
                               headers={"X-CSRF-Token": token}, max_redirects=0)
    assert header.status == 303
    assert _row(committed_db, ada.id).team == "Via Header"


def test_saved_bib_with_url_special_characters_is_found_after_the_redirect(
    page: Page, seed: Seed, pair: tuple[EventParticipant, ...],
    committed_db: sessionmaker[Session],
) -> None:
    ada, _ = pair
    login(page, seed.admin.email)
    page.goto(f"/participants/{ada.id}/edit")
    page.get_by_label("Bib").fill("12+A&B")  # '+', '&' mean something in a query string
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_have_text("Participant saved")
    expect(page.get_by_role("searchbox", name="Search")).to_have_value("12+A&B")
    row = page.locator(f'tr[data-participant-id="{ada.id}"]')
    expect(row.locator("td.bib")).to_have_text("12+A&B")
    assert _row(committed_db, ada.id).bib == "12+A&B"
