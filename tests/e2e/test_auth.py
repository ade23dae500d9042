"""Logging in and out, redirects to the login page, and what a VIEWER may not do."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.e2e.helpers import ConsoleWatch, Seed, login
from tests.factories import PASSWORD, make_participant

pytestmark = pytest.mark.e2e


def test_wrong_password_shows_error_then_login_lands_on_events(
    page: Page, seed: Seed, console: ConsoleWatch
) -> None:
    console.expect(r"status of 401 .*/login\)")
    page.goto("/login")
    page.get_by_label("E-mail").fill(seed.admin.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_have_text("E-mail or password is wrong.")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_label("E-mail")).to_have_value(seed.admin.email)  # kept for a retry
    expect(page.get_by_label("Password")).to_have_value("")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(re.compile(r"/events$"))
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    expect(page.locator(".topbar .user")).to_contain_text(seed.admin.email)


def test_logout_returns_to_login_and_protected_pages_redirect(page: Page, seed: Seed) -> None:
    login(page, seed.admin.email)
    session_cookies = [c for c in page.context.cookies() if c["name"] == "racehub_session"]
    assert session_cookies, "logging in set no session cookie"

    page.get_by_role("button", name="Log out").click()

    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("heading", name="Log in to racehub")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)

    page.goto("/events")
    expect(page).to_have_url(re.compile(r"/login\?next=/events$"))

    # The session ended on the server too: the old cookie, replayed, no longer works.
    page.context.add_cookies(session_cookies)
    detail = f"/events/{seed.event.id}?q=Ada"
    page.goto(detail)
    expect(page).to_have_url(re.compile(re.escape("/login?next=" + quote(detail)) + "$"))

    # Logging in from there goes back to the page first asked for, query included.
    page.get_by_label("E-mail").fill(seed.admin.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(detail) + "$"))
    expect(page.get_by_role("heading", name=seed.event.name)).to_be_visible()
    expect(page.get_by_role("searchbox", name="Search")).to_have_value("Ada")


def test_viewer_sees_no_edit_actions_and_is_refused_the_edit_pages(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    with committed_db() as db:
        ep = make_participant(db, seed.event, first_name="Vera", last_name="Viewed", bib="5")
        db.commit()
    console.expect(r"status of 403 ")

    login(page, seed.viewer.email)
    expect(page.locator(".topbar .user")).to_contain_text("VIEWER")
    expect(page.get_by_role("link", name=seed.event.name)).to_be_visible()
    expect(page.get_by_role("link", name="New event")).to_have_count(0)

    page.get_by_role("link", name=seed.event.name).click()
    expect(page.get_by_role("heading", name=seed.event.name)).to_be_visible()
    row = page.locator(f'tr[data-participant-id="{ep.id}"]')
    expect(row).to_contain_text("Viewed, Vera")
    main = page.locator("main")
    expect(main.get_by_role("link", name=re.compile(r"^Edit"))).to_have_count(0)
    expect(main.get_by_role("button", name="Add category")).to_have_count(0)
    expect(main.get_by_role("button", name="Assign missing bibs")).to_have_count(0)
    expect(main.locator("form[method=post]")).to_have_count(0)

    # The table partial that htmx loads must not bring the links back either.
    page.get_by_role("searchbox", name="Search").fill("Vera")
    expect(page).to_have_url(re.compile(r"q=Vera"))
    expect(row).to_be_visible()
    expect(main.get_by_role("link", name=re.compile(r"^Edit"))).to_have_count(0)

    for url, permission in [
        (f"/participants/{ep.id}/edit", "events:participant:write"),
        (f"/events/{seed.event.id}/edit", "events:event:write"),
        ("/events/new", "events:event:write"),
    ]:
        response = page.goto(url)
        assert response is not None and response.status == 403, url
        expect(page.locator(".error-detail")).to_contain_text(
            f"Your role (VIEWER) lacks the '{permission}' permission."
        )
