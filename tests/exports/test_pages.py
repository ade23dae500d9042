"""The export pages without a browser: the list pages' Export form, the status page and
"My exports"."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.events.models import Event
from racehub.exports.models import Export
from tests.exports.conftest import RunExport
from tests.factories import auth, make_participant


def test_the_audit_page_form_captures_its_filters_as_the_export_s(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    headers = auth(db, tenant, Role.TENANT_ADMIN)
    page = client.get("/audit?action=event.&since=2026-05-01", headers=headers)
    assert ('href="/exports/new?view=audit&amp;filter.action=event.&amp;'
            'filter.since=2026-05-01"') in page.text
    form = client.get("/exports/new?view=audit&filter.action=event.&filter.since=2026-05-01",
                      headers=headers)
    assert form.status_code == 200
    assert 'name="filter.action" value="event."' in form.text
    assert 'name="filter.since" value="2026-05-01T00:00:00"' in form.text
    assert 'name="columns" value="before" checked' in form.text
    assert 'name="columns" value="id" >' in form.text  # not a default column
    bad = client.get("/exports/new?view=audit&filter.colour=red", headers=headers)
    assert bad.status_code == 422 and "has no filter" in bad.text

    response = client.post("/exports", headers=headers, follow_redirects=False, data={
        "view": "audit", "filter.action": "event.", "filter.since": "2026-05-01",
        "filter.until": "", "columns": ["at", "action"], "format": "xlsx"})

    assert response.status_code == 303
    export_id = uuid.UUID(response.headers["location"].rsplit("/", 1)[1])
    exp = db.get(Export, export_id)
    assert exp is not None
    assert exp.filters == {"action": "event.", "since": "2026-05-01T00:00:00"}
    assert (exp.columns, exp.file_format, exp.sort, exp.descending) == (
        ["at", "action"], "xlsx", "id", True)


def test_status_page_shows_progress_then_the_download_and_my_exports_lists_it(
    client: TestClient, db: Session, tenant: Tenant, event: Event, run_export: RunExport
) -> None:
    headers = auth(db, tenant, Role.EVENT_MANAGER)
    make_participant(db, event, last_name="Ride")
    page = client.get(f"/events/{event.id}?sort=bib&desc=1", headers=headers)
    assert (f'href="/exports/new?view=participants&amp;filter.eventId={event.id}&amp;'
            'sort=bib&amp;desc=1"') in page.text
    created = client.post("/exports", headers=headers, follow_redirects=False, data={
        "view": "participants", "filter.eventId": str(event.id), "sort": "bib", "desc": "1",
        "columns": ["bib", "last_name"]})
    status_url = created.headers["location"]

    queued = client.get(status_url, headers=headers)
    assert 'data-export-state="queued"' in queued.text
    assert 'hx-trigger="every 1s"' in queued.text  # polls while it runs
    assert "Back to the list" in queued.text
    assert f'href="/events/{event.id}?sort=bib&amp;desc=1"' in queued.text

    exp = db.scalar(select(Export).where(Export.tenant_id == tenant.id))
    assert exp is not None
    run_export(exp)
    done = client.get(status_url, headers={**headers, "HX-Request": "true"})
    assert 'data-export-state="completed"' in done.text
    assert "every 1s" not in done.text
    assert f'href="/api/exports/{exp.id}/download"' in done.text
    listed = client.get("/exports", headers=headers)
    assert f'data-export-id="{exp.id}"' in listed.text
    assert "Participants — " in listed.text


def test_list_pages_show_the_export_button_only_to_those_who_may_export(
    client: TestClient, db: Session, tenant: Tenant, event: Event
) -> None:
    manager, viewer = auth(db, tenant, Role.EVENT_MANAGER), auth(db, tenant, Role.VIEWER)
    for path, view in [(f"/events/{event.id}", "participants"),
                       ("/inventory/numbers", "race_numbers")]:
        assert f'data-export-menu="{view}"' in client.get(path, headers=manager).text
        assert "data-export-menu" not in client.get(path, headers=viewer).text
    # The audit log needs its own permission on top of exporting.
    assert client.get("/audit", headers=auth(db, tenant, Role.TENANT_ADMIN)).status_code == 200
    assert 'href="/exports"' in client.get("/events", headers=manager).text
    assert 'href="/exports"' not in client.get("/events", headers=viewer).text


def test_an_export_with_every_column_unticked_is_refused_on_its_form(
    client: TestClient, db: Session, tenant: Tenant, event: Event
) -> None:
    headers = auth(db, tenant, Role.EVENT_MANAGER)
    refused = client.post("/exports", headers=headers, follow_redirects=False, data={
        "view": "participants", "filter.eventId": str(event.id), "sort": "bib",
        "format": "csv"})

    assert refused.status_code == 422
    assert "choose at least one column to export" in refused.text
    assert 'aria-describedby="columns-problem"' in refused.text
    assert 'name="columns" value="bib" checked' not in refused.text  # as the operator left it
    assert f'name="filter.eventId" value="{event.id}"' in refused.text
    assert db.scalar(select(Export).where(Export.tenant_id == tenant.id)) is None
    api = client.post("/api/exports", headers=headers, json={
        "view": "participants", "filters": {"eventId": str(event.id)}, "columns": []})
    assert api.status_code == 422 and api.json()["errors"][0]["field"] == "columns"
