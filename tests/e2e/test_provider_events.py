"""The Provider events page and the event page in Chromium: an event manager sees the
candidates a discovery (against the RunSignUp simulator) found, asks for a discovery, creates
a racehub event from a candidate (its race's events becoming categories) and links a
candidate to an existing event from that event's page; a viewer gets neither."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.crypto import keyring_from_settings
from racehub.core.models import Role
from racehub.events.models import Category, Event
from racehub.jobs.models import JobRun
from racehub.providers.runsignup.simulator import DEMO_CREDENTIALS, make_app
from racehub.providers.simulator import serve_in_thread
from racehub.settings import Settings
from racehub.sync import discovery, service
from racehub.sync.schemas import ConnectionCreate
from tests.e2e.helpers import login
from tests.factories import make_event, make_tenant, make_user, system_ctx

pytestmark = pytest.mark.e2e

MANAGER = "manager@harbour.test"
VIEWER = "viewer@harbour.test"


@pytest.fixture(scope="module")
def simulator() -> Iterator[tuple[str, Any]]:
    app = make_app(races=2, events_per_race=2, participants_per_event=3, with_results=False)
    with serve_in_thread(app) as url:
        yield url + "/Rest", app.state.simulator


@pytest.fixture
def seeded(committed_db: sessionmaker[Session], e2e_settings: Settings,
           simulator: tuple[str, Any]) -> dict[str, str]:
    """An event manager, a viewer, an event on the Denver race's day and a RunSignUp
    connection whose events were discovered (Boston's race and Denver's race, two each)."""
    base_url, _ = simulator
    with committed_db() as db:
        tenant = make_tenant(db, name="Harbour Timing")
        make_user(db, tenant, Role.EVENT_MANAGER, email=MANAGER)
        make_user(db, tenant, Role.VIEWER, email=VIEWER)
        event = make_event(db, tenant, name="Denver day", timezone="America/Denver",
                           start_at=datetime(2026, 10, 8, 14, tzinfo=UTC))
        platform = dataclasses.replace(system_ctx(tenant), is_platform_admin=True)
        keyring = keyring_from_settings(e2e_settings)
        connection = service.create_connection(db, platform, keyring=keyring, data=ConnectionCreate(
            provider="RUNSIGNUP", name="RunSignUp (simulator)", base_url=base_url,
            credentials=dict(DEMO_CREDENTIALS)))
        db.flush()
        ids = {"connection": str(connection.id), "event": str(event.id)}
        discovery.discover_events(db, system_ctx(tenant), connection_id=connection.id,
                                  keyring=keyring)
        db.commit()
    return ids


def test_an_event_manager_creates_an_event_from_a_provider_event_and_links_another(
    page: Page, seeded: dict[str, str], committed_db: sessionmaker[Session]
) -> None:
    login(page, MANAGER)
    page.goto("/connections")
    page.get_by_role("link", name="Provider events").click()
    expect(page).to_have_url(re.compile(f"/connections/{seeded['connection']}/links$"))
    rows = page.locator("#candidates tbody tr")
    expect(rows).to_have_count(4)
    boston_10k = rows.filter(has_text="Boston City Run 2026 · 10K")
    expect(boston_10k).to_contain_text("Boston, MA, US")
    expect(boston_10k).to_contain_text("America/New_York")
    expect(boston_10k).to_contain_text("not linked")

    page.get_by_role("button", name="Discover events now").click()
    expect(page.locator(".flash.ok")).to_contain_text("Discovering the provider's events")

    boston_10k = page.locator("#candidates tbody tr").filter(
        has_text="Boston City Run 2026 · 10K")
    boston_10k.get_by_text("Create event from it").click()
    form = boston_10k.locator("details.create-event form")
    expect(form.get_by_label("Name")).to_have_value("Boston City Run 2026")
    expect(form.get_by_label("Time zone")).to_have_value("America/New_York")
    expect(form.get_by_label("Start (local)")).to_have_value("2026-10-01T07:30")
    form.get_by_role("button", name="Create event").click()

    expect(page).to_have_url(re.compile(r"/events/[0-9a-f-]+\?flash="))
    expect(page.locator("h1")).to_have_text("Boston City Run 2026")
    expect(page.locator(".flash.ok")).to_contain_text("created from 2 provider event(s)")
    links = page.locator("#provider-links table.links tbody tr")
    expect(links).to_have_count(2)
    with committed_db() as db:
        event = db.scalar(select(Event).where(Event.name == "Boston City Run 2026"))
        assert event is not None
        assert sorted(db.scalars(select(Category.name).where(
            Category.event_id == event.id))) == ["10K", "5K"]

    # The Denver race's day: its two events are offered on that event's page.
    page.goto(f"/events/{seeded['event']}")
    near = page.locator("#provider-links table.candidates tbody tr")
    expect(near).to_have_count(2)
    near.filter(has_text="Denver City Run 2026 · 5K").get_by_role(
        "button", name="Link to this event").click()
    expect(page).to_have_url(re.compile(f"/events/{seeded['event']}"))
    expect(page.locator(".flash.ok")).to_contain_text("now feeds Denver day")
    expect(page.locator("#provider-links table.links tbody tr")).to_contain_text(
        "Denver City Run 2026 · 5K")
    expect(page.locator("#provider-links table.candidates tbody tr")).to_have_count(1)
    with committed_db() as db:
        assert db.scalar(select(JobRun.kind).where(
            JobRun.kind == discovery.DISCOVER_EVENTS_KIND)) is not None


def test_a_viewer_sees_no_candidates_and_no_provider_events_page(
    page: Page, seeded: dict[str, str], console: Any
) -> None:
    console.expect(r"status of 403 ")
    login(page, VIEWER)
    page.goto(f"/events/{seeded['event']}")
    expect(page.locator("#provider-links")).to_contain_text("No provider event feeds this event")
    expect(page.locator("#provider-links table.candidates")).to_have_count(0)
    expect(page.get_by_role("button", name="Link to this event")).to_have_count(0)
    response = page.goto(f"/connections/{seeded['connection']}/links")
    assert response is not None and response.status == 403
