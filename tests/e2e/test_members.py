"""Members in Chromium: a tenant admin adds a new account (after a refused try), changes a
role, is stopped from demoting themselves as the last admin, and removes a member, who
then loses the tenant."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.models import Role
from tests.e2e.helpers import ConsoleWatch, login
from tests.factories import make_tenant, make_user

pytestmark = pytest.mark.e2e

ADMIN = "admin@alpine.test"
VIEWER = "viewer@alpine.test"
NEW = "grace@alpine.test"
NEW_PASSWORD = "grace-hopper-1906"


@pytest.fixture
def seeded(committed_db: sessionmaker[Session]) -> None:
    with committed_db() as db:
        tenant = make_tenant(db, name="Alpine Timing")
        make_user(db, tenant, Role.TENANT_ADMIN, email=ADMIN)
        make_user(db, tenant, Role.VIEWER, email=VIEWER)
        db.commit()


def test_admin_manages_members_and_a_removed_member_loses_the_tenant(
    page: Page, seeded: None, console: ConsoleWatch
) -> None:
    console.expect(r"status of 422 .*/settings/members\)")
    console.expect(r"status of 409 .*/settings/members/.*/role\)")
    console.expect(r"status of 403 .*/events\)")
    login(page, ADMIN)
    page.get_by_role("link", name="Members").click()
    expect(page).to_have_url(re.compile(r"/settings/members$"))
    expect(page.get_by_role("heading", name="Members")).to_be_visible()

    # A new e-mail needs a password: the problem is shown beside it, the values kept.
    form = page.locator("#add-member")
    form.get_by_label("E-mail").fill(NEW)
    form.get_by_label("Role").select_option("RESULTS_OFFICER")
    form.get_by_role("button", name="Add member").click()
    password = page.locator("#add-member").get_by_label("Password (new account)")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-problem")).to_contain_text("no racehub account yet")
    expect(page.locator("#add-member").get_by_label("E-mail")).to_have_value(NEW)
    expect(page.locator("#add-member").get_by_label("Role")).to_have_value("RESULTS_OFFICER")

    password.fill(NEW_PASSWORD)
    page.locator("#add-member").get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"{NEW} added as RESULTS_OFFICER (a new account)")
    new_row = page.locator("tr", has_text=NEW)
    expect(new_row.get_by_label(f"Role of {NEW}", exact=True)).to_have_value("RESULTS_OFFICER")

    # Change a role.
    new_row.get_by_label(f"Role of {NEW}", exact=True).select_option("EVENT_MANAGER")
    new_row.get_by_role("button", name="Change role").click()
    expect(page.get_by_role("status")).to_contain_text(f"{NEW} is now EVENT_MANAGER")

    # The only admin cannot demote themselves: the reason is shown beside their row.
    own_row = page.locator("tr", has_text=ADMIN)
    own_row.get_by_label(f"Role of {ADMIN}", exact=True).select_option("VIEWER")
    own_row.get_by_role("button", name="Change role").click()
    own_row = page.locator("tr", has_text=ADMIN)
    expect(own_row.locator(".field-problem")).to_contain_text("you are the only TENANT_ADMIN")
    expect(own_row.get_by_label(f"Role of {ADMIN}", exact=True)).to_have_value("TENANT_ADMIN")

    # Remove the viewer (after confirming).
    page.locator("tr", has_text=VIEWER).get_by_role("button", name="Remove").click()
    confirm = page.get_by_role("alertdialog", name=f"Remove {VIEWER} from this tenant?")
    confirm.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_contain_text(f"{VIEWER} removed from this tenant")
    expect(page.locator("tr", has_text=VIEWER)).to_have_count(0)

    # The new account logs in; the removed one is told to ask for access.
    page.get_by_role("button", name="Log out").click()
    login(page, NEW, NEW_PASSWORD)
    expect(page.locator(".topbar .user")).to_contain_text(f"{NEW} · EVENT_MANAGER")
    expect(page.get_by_role("link", name="Members")).to_have_count(0)
    page.get_by_role("button", name="Log out").click()
    login(page, VIEWER)
    expect(page.get_by_text("Ask a tenant admin to add you")).to_be_visible()
