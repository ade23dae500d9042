"""Alerts in Chromium: the top bar's badge leads to the open alert, whose page shows its
evidence; an event manager acknowledges it (the badge drops to 0); a tenant admin sets a
webhook and sees its signing secret once."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.alerts import service
from racehub.core.context import TenantContext
from racehub.core.crypto import keyring_from_settings
from racehub.core.models import Role
from racehub.settings import Settings
from racehub.sync.models import ConnectionStatus
from tests.e2e.helpers import ConsoleWatch, login
from tests.factories import make_tenant, make_user
from tests.sync.engine_helpers import connect

pytestmark = pytest.mark.e2e

MANAGER = "manager@alerts.test"
ADMIN = "admin@alerts.test"


@pytest.fixture
def firing(committed_db: sessionmaker[Session], e2e_settings: Settings) -> None:
    keyring = keyring_from_settings(e2e_settings)
    with committed_db() as db:
        tenant = make_tenant(db, name="Alert Timing")
        make_user(db, tenant, Role.EVENT_MANAGER, email=MANAGER)
        make_user(db, tenant, Role.TENANT_ADMIN, email=ADMIN)
        connection = connect(db, TenantContext.system(tenant.id, label="test"), keyring,
                             "http://127.0.0.1:9/Rest", name="RunSignUp main")
        connection.status = ConnectionStatus.FAILED
        connection.last_check_message = "RUNSIGNUP: key authentication failed (code 6)"
        db.flush()
        service.evaluate(db, now=datetime.now(UTC), settings=e2e_settings, keyring=keyring)
        db.commit()


def test_the_badge_leads_to_the_alert_which_an_event_manager_acknowledges(
    page: Page, firing: None, console: ConsoleWatch,
) -> None:
    login(page, MANAGER)
    badge = page.locator("#alert-badge")
    expect(badge).to_have_text("Alerts 1")
    badge.click()
    expect(page).to_have_url(re.compile(r"/alerts$"))
    row = page.locator("#open-alerts tr[data-alert-id]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Credentials refused")
    expect(row).to_contain_text("key authentication failed (code 6)")
    row.get_by_role("link", name="Credentials refused").click()

    expect(page.get_by_role("heading", name="Credentials refused: RunSignUp main")).to_be_visible()
    expect(page.locator("#alert-evidence")).to_contain_text("key authentication failed")
    expect(page.locator("#alert-state")).to_have_text("firing")
    page.locator("#acknowledge").get_by_label("Comment (optional)").fill("new key tonight")
    page.locator("#acknowledge").get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_contain_text("Alert acknowledged")
    expect(page.locator("#alert-ack")).to_contain_text(MANAGER)
    expect(page.locator("#alert-ack")).to_contain_text("new key tonight")
    expect(page.locator("#alert-badge")).to_have_text("Alerts 0")
    expect(page.locator("#acknowledge")).to_have_count(0)


def test_a_tenant_admin_sets_a_webhook_and_sees_its_secret_once(
    page: Page, firing: None, console: ConsoleWatch,
) -> None:
    console.expect(r"status of 422 .*/alerts/settings\)")
    login(page, ADMIN)
    page.goto("/alerts")
    page.get_by_role("link", name="Alert settings").click()
    form = page.locator("#alert-settings")
    # A loopback address is refused (the platform does not allow private ones here).
    form.get_by_label("Webhook URL").fill("http://127.0.0.1:8000/api/me")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("loopback")
    form = page.locator("#alert-settings")
    form.get_by_label("Webhook URL").fill("https://93.184.215.14/racehub")
    form.get_by_label("E-mail recipients (comma or line separated)").fill("ops@alerts.example")
    form.get_by_role("button", name="Save").click()
    secret = page.locator("#webhook-secret code.secret")
    expect(secret).to_contain_text("whsec_")
    page.goto("/alerts/settings")
    expect(page.locator("#webhook-secret")).to_have_count(0)
    expect(page.locator("#alert-settings").get_by_label("Webhook URL")).to_have_value(
        "https://93.184.215.14/racehub")
    expect(page.get_by_text("Signing secret: set")).to_be_visible()
