"""Links as rows: a connection's provider events linked to racehub events (and their races to
categories) through the API and the service; tenant scoping, permissions, the one-event-per-
provider-event rule, unlinking refused while a run is active, and the connection's eventIds
kept working on top of the rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.exceptions import Conflict, Invalid, NotFound
from racehub.core.models import Role, Tenant
from racehub.providers.catalog import Direction
from racehub.sync import links, service
from racehub.sync.adapters import build_adapter
from racehub.sync.models import CategoryLink, EventLink, ProviderConnection, SyncStatus
from racehub.sync.schemas import ConnectionUpdate, LinkCreate
from tests.factories import (
    auth,
    make_category,
    make_event,
    make_participant,
    make_synced_record,
    make_tenant,
    system_ctx,
)
from tests.sync.conftest import (
    RSU_KEY,
    RSU_SECRET,
    audit_entries,
    fake_factory,
    link,
    make_connection,
    start_run,
)


@pytest.fixture
def admin(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.TENANT_ADMIN)


# --- the API ---------------------------------------------------------------------------------


def test_a_provider_event_is_linked_listed_renamed_and_unlinked(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    connection = make_connection(db, ctx, keyring, event_ids=["100:1"])
    event = make_event(db, tenant, name="Spring 10K")
    db.commit()

    created = client.post(f"/api/events/{event.id}/links", headers=admin, json={
        "connectionId": str(connection.id), "providerEventRef": " 100:1 ",
        "providerEventName": "Spring 10K (RunSignUp)"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["providerEventRef"] == "100:1" and body["eventId"] == str(event.id)
    assert body["eventName"] == "Spring 10K" and body["connectionName"] == "RSU"
    assert body["providerLabel"] == "RunSignUp" and body["participantSource"] is True
    assert body["linkedAt"] is not None and body["cursor"] is None
    assert body["syncing"] is False and body["autoSync"] is True
    # The row chosen on the connection became the link: no second row for the same ref.
    assert db.scalars(select(EventLink).where(
        EventLink.connection_id == connection.id)).all() == [db.get(EventLink, uuid.UUID(
            body["id"]))]

    listed = client.get(f"/api/events/{event.id}/links", headers=admin).json()
    assert [x["id"] for x in listed] == [body["id"]]
    patched = client.patch(f"/api/events/{event.id}/links/{body['id']}", headers=admin,
                           json={"autoSync": False, "providerEventName": "10K"})
    assert patched.status_code == 200
    assert patched.json()["autoSync"] is False and patched.json()["providerEventName"] == "10K"

    row = db.get(EventLink, uuid.UUID(body["id"]))
    assert row is not None
    row.cursor = row.last_success_at = datetime(2026, 5, 1, tzinfo=UTC)
    db.commit()
    gone = client.delete(f"/api/events/{event.id}/links/{body['id']}", headers=admin)
    assert gone.status_code == 204
    assert client.get(f"/api/events/{event.id}/links", headers=admin).json() == []
    # Still chosen on the connection, feeding nothing; its stream starts over when linked.
    [kept] = client.get(f"/api/connections/{connection.id}/links", headers=admin).json()
    assert kept["id"] == body["id"] and kept["eventId"] is None and kept["linkedAt"] is None
    assert kept["cursor"] is None and kept["lastSuccessAt"] is None
    assert client.get(f"/api/connections/{connection.id}", headers=admin).json()[
        "eventIds"] == ["100:1"]

    [made] = audit_entries(db, "link.create")
    assert made.after is not None and made.after["providerEventRef"] == "100:1"
    assert made.after["event"] == "Spring 10K"
    [changed] = audit_entries(db, "link.update")
    assert changed.before == {"providerEventName": "Spring 10K (RunSignUp)", "autoSync": True}
    assert changed.after == {"providerEventName": "10K", "autoSync": False}
    [unlinked] = audit_entries(db, "link.delete")
    assert unlinked.before is not None and unlinked.before["eventId"] == str(event.id)


def test_one_event_takes_several_provider_events_but_a_provider_event_feeds_one(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    rsu = make_connection(db, ctx, keyring, name="RSU")
    second = make_connection(db, ctx, keyring, name="RSU B")
    race_day, other = make_event(db, tenant, name="Race day"), make_event(db, tenant, name="Other")
    db.commit()
    for connection, ref in ((rsu, "1"), (rsu, "2"), (second, "1")):
        response = client.post(f"/api/events/{race_day.id}/links", headers=admin, json={
            "connectionId": str(connection.id), "providerEventRef": ref})
        assert response.status_code == 201, response.text
    assert len(client.get(f"/api/events/{race_day.id}/links", headers=admin).json()) == 3

    taken = client.post(f"/api/events/{other.id}/links", headers=admin, json={
        "connectionId": str(rsu.id), "providerEventRef": "1"})
    assert taken.status_code == 409
    assert taken.json()["detail"] == (
        "provider event '1' of connection 'RSU' already feeds event 'Race day': a provider "
        "event feeds one event per connection; unlink it there first")
    assert taken.json()["errors"][0]["field"] == "providerEventRef"
    again = client.post(f"/api/events/{race_day.id}/links", headers=admin, json={
        "connectionId": str(rsu.id), "providerEventRef": "1"})
    assert again.status_code == 409
    assert "is already linked to this event" in again.json()["detail"]


def test_a_provider_event_synced_into_one_event_is_not_relinked_to_another(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    rsu = make_connection(db, ctx, keyring, name="RSU")
    race_day, other = make_event(db, tenant, name="Race day"), make_event(db, tenant, name="Other")
    fed = link(db, ctx, race_day, rsu, "1")
    make_synced_record(db, make_participant(db, race_day), link_id=fed.id)
    links.unlink(db, ctx, event_id=race_day.id, link_id=fed.id)
    db.commit()

    moved = client.post(f"/api/events/{other.id}/links", headers=admin, json={
        "connectionId": str(rsu.id), "providerEventRef": "1"})

    assert moved.status_code == 409
    assert moved.json()["detail"] == (
        "provider event '1' of connection 'RSU' was synced into event 'Race day' (1 "
        "registration(s)): its registrations are that event's entries; link it to that "
        "event again")
    back = client.post(f"/api/events/{race_day.id}/links", headers=admin, json={
        "connectionId": str(rsu.id), "providerEventRef": "1"})
    assert back.status_code == 201, back.text


def test_unlinking_waits_for_the_links_active_run(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    event = make_event(db, tenant)
    row = link(db, ctx, event, make_connection(db, ctx, keyring), "7")
    run = start_run(db, row, SyncStatus.RUNNING)
    db.commit()
    url = f"/api/events/{event.id}/links/{row.id}"

    assert client.get(f"/api/events/{event.id}/links", headers=admin).json()[0]["syncing"]
    refused = client.delete(url, headers=admin)
    assert refused.status_code == 409
    assert refused.json()["detail"] == (f"provider event '7' is syncing (run {run.id} is "
                                        "running): unlink it once the run has ended")
    db.expire_all()
    assert db.get(EventLink, row.id).event_id == event.id  # type: ignore[union-attr]

    for status in (SyncStatus.QUEUED, SyncStatus.RETRYING):
        run.status = status
        db.commit()
        assert client.delete(url, headers=admin).status_code == 409
    run.status = SyncStatus.SUCCEEDED
    db.commit()
    assert client.delete(url, headers=admin).status_code == 204


def test_a_timing_connection_links_a_race_that_feeds_no_participants(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    scoring = make_connection(db, ctx, keyring, name="Timer", provider="COPERNICO",
                              event_ids=["R1:E1"])
    registration = make_connection(db, ctx, keyring)
    event = make_event(db, tenant)
    db.commit()
    # A Copernico registration names its race and event: a bare race id is refused.
    refused = client.post(f"/api/events/{event.id}/links", headers=admin, json={
        "connectionId": str(scoring.id), "providerEventRef": "R1"})
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "providerEventRef: Copernico event ref must be 'raceId:eventId', got 'R1'")
    linked = client.post(f"/api/events/{event.id}/links", headers=admin, json={
        "connectionId": str(scoring.id), "providerEventRef": "R1:E1"})
    assert linked.status_code == 201, linked.text
    body = linked.json()
    assert body["participantSource"] is False and body["eventId"] == str(event.id)
    # Not planned by the participant cadence: a timing link's schedule is its results
    # pulls while the event is live, and this one (June 2026) is over.
    row = db.get(EventLink, uuid.UUID(body["id"]))
    assert row is not None and row.next_run_at is None
    # It feeds no participants: a participant sync of the connection is refused.
    sync = client.post("/api/sync/manual", headers=admin, json={
        "connectionId": str(scoring.id), "syncType": "participants"})
    assert sync.status_code == 422
    assert sync.json()["detail"].startswith("connectionId: 'Timer' is a scoring connection")
    # A registration connection linked to an event stays one (and a timing one: below).
    link(db, ctx, event, registration, "9")
    with pytest.raises(Conflict, match="direction: 'RSU' feeds participants into 1 event"):
        service.update_connection(db, ctx, keyring=keyring, connection_id=registration.id,
                                  data=ConnectionUpdate(direction=Direction.SCORING))


def test_a_chronotrack_start_list_goes_to_one_race(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    scoring = make_connection(db, ctx, keyring, name="CT", provider="CHRONOTRACK")
    event = make_event(db, tenant)
    db.commit()
    refused = client.post(f"/api/events/{event.id}/links", headers=admin, json={
        "connectionId": str(scoring.id), "providerEventRef": "5001"})
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "providerEventRef: a ChronoTrack start list goes to one race: use "
        "'event_id:race_id', not '5001'")
    assert client.post(f"/api/events/{event.id}/links", headers=admin, json={
        "connectionId": str(scoring.id), "providerEventRef": "5001:77"}).status_code == 201
    # ChronoTrack could feed participants too, but not while it times an event.
    with pytest.raises(Conflict, match=r"direction: 'CT' times 1 event\(s\); unlink"):
        service.update_connection(db, ctx, keyring=keyring, connection_id=scoring.id,
                                  data=ConnectionUpdate(direction=Direction.REGISTRATION))


def test_check_provider_accepts_only_a_listed_event_and_takes_its_name(
    db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make_connection(db, ctx, keyring)
    event = make_event(db, tenant)
    listed = {"100:1": "Spring Run · 10K"}
    with pytest.raises(Invalid, match="providerEventRef: '100:2' is not among the events 'RSU' "
                                      "lists"):
        links.create_link(db, ctx, event_id=event.id, listed=listed, data=LinkCreate(
            connection_id=connection.id, provider_event_ref="100:2"))
    made = links.create_link(db, ctx, event_id=event.id, listed=listed, data=LinkCreate(
        connection_id=connection.id, provider_event_ref="100:1"))
    assert made.provider_event_name == "Spring Run · 10K"


def test_the_provider_is_asked_for_its_events_when_checkProvider_is_set(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    # Nobody listens on port 9: the provider's answer (422, scrubbed) comes back, nothing
    # is linked.
    connection = make_connection(db, ctx, keyring)
    connection.base_url = "http://127.0.0.1:9/Rest"
    connection.settings = {"max_attempts": 1}
    event = make_event(db, tenant)
    db.commit()
    response = client.post(f"/api/events/{event.id}/links", headers=admin, json={
        "connectionId": str(connection.id), "providerEventRef": "1", "checkProvider": True})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("the provider's events could not be read")
    assert RSU_SECRET not in response.text
    assert db.scalars(select(EventLink).where(EventLink.connection_id == connection.id)).all() == []


# --- tenants and roles ---------------------------------------------------------------------


def test_another_tenants_links_events_and_connections_are_not_found(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    mine = make_event(db, tenant)
    my_connection = make_connection(db, ctx, keyring)
    other_tenant = make_tenant(db)
    other_ctx = system_ctx(other_tenant)
    theirs = make_event(db, other_tenant)
    their_connection = make_connection(db, other_ctx, keyring)
    their_link = link(db, other_ctx, theirs, their_connection, "1")
    db.commit()

    assert client.get(f"/api/events/{theirs.id}/links", headers=admin).status_code == 404
    assert client.get(f"/api/connections/{their_connection.id}/links",
                      headers=admin).status_code == 404
    for method, url, json in (
            ("PATCH", f"/api/events/{mine.id}/links/{their_link.id}", {"autoSync": False}),
            ("DELETE", f"/api/events/{mine.id}/links/{their_link.id}", None),
            ("GET", f"/api/events/{mine.id}/links/{their_link.id}/categories", None),
            ("PUT", f"/api/events/{mine.id}/links/{their_link.id}/categories",
             {"categories": []}),
            ("POST", f"/api/events/{mine.id}/links",
             {"connectionId": str(their_connection.id), "providerEventRef": "1"}),
            ("POST", f"/api/events/{theirs.id}/links",
             {"connectionId": str(my_connection.id), "providerEventRef": "1"})):
        response = client.request(method, url, json=json, headers=admin)
        assert response.status_code == 404, (method, url, response.text)
    db.expire_all()
    assert db.get(EventLink, their_link.id).auto_sync is True  # type: ignore[union-attr]
    assert db.get(EventLink, their_link.id).event_id == theirs.id  # type: ignore[union-attr]
    assert links.list_connection_links(db, ctx, connection_id=my_connection.id) == []


def test_a_link_is_addressed_only_under_the_event_it_feeds(
    db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring
) -> None:
    event, other = make_event(db, tenant), make_event(db, tenant)
    row = link(db, ctx, event, make_connection(db, ctx, keyring), "1")
    with pytest.raises(NotFound, match="link not found"):
        links.unlink(db, ctx, event_id=other.id, link_id=row.id)
    with pytest.raises(NotFound, match="link not found"):
        links.list_category_links(db, ctx, event_id=other.id, link_id=row.id)


@pytest.mark.parametrize(("role", "may_link", "may_read_connection"), [
    (Role.VIEWER, False, False), (Role.RESULTS_OFFICER, False, False),
    (Role.EVENT_MANAGER, True, True), (Role.TENANT_ADMIN, True, True)])
def test_everyone_reads_an_events_links_and_event_managers_link(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    role: Role, may_link: bool, may_read_connection: bool,
) -> None:
    connection = make_connection(db, ctx, keyring)
    event = make_event(db, tenant)
    headers = auth(db, tenant, role)
    db.commit()
    assert client.get(f"/api/events/{event.id}/links", headers=headers).status_code == 200
    read = client.get(f"/api/connections/{connection.id}/links", headers=headers)
    assert read.status_code == (200 if may_read_connection else 403)
    response = client.post(f"/api/events/{event.id}/links", headers=headers, json={
        "connectionId": str(connection.id), "providerEventRef": "1"})
    assert response.status_code == (201 if may_link else 403), response.text
    if not may_link:
        assert "sync:link:manage" in response.text


# --- category links --------------------------------------------------------------------------


def test_provider_races_seen_are_mapped_to_categories_of_the_event(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    event = make_event(db, tenant)
    ten, half = make_category(db, event, "10K"), make_category(db, event, "Half")
    elsewhere = make_category(db, make_event(db, tenant), "5K")
    row = link(db, ctx, event, make_connection(db, ctx, keyring), "1")
    links.record_seen_categories(db, ctx, link_id=row.id, seen={"r10": "10 km", "r21": None})
    db.commit()
    url = f"/api/events/{event.id}/links/{row.id}/categories"

    seen = client.get(url, headers=admin).json()
    assert [(c["providerRef"], c["providerName"], c["categoryId"]) for c in seen] == [
        ("r10", "10 km", None), ("r21", None, None)]
    mapped = client.put(url, headers=admin, json={"categories": [
        {"providerRef": "r10", "categoryId": str(ten.id)},
        {"providerRef": "r42", "providerName": "Marathon", "categoryId": None}]})
    assert mapped.status_code == 200, mapped.text
    assert [(c["providerRef"], c["categoryName"]) for c in mapped.json()] == [
        ("r10", "10K"), ("r42", None), ("r21", None)]  # named first, by name
    # A later run keeps the mapping and refreshes the name; an unnamed sighting keeps it.
    links.record_seen_categories(db, ctx, link_id=row.id, seen={"r10": "10 km road",
                                                                  "r42": None})
    db.commit()
    again = {c["providerRef"]: c for c in client.get(url, headers=admin).json()}
    assert again["r10"]["categoryId"] == str(ten.id)
    assert again["r10"]["providerName"] == "10 km road"
    assert again["r42"]["providerName"] == "Marathon"

    foreign = client.put(url, headers=admin, json={"categories": [
        {"providerRef": "r21", "categoryId": str(elsewhere.id)}]})
    assert foreign.status_code == 404
    assert foreign.json()["errors"][0]["field"] == "categories.0.categoryId"
    twice = client.put(url, headers=admin, json={"categories": [
        {"providerRef": "r21", "categoryId": str(half.id)},
        {"providerRef": "r21", "categoryId": None}]})
    assert twice.status_code == 422 and "provider race 'r21' is given twice" in twice.text

    [entry] = audit_entries(db, "link.categories")
    assert entry.before == {"categories": {"r10": None, "r42": None}}
    assert entry.after == {"categories": {"r10": str(ten.id), "r42": None}}

    assert client.delete(f"/api/events/{event.id}/links/{row.id}", headers=admin
                         ).status_code == 204
    # Unlinked, its races name no category of an event it no longer feeds.
    db.expire_all()
    assert {c.category_id for c in db.scalars(
        select(CategoryLink).where(CategoryLink.link_id == row.id))} == {None}


# --- the connection's eventIds, now rows ---------------------------------------------------


def test_event_ids_read_and_write_the_connections_link_rows(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring,
    admin: dict[str, str],
) -> None:
    created = client.post("/api/connections", headers=admin, json={
        "provider": "RUNSIGNUP", "name": "RSU",
        "credentials": {"api_key": RSU_KEY, "api_secret": RSU_SECRET},
        "eventIds": ["1", "2", "2"]})
    assert created.status_code == 201, created.text
    connection_id = created.json()["id"]
    assert created.json()["eventIds"] == ["1", "2"]
    connection = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert connection is not None and "eventIds" not in connection.settings
    event = make_event(db, tenant)
    link(db, ctx, event, connection, "1")
    db.commit()

    # A new ref becomes an unlinked row; an unlinked ref left out goes; a linked one stays.
    patched = client.patch(f"/api/connections/{connection_id}", headers=admin,
                           json={"eventIds": ["1", "3"]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["eventIds"] == ["1", "3"]
    rows = {r["providerEventRef"]: r["eventId"] for r in client.get(
        f"/api/connections/{connection_id}/links", headers=admin).json()}
    assert rows == {"1": str(event.id), "3": None}
    refused = client.patch(f"/api/connections/{connection_id}", headers=admin,
                           json={"eventIds": ["3"]})
    assert refused.status_code == 409
    assert refused.json()["detail"] == ("eventIds: provider event '1' feeds a racehub event; "
                                        "unlink it before leaving it out")
    # Other changes leave the chosen events alone.
    renamed = client.patch(f"/api/connections/{connection_id}", headers=admin,
                           json={"name": "RSU 2", "settings": {"time_zone": "Europe/Paris"}})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["eventIds"] == ["1", "3"]

    update = audit_entries(db, "connection.update")[0]
    assert update.before == {"eventIds": ["1", "2"]}
    assert update.after == {"eventIds": ["1", "3"]}
    # The adapters read the rows as their eventIds setting.
    db.expire_all()
    connection = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert connection is not None
    adapter = build_adapter(connection, {"api_key": RSU_KEY, "api_secret": RSU_SECRET})
    assert adapter.settings.eventIds == ["1", "3"]
    assert str(adapter.settings.time_zone) == "Europe/Paris"


def test_the_sample_and_the_event_picker_fall_back_on_the_chosen_rows(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make_connection(db, ctx, keyring, event_ids=["55:1"])
    factory = fake_factory(records=[{"first_name": "Ada"}])
    service.fetch_sample(db, ctx, keyring=keyring, connection_id=connection.id, event_id=None,
                         adapter_factory=factory)
    assert factory.made[0].calls == ["participants:55:1"]


def test_a_tenant_cannot_choose_events_on_another_tenants_connection(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    other_ctx = system_ctx(make_tenant(db))
    theirs = make_connection(db, other_ctx, keyring, event_ids=["1"])
    with pytest.raises(NotFound):
        service.update_connection(db, ctx, keyring=keyring, connection_id=theirs.id,
                                  data=ConnectionUpdate(event_ids=[]))
    assert links.chosen_refs(db, theirs) == ["1"]
