"""The pages run without console errors or Content-Security-Policy violations.

Every browser test fails on an unexpected console error (see ``page`` in conftest); this
one walks the pages a tenant admin sees, using their scripts, and checks the watcher
itself catches a CSP violation.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.models import Role
from tests.e2e.helpers import ConsoleWatch, Seed, login
from tests.factories import make_category, make_participant, make_user

pytestmark = pytest.mark.e2e


def test_pages_have_no_console_errors_or_csp_violations(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    with committed_db() as db:
        admin = make_user(db, seed.tenant, Role.TENANT_ADMIN, email="boss@alpine.test")
        make_category(db, seed.event, "10K", bib_range_start=1, bib_range_end=500)
        ep = make_participant(db, seed.event, first_name="Ada", bib="7")
        make_participant(db, seed.event, first_name="Bob")
        db.commit()

    login(page, admin.email)
    page.get_by_role("link", name=seed.event.name).click()
    expect(page.get_by_role("heading", name=seed.event.name)).to_be_visible()
    page.get_by_role("searchbox", name="Search").fill("Ada")  # htmx request and swap
    expect(page.locator("#participant-total")).to_have_text("1")
    page.locator("#participants thead").get_by_role("link", name="Bib").click()
    expect(page).to_have_url(re.compile(r"sort=bib"))
    page.locator("#participant-filters").get_by_label("Category").select_option(label="10K")
    expect(page).to_have_url(re.compile(r"category="))
    page.go_back()  # htmx history restore
    expect(page).to_have_url(re.compile(r"sort=bib"))

    for url, heading in [
        (f"/participants/{ep.id}/edit", "Edit participant"),
        (f"/events/{seed.event.id}/edit", "Edit event"),
        ("/events/new", "New event"),
        ("/settings/tokens", None),
        ("/audit", None),
    ]:
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        if heading:
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
        expect(page.locator("body")).to_be_visible()
        # Stylesheets are from /static and applied (an inline-style block would be refused).
        assert page.evaluate("() => document.styleSheets.length") >= 1

    assert page.evaluate("() => typeof window.htmx") == "object"
    assert console.unexpected() == []


def test_console_watch_catches_a_csp_violation(
    page: Page, seed: Seed, console: ConsoleWatch
) -> None:
    login(page, seed.admin.email)
    assert console.errors == []
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate("""() => {
            const s = document.createElement("script");
            s.textContent = "window.__e2eInline = 1";
            document.body.appendChild(s);
        }""")
    page.wait_for_function("() => window.__e2eCspViolations > 0")
    assert page.evaluate("() => window.__e2eInline") is None  # refused: it never ran
    assert any(e.startswith("CSP: script-src") for e in console.errors), console.errors
    assert any("Content Security Policy" in e for e in console.unexpected())
    console.errors.clear()  # provoked on purpose
