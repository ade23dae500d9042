"""The Provider events page and the event page without a browser: candidates with what the
provider said, "Discover events now" asking for a job, an event created from a candidate
through the form (or refused naming the missing zone), a candidate near an event linked from
the event page; a viewer sees neither candidates nor actions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.events.models import Category, Event
from racehub.jobs.models import JobRun
from racehub.sync import discovery
from racehub.sync.models import EventLink, ProviderConnection
from tests.factories import make_event
from tests.sync.engine_helpers import Clock, connect, simulator
from tests.sync.test_link_pages import log_in


@pytest.fixture
def discovered(db: Session, ctx: TenantContext, keyring: Keyring) -> ProviderConnection:
    with simulator(races=2, events_per_race=2, participants_per_event=3,
                   real_shapes=True) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        discovery.discover_events(db, ctx, connection_id=connection.id, keyring=keyring,
                                  clock=Clock())
    db.commit()
    return connection


def candidate(db: Session, connection: ProviderConnection, name: str) -> EventLink:
    row = db.scalar(select(EventLink).where(EventLink.connection_id == connection.id,
                                            EventLink.provider_event_name == name))
    assert row is not None
    return row


def test_the_page_shows_candidates_and_creates_an_event_from_one(
    client: TestClient, db: Session, tenant: Tenant, discovered: ProviderConnection
) -> None:
    browser = log_in(client, db, tenant, Role.EVENT_MANAGER)
    url = f"/connections/{discovered.id}/links"
    page = browser.get(url)
    assert page.status_code == 200
    assert "Boston City Run 2026 · 10K" in page.text and "Boston, MA, US" in page.text
    assert "no time zone given" in page.text  # the Denver race: nothing made up
    assert 'value="America/New_York"' in page.text  # the create form, prefilled
    assert 'value="2026-10-01T07:30"' in page.text  # the race's first start, local
    assert "Discover events now" in page.text

    asked = browser.post(f"/connections/{discovered.id}/discover", follow_redirects=False)
    assert asked.status_code == 303 and "Discovering" in asked.headers["location"]
    assert db.scalar(select(JobRun).where(
        JobRun.kind == discovery.DISCOVER_EVENTS_KIND)) is not None

    five_k = candidate(db, discovered, "Boston City Run 2026 · 5K")
    made = browser.post(f"/connections/{discovered.id}/provider-events/{five_k.id}/create-event",
                        data={"name": "Boston City Run", "start_at": "2026-10-01T07:30",
                              "timezone": "America/New_York", "location": "Boston, MA, US",
                              "with_race": "on"}, follow_redirects=False)
    assert made.status_code == 303, made.text
    event = db.scalar(select(Event).where(Event.name == "Boston City Run"))
    assert event is not None and made.headers["location"].startswith(f"/events/{event.id}")
    assert event.start_at == datetime(2026, 10, 1, 11, 30, tzinfo=UTC)
    assert sorted(c.name for c in db.scalars(
        select(Category).where(Category.event_id == event.id))) == ["10K", "5K"]
    page = browser.get(url)
    assert page.text.count(f'<a href="/events/{event.id}">Boston City Run</a>') == 2


def test_creating_without_a_zone_the_provider_did_not_give_names_it(
    client: TestClient, db: Session, tenant: Tenant, discovered: ProviderConnection
) -> None:
    browser = log_in(client, db, tenant, Role.EVENT_MANAGER)
    unzoned = candidate(db, discovered, "Denver City Run 2026 · 5K")
    refused = browser.post(
        f"/connections/{discovered.id}/provider-events/{unzoned.id}/create-event",
        data={"name": "Denver", "start_at": "2026-10-08T07:30", "timezone": ""})
    assert refused.status_code == 422
    assert "gave no time zone for provider event" in refused.text
    assert db.scalar(select(Event).where(Event.name == "Denver")) is None


def test_the_event_page_offers_candidates_near_its_date_to_link(
    client: TestClient, db: Session, tenant: Tenant, discovered: ProviderConnection
) -> None:
    event = make_event(db, tenant, name="Boston", start_at=datetime(2026, 10, 1, 12, tzinfo=UTC))
    browser = log_in(client, db, tenant, Role.EVENT_MANAGER)
    page = browser.get(f"/events/{event.id}")
    assert "Provider events near this date" in page.text
    assert page.text.count("Link to this event") == 2
    five_k = candidate(db, discovered, "Boston City Run 2026 · 5K")

    linked = browser.post(f"/connections/{discovered.id}/links", data={
        "provider_event_ref": five_k.provider_event_ref, "event_id": str(event.id),
        "return_to": "event"}, follow_redirects=False)

    assert linked.status_code == 303
    assert linked.headers["location"].startswith(f"/events/{event.id}?flash=")
    page = browser.get(f"/events/{event.id}")
    assert page.text.count("Link to this event") == 1
    assert "Boston City Run 2026 · 5K" in page.text.split("Provider events near")[0]


def test_a_viewer_sees_no_candidates(
    client: TestClient, db: Session, tenant: Tenant, discovered: ProviderConnection
) -> None:
    event = make_event(db, tenant, name="Boston", start_at=datetime(2026, 10, 1, 12, tzinfo=UTC))
    browser = log_in(client, db, tenant, Role.VIEWER)
    page = browser.get(f"/events/{event.id}")
    assert page.status_code == 200 and "Provider events near this date" not in page.text
    assert browser.get(f"/connections/{discovered.id}/links").status_code == 403
