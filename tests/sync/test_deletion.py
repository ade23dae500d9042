"""Deleting a connection says what goes with it (its provider events, their cursors and
category mappings) and what stays (the runs' history, the synced records), and is refused
while one of its provider events is syncing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.events.models import Event
from racehub.sync import service
from racehub.sync.exceptions import ConnectionSyncing
from racehub.sync.models import (
    CategoryLink,
    EventLink,
    ProviderConnection,
    SyncRun,
    SyncStatus,
)
from tests.core.conftest import start_browser_session
from tests.factories import auth, make_category, make_user
from tests.sync.conftest import audit_entries, link, make_connection, start_run
from tests.sync.engine_helpers import T0


@pytest.fixture
def connection(db: Session, ctx: TenantContext, keyring: Keyring) -> ProviderConnection:
    return make_connection(db, ctx, keyring, event_ids=["100:1", "100:2"])


@pytest.fixture
def linked(db: Session, ctx: TenantContext, event: Event,
           connection: ProviderConnection) -> EventLink:
    """One of the connection's two provider events, linked, synced once, its race mapped."""
    row = link(db, ctx, event, connection, "100:1")
    row.cursor, row.last_success_at = T0, T0
    db.add(CategoryLink(tenant_id=row.tenant_id, link_id=row.id, provider_ref="100:1",
                        category_id=make_category(db, event, name="5K").id))
    db.flush()
    return row


def test_a_deletion_lists_the_links_it_takes_and_keeps_the_runs_history(
    db: Session, ctx: TenantContext, event: Event, connection: ProviderConnection,
    linked: EventLink,
) -> None:
    run = start_run(db, linked, SyncStatus.SUCCEEDED)
    before = service.deletion_of(db, ctx, connection_id=connection.id)

    gone = service.delete_connection(db, ctx, connection_id=connection.id)

    assert gone == before
    assert (len(gone.links), gone.linked_events, gone.category_links, gone.runs_kept) == (
        2, 1, 1, 1)
    assert gone.links[0] == {"providerEventRef": "100:1", "providerEventName": None,
                             "eventId": str(event.id), "cursor": T0.isoformat(),
                             "lastSuccessAt": T0.isoformat()}
    assert gone.links[1]["providerEventRef"] == "100:2" and gone.links[1]["eventId"] is None
    assert "2 provider event(s), 1 of them linked" in gone.summary()
    db.expire_all()
    assert db.scalars(select(EventLink)).all() == []
    kept = db.get_one(SyncRun, run.id)  # the history stays, without its connection and link
    assert (kept.connection_id, kept.link_id, kept.event_id) == (None, None, event.id)
    [entry] = audit_entries(db, "connection.delete")
    assert entry.after is not None
    assert entry.after["links"] == gone.links and entry.after["runsKept"] == 1
    assert entry.after["credentials"] == "deleted"


@pytest.mark.parametrize("status", [SyncStatus.QUEUED, SyncStatus.RUNNING,
                                    SyncStatus.RETRYING])
def test_a_connection_whose_provider_event_is_syncing_is_not_deleted(
    db: Session, ctx: TenantContext, connection: ProviderConnection, linked: EventLink,
    status: SyncStatus,
) -> None:
    run = start_run(db, linked, status)

    with pytest.raises(ConnectionSyncing) as refused:
        service.delete_connection(db, ctx, connection_id=connection.id)

    assert "'100:1'" in refused.value.detail and str(run.id) in refused.value.detail
    assert db.get(ProviderConnection, connection.id) is not None
    assert audit_entries(db, "connection.delete") == []
    # Once the run has ended, it goes.
    db.execute(update(SyncRun).where(SyncRun.id == run.id)
               .values(status=SyncStatus.SUCCEEDED))
    assert len(service.delete_connection(db, ctx, connection_id=connection.id).links) == 2


def test_the_api_answers_what_a_deletion_took_and_409_while_syncing(
    client: TestClient, db: Session, tenant: Tenant, connection: ProviderConnection,
    linked: EventLink,
) -> None:
    headers = auth(db, tenant, Role.TENANT_ADMIN)
    run = start_run(db, linked, SyncStatus.RUNNING)

    refused = client.delete(f"/api/connections/{connection.id}", headers=headers)
    run.status = SyncStatus.FAILED
    db.flush()
    deleted = client.delete(f"/api/connections/{connection.id}", headers=headers)

    assert refused.status_code == 409, refused.text
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert [link["providerEventRef"] for link in body["links"]] == ["100:1", "100:2"]
    assert (body["linkedEvents"], body["categoryLinks"], body["runsKept"]) == (1, 1, 1)
    assert body["links"][0]["cursor"] is not None


def test_the_connection_page_says_what_a_deletion_takes_before_and_after(
    client: TestClient, db: Session, tenant: Tenant, connection: ProviderConnection,
    linked: EventLink,
) -> None:
    csrf = start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    db.commit()

    page = client.get(f"/connections/{connection.id}").text
    deleted = client.post(f"/connections/{connection.id}/delete",
                          data={"csrf_token": csrf}, follow_redirects=False)

    assert "2 provider event(s), 1 of them linked to a racehub event" in page
    assert deleted.status_code == 303
    assert "2+provider+event" in deleted.headers["location"]
