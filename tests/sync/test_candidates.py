"""Candidates through the API: discovered provider events listed with filters, one linked to
an existing event, a racehub event created from one (its race's sub-events becoming
categories, linked and mapped), nothing guessed when the provider gave no zone, links
audited, another tenant's candidates out of reach."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.events.models import Category, Event
from racehub.sync import discovery
from racehub.sync.candidates import distance_in_meters
from racehub.sync.models import CategoryLink, EventLink, ProviderConnection
from tests.factories import auth, make_event, make_tenant
from tests.sync.conftest import audit_entries
from tests.sync.engine_helpers import Clock, connect, simulator


@pytest.fixture
def admin(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.EVENT_MANAGER)


@pytest.fixture
def discovered(db: Session, ctx: TenantContext, keyring: Keyring) -> ProviderConnection:
    """A RunSignUp connection with two races of two events each discovered; the second
    race gives no time zone."""
    with simulator(races=2, events_per_race=2, participants_per_event=3,
                   real_shapes=True) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        discovery.discover_events(db, ctx, connection_id=connection.id, keyring=keyring,
                                  clock=Clock())
    db.commit()
    return connection


def candidates(client: TestClient, headers: dict[str, str], **params: str) -> list[dict]:  # type: ignore[type-arg]
    response = client.get("/api/provider-events", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_candidates_are_listed_with_what_the_provider_said(
    client: TestClient, discovered: ProviderConnection, admin: dict[str, str]
) -> None:
    listed = candidates(client, admin, connectionId=str(discovered.id))
    assert [c["name"] for c in listed] == [
        "Boston City Run 2026 · 5K", "Boston City Run 2026 · 10K",
        "Denver City Run 2026 · 5K", "Denver City Run 2026 · 10K"]
    first = listed[0]
    assert first["startAt"] == "2026-10-01T11:30:00Z" and first["timeZone"] == "America/New_York"
    assert first["timeZoneSource"] == "provider" and first["location"] == "Boston, MA, US"
    assert first["raceName"] == "5K" and first["parentName"] == "Boston City Run 2026"
    assert first["chosen"] is False and first["eventId"] is None and first["goneAt"] is None
    assert listed[2]["startAt"] is None and listed[2]["timeZone"] is None
    assert [c["name"] for c in candidates(client, admin, q="denver")] == [
        "Denver City Run 2026 · 5K", "Denver City Run 2026 · 10K"]
    assert candidates(client, admin, linked="true") == []
    assert len(candidates(client, admin, startFrom="2026-10-01T00:00:00Z",
                          startTo="2026-10-02T00:00:00Z")) == 2


def test_a_candidate_is_linked_to_an_existing_event_with_its_race(
    client: TestClient, db: Session, tenant: Tenant, discovered: ProviderConnection,
    admin: dict[str, str],
) -> None:
    event = make_event(db, tenant, name="Boston", start_at=datetime(2026, 10, 1, 12, tzinfo=UTC))
    far = make_event(db, tenant, name="Far", start_at=datetime(2027, 3, 1, tzinfo=UTC))
    db.commit()
    near = candidates(client, admin, nearEventId=str(event.id))
    assert [c["name"] for c in near] == ["Boston City Run 2026 · 5K",
                                         "Boston City Run 2026 · 10K"]
    assert candidates(client, admin, nearEventId=str(far.id)) == []

    response = client.post(f"/api/provider-events/{near[0]['id']}/link", headers=admin,
                           json={"eventId": str(event.id), "withRace": True})

    assert response.status_code == 201, response.text
    assert [x["providerEventName"] for x in response.json()] == [
        "Boston City Run 2026 · 5K", "Boston City Run 2026 · 10K"]
    assert {x["eventId"] for x in response.json()} == {str(event.id)}
    assert len(audit_entries(db, "link.create")) == 2
    linked = candidates(client, admin, linked="true")
    assert [(c["eventName"], c["chosen"]) for c in linked] == [("Boston", True)] * 2
    # Linked now: no longer offered near the event; and it feeds one event per connection.
    assert candidates(client, admin, nearEventId=str(event.id)) == []
    again = client.post(f"/api/provider-events/{near[0]['id']}/link", headers=admin,
                        json={"eventId": str(far.id)})
    assert again.status_code == 409 and "already feeds event 'Boston'" in again.json()["detail"]


def test_an_event_is_created_from_a_candidate_its_races_becoming_categories(
    client: TestClient, db: Session, discovered: ProviderConnection, admin: dict[str, str],
) -> None:
    ten_k = candidates(client, admin, q="Boston City Run 2026 · 10K")[0]

    response = client.post(f"/api/provider-events/{ten_k['id']}/create-event", headers=admin,
                           json={})

    assert response.status_code == 201, response.text
    body = response.json()
    event = body["event"]
    assert event["name"] == "Boston City Run 2026" and event["timezone"] == "America/New_York"
    assert event["startAt"] == "2026-10-01T11:30:00Z"  # the race's first start (its 5K)
    assert event["location"] == "Boston, MA, US"
    assert [x["providerEventName"] for x in body["links"]] == [
        "Boston City Run 2026 · 10K", "Boston City Run 2026 · 5K"]
    categories = {c.name: c for c in db.scalars(
        select(Category).where(Category.event_id == uuid.UUID(event["id"])))}
    assert {n: c.distance_m for n, c in categories.items()} == {"5K": 5000, "10K": 10000}
    mapped = {m.provider_ref: m.category_id for m in db.scalars(
        select(CategoryLink).join(EventLink, EventLink.id == CategoryLink.link_id)
        .where(EventLink.event_id == uuid.UUID(event["id"])))}
    refs = {x["providerEventRef"]: x["providerEventName"] for x in body["links"]}
    assert {refs[r].rsplit(" ", 1)[-1]: c for r, c in mapped.items()} == {
        "5K": categories["5K"].id, "10K": categories["10K"].id}
    assert len(audit_entries(db, "event.create")) == 1
    assert len(audit_entries(db, "link.create")) == 2
    assert len(audit_entries(db, "link.categories")) == 2
    # The other race's candidates were left alone.
    assert len(candidates(client, admin, linked="false")) == 2


def test_no_time_zone_is_guessed_for_an_event_made_from_a_provider_event_without_one(
    client: TestClient, db: Session, discovered: ProviderConnection, admin: dict[str, str],
) -> None:
    unzoned = candidates(client, admin, q="Denver City Run 2026 · 5K")[0]
    url = f"/api/provider-events/{unzoned['id']}/create-event"

    no_start = client.post(url, headers=admin, json={"withRace": False})
    assert no_start.status_code == 422
    assert no_start.json()["errors"][0]["field"] == "startAt"
    no_zone = client.post(url, headers=admin, json={"startAt": "2026-10-08T07:30:00",
                                                    "withRace": False})
    assert no_zone.status_code == 422
    assert no_zone.json()["detail"].startswith("timezone: 'RunSignUp' gave no time zone")
    assert db.scalar(select(Event).where(Event.name == "Denver City Run 2026")) is None

    made = client.post(url, headers=admin, json={
        "startAt": "2026-10-08T07:30:00", "timezone": "America/Denver", "name": "Denver 5K",
        "withRace": False})
    assert made.status_code == 201, made.text
    assert made.json()["event"]["startAt"] == "2026-10-08T13:30:00Z"
    assert len(made.json()["links"]) == 1


def test_another_tenants_candidates_are_out_of_reach(
    client: TestClient, db: Session, discovered: ProviderConnection,
) -> None:
    other = make_tenant(db)
    stranger = auth(db, other, Role.TENANT_ADMIN)
    theirs = make_event(db, other)
    db.commit()
    candidate = db.scalars(select(EventLink).where(
        EventLink.connection_id == discovered.id)).first()
    assert candidate is not None
    assert candidates(client, stranger) == []
    assert client.get("/api/provider-events", headers=stranger,
                      params={"connectionId": str(discovered.id)}).status_code == 404
    for path, body in (("link", {"eventId": str(theirs.id)}), ("create-event", {})):
        response = client.post(f"/api/provider-events/{candidate.id}/{path}", headers=stranger,
                               json=body)
        assert response.status_code == 404, response.text
    assert client.post(f"/api/connections/{discovered.id}/discover",
                       headers=stranger).status_code == 404


def test_discover_asks_for_a_job_and_joins_it(
    client: TestClient, db: Session, discovered: ProviderConnection, admin: dict[str, str],
) -> None:
    first = client.post(f"/api/connections/{discovered.id}/discover", headers=admin)
    second = client.post(f"/api/connections/{discovered.id}/discover", headers=admin)
    assert first.status_code == second.status_code == 202
    assert first.json()["joined"] is False and second.json() == {
        "jobId": first.json()["jobId"], "joined": True}
    job = client.get(f"/api/jobs/{first.json()['jobId']}", headers=admin)
    assert job.status_code == 200 and job.json()["kind"] == discovery.DISCOVER_EVENTS_KIND


@pytest.mark.parametrize(("text", "meters"), [
    ("5K", 5000), ("10 km", 10000), ("13.1 miles", 21082), ("Marathon", 42195),
    ("Half Marathon", 21098), ("800m", 800), ("Fun run", None), ("", None), (None, None)])
def test_distances_are_read_only_when_they_say_their_length(
    text: str | None, meters: int | None
) -> None:
    assert distance_in_meters(text) == meters
