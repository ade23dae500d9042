"""Forms in Chromium after their POST: a refused form is shown again at its page's own GET
address (not the POST's), so a reload asks for the page instead of a 405 or posting twice;
a page rendered in answer to a POST (a token's one-time secret) reloads as the page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.models import ApiToken, Role
from racehub.events.models import Category
from tests.e2e.helpers import ConsoleWatch, Seed, login
from tests.factories import make_user


def test_a_refused_form_is_shown_at_its_page_address_and_reloads_as_that_page(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    console.expect(r"status of 422 ")
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}?flash=Saved")
    form = page.locator("#category-form")
    form.get_by_label("Name").fill("10K")
    form.get_by_label("Bibs from").fill("500")
    form.get_by_label("Bibs to").fill("100")
    form.get_by_role("button", name="Add category").click()

    # The refusal is shown beside the form, at the event page's address (its flash gone).
    expect(page.get_by_role("alert")).to_contain_text(
        "Bibs to must not be below the range's start (500)")
    expect(page).to_have_url(re.compile(rf"/events/{seed.event.id}$"))

    response = page.reload()

    assert response is not None and response.status == 200
    assert response.request.method == "GET"
    expect(page.get_by_role("heading", name=seed.event.name)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    with committed_db() as db:
        assert db.scalar(select(func.count()).select_from(Category)
                         .where(Category.event_id == seed.event.id)) == 0


def test_a_page_rendered_for_a_post_reloads_without_posting_again(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    with committed_db() as db:
        admin = make_user(db, seed.tenant, Role.TENANT_ADMIN, email="admin@alpine.test")
        db.commit()
    login(page, admin.email)
    page.goto("/settings/tokens")
    page.get_by_label("Name").fill("scoreboard")
    page.get_by_role("button", name=re.compile("Create")).click()
    expect(page.locator("#new-token")).to_be_visible()

    response = page.reload()

    assert response is not None and response.request.method == "GET"
    expect(page).to_have_url(re.compile(r"/settings/tokens$"))
    expect(page.locator("#new-token")).to_have_count(0)
    with committed_db() as db:
        assert db.scalar(select(func.count()).select_from(ApiToken)
                         .where(ApiToken.tenant_id == seed.tenant.id)) == 1
