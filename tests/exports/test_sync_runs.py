"""The sync runs export: the filters of GET /api/sync/runs, newest first, scoped to the
tenant, and runs whose connection was deleted kept with their provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import keyring_from_settings
from racehub.core.exceptions import Invalid
from racehub.core.models import Role, Tenant
from racehub.events.models import Event
from racehub.exports import service
from racehub.exports.models import Export
from racehub.exports.schemas import ExportCreate
from racehub.exports.views import get_view
from racehub.settings import Settings
from racehub.sync import service as sync_service
from racehub.sync.exceptions import ConnectionNotFound
from racehub.sync.models import EventLink, SyncRun, SyncStatus
from tests.core.conftest import start_browser_session
from tests.exports.conftest import RunExport, csv_rows, stored_bytes
from tests.factories import make_tenant, make_user, system_ctx
from tests.sync.engine_helpers import connect, link

NOW = datetime.now(UTC)


def start(db: Session, ctx: TenantContext, settings: Settings, **data: Any) -> Export:
    exp = service.create_export(db, ctx, settings=settings, data=ExportCreate(**data))
    db.flush()
    return exp


def add_run(db: Session, event_link: EventLink, minutes_ago: int, status: SyncStatus,
            trigger: str = "schedule", **fields: Any) -> SyncRun:
    run = SyncRun(tenant_id=event_link.tenant_id, connection_id=event_link.connection_id,
                  provider=event_link.provider, link_id=event_link.id,
                  event_id=event_link.event_id, sync_type="participants", trigger=trigger,
                  status=status, created_at=NOW - timedelta(minutes=minutes_ago), **fields)
    db.add(run)
    db.flush()
    return run


@pytest.fixture
def runs(db: Session, ctx: TenantContext, settings: Settings, event: Event) -> dict[str, Any]:
    keyring = keyring_from_settings(settings)
    rsu = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest", name="RSU spring")
    other = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest", name="RSU other")
    lake = link(db, rsu, event, "1:2", "Lake Run 10K")
    loose = link(db, other, None, "3:4")
    return {
        "rsu": rsu, "other": other,
        "manual": add_run(db, lake, 30, SyncStatus.SUCCEEDED, trigger="manual",
                          requested_by_label="ada@example.test", fetched=12, created=10,
                          updated=2, started_at=NOW - timedelta(minutes=29),
                          finished_at=NOW - timedelta(minutes=28)),
        "failed": add_run(db, lake, 20, SyncStatus.FAILED, attempts=4,
                          error="RunSignUp: 503 Service Unavailable", retryable=False),
        "loose": add_run(db, loose, 10, SyncStatus.SUCCEEDED),
    }


def test_sync_runs_export_with_the_run_lists_filters_newest_first(
    db: Session, ctx: TenantContext, settings: Settings, run_export: RunExport, event: Event,
    runs: dict[str, Any],
) -> None:
    exp = run_export(start(db, ctx, settings, view="sync_runs",
                           filters={"connectionId": str(runs["rsu"].id)}))
    assert exp.title == "Sync runs — RSU spring"
    rows = csv_rows(stored_bytes(settings, exp))
    assert rows[0] == ["Requested at (UTC)", "Connection", "Provider", "Provider event", "Event",
                       "Sync", "Trigger", "Status", "Requested by", "Started at (UTC)",
                       "Finished at (UTC)", "Fetched", "Created", "Updated", "Unchanged",
                       "Withdrawn", "Conflicts", "Problems", "Error"]
    assert [r[1:9] for r in rows[1:]] == [
        ["RSU spring", "RUNSIGNUP", "1:2", "Lake Run 2026", "participants", "schedule",
         "failed", "system"],
        ["RSU spring", "RUNSIGNUP", "1:2", "Lake Run 2026", "participants", "manual",
         "succeeded", "ada@example.test"],
    ]
    assert rows[1][-1] == "RunSignUp: 503 Service Unavailable"
    assert rows[2][11:14] == ["12", "10", "2"]

    # Each filter of GET /api/sync/runs, alone.
    for filters, expected in [
        ({"status": "failed"}, [runs["failed"]]),
        ({"trigger": "manual"}, [runs["manual"]]),
        ({"eventId": str(event.id)}, [runs["failed"], runs["manual"]]),
        ({}, [runs["loose"], runs["failed"], runs["manual"]]),
    ]:
        exp = run_export(start(db, ctx, settings, view="sync_runs", filters=filters,
                               columns=["id", "status"]))
        assert [r[0] for r in csv_rows(stored_bytes(settings, exp))[1:]] == [
            str(r.id) for r in expected], filters
    with pytest.raises(Invalid, match="filters.status"):
        start(db, ctx, settings, view="sync_runs", filters={"status": "exploded"})


def test_a_run_whose_connection_was_deleted_is_kept_with_its_provider(
    db: Session, ctx: TenantContext, settings: Settings, run_export: RunExport,
    runs: dict[str, Any],
) -> None:
    sync_service.delete_connection(db, ctx, connection_id=runs["other"].id)
    db.flush()
    db.expire_all()
    exp = run_export(start(db, ctx, settings, view="sync_runs", columns=[
        "id", "connection", "provider", "provider_event", "status"]))
    rows = csv_rows(stored_bytes(settings, exp))[1:]
    assert rows[0] == [str(runs["loose"].id), "", "RUNSIGNUP", "", "succeeded"]
    assert len(rows) == 3


def test_another_tenants_runs_are_neither_listed_nor_filterable(
    db: Session, ctx: TenantContext, settings: Settings, run_export: RunExport,
    runs: dict[str, Any],
) -> None:
    stranger = system_ctx(make_tenant(db))
    with pytest.raises(ConnectionNotFound):
        start(db, stranger, settings, view="sync_runs",
              filters={"connectionId": str(runs["rsu"].id)})
    exp = run_export(start(db, stranger, settings, view="sync_runs"))
    assert csv_rows(stored_bytes(settings, exp)) == [csv_rows(stored_bytes(
        settings, run_export(start(db, ctx, settings, view="sync_runs"))))[0]]


def test_the_connection_page_offers_the_export_of_its_runs(
    client: TestClient, db: Session, tenant: Tenant, runs: dict[str, Any]
) -> None:
    start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    page = client.get(f"/connections/{runs['rsu'].id}")
    assert f"/exports/new?view=sync_runs&amp;filter.connectionId={runs['rsu'].id}" in page.text
    form = client.get("/exports/new", params={"view": "sync_runs",
                                              "filter.connectionId": str(runs["rsu"].id)})
    assert form.status_code == 200 and "Sync runs — RSU spring" in form.text


def test_the_export_links_back_to_the_sync_tab_it_was_filtered_like(
    event: Event, runs: dict[str, Any]
) -> None:
    # Through the registry: importing the view's module first would list it first.
    view = get_view("sync_runs")
    flt = view.parse_filters({"connectionId": str(runs["rsu"].id), "status": "failed"})
    assert view.list_url(flt, "created_at", True) == (
        f"/connections/{runs['rsu'].id}/sync?status=failed")
    flt = view.parse_filters({"eventId": str(event.id)})
    assert view.list_url(flt, "created_at", True) == f"/events/{event.id}/sync"
