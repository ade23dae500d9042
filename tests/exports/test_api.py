"""The exports API: start, poll, download, list, cancel, retry; rights and tenancy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.models import AuditEntry, Role, Tenant
from racehub.events.models import Event
from racehub.exports.models import Export
from racehub.settings import Settings
from racehub.timing import results
from racehub.timing.models import Result, ResultStatus
from tests.exports.conftest import RunExport, csv_rows
from tests.factories import (
    auth,
    make_category,
    make_event,
    make_participant,
    make_tenant,
    system_ctx,
)


def start(client: TestClient, headers: dict[str, str], event: Event, **body: object):  # type: ignore[no-untyped-def]
    payload = {"view": "participants", "filters": {"eventId": str(event.id)}, **body}
    return client.post("/api/exports", json=payload, headers=headers)


def test_export_goes_from_queued_to_a_downloadable_csv(
    client: TestClient, db: Session, tenant: Tenant, event: Event, run_export: RunExport
) -> None:
    headers = auth(db, tenant, Role.EVENT_MANAGER)
    for name in ("Curie", "Bohr", "Abel"):
        make_participant(db, event, first_name="X", last_name=name)

    created = start(client, headers, event, columns=["last_name", "first_name"])

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["status"], body["stage"], body["percent"]) == ("queued", "Queued", 0.0)
    assert body["downloadUrl"] is None
    assert body["columnLabels"] == ["Last name", "First name"]
    assert body["listUrl"] == f"/events/{event.id}?sort=last_name"
    not_ready = client.get(f"/api/exports/{body['id']}/download", headers=headers)
    assert not_ready.status_code == 409
    assert "no file yet: it is queued (Queued, 0%)" in not_ready.json()["detail"]

    run_export(db.get(Export, uuid.UUID(body["id"])))
    done = client.get(f"/api/exports/{body['id']}", headers=headers).json()
    assert (done["status"], done["stage"], done["percent"]) == ("completed", "Completed", 100.0)
    assert (done["rowsTotal"], done["rowsDone"], done["rowCount"]) == (3, 3, 3)
    download = client.get(done["downloadUrl"], headers=headers)
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert f'filename="{done["filename"]}"' in download.headers["content-disposition"]
    assert csv_rows(download.content) == [["Last name", "First name"], ["Abel", "X"],
                                          ["Bohr", "X"], ["Curie", "X"]]
    actions = db.scalars(select(AuditEntry.action).where(
        AuditEntry.target_id == body["id"]).order_by(AuditEntry.id)).all()
    assert actions == ["export.create", "export.download"]


def test_my_exports_lists_only_the_callers_own(
    client: TestClient, db: Session, tenant: Tenant, event: Event
) -> None:
    mine, theirs = auth(db, tenant, Role.EVENT_MANAGER), auth(db, tenant, Role.TENANT_ADMIN)
    first = start(client, mine, event).json()["id"]
    start(client, theirs, event)
    second = start(client, mine, event, format="xlsx").json()["id"]

    listed = client.get("/api/exports", headers=mine).json()

    assert [e["id"] for e in listed] == [second, first]
    assert [e["id"] for e in client.get("/api/exports?active=1", headers=mine).json()] == [
        second, first]


def test_views_list_only_those_the_caller_may_read(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    officer = client.get("/api/exports/views", headers=auth(db, tenant, Role.RESULTS_OFFICER))
    manager = client.get("/api/exports/views", headers=auth(db, tenant, Role.EVENT_MANAGER))
    admin = client.get("/api/exports/views", headers=auth(db, tenant, Role.TENANT_ADMIN))
    assert [v["key"] for v in officer.json()] == ["participants", "race_numbers", "imports",
                                                  "results", "sync_runs"]
    assert [v["key"] for v in manager.json()] == ["participants", "race_numbers", "imports",
                                                  "results", "webhook_deliveries", "sync_runs"]
    assert [v["key"] for v in admin.json()] == ["participants", "race_numbers", "imports",
                                                "audit", "results", "webhook_deliveries",
                                                "sync_runs"]
    participants = admin.json()[0]
    assert participants["filters"] == ["eventId", "q", "status", "categoryId"]
    assert participants["sorts"][0] == "last_name"
    assert {"key": "bib", "label": "Bib", "default": True} in participants["columns"]


def test_a_view_without_its_read_permission_is_refused(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    response = client.post("/api/exports", json={"view": "audit"},
                           headers=auth(db, tenant, Role.RESULTS_OFFICER))
    assert response.status_code == 403
    assert "'core:audit:read' permission" in response.json()["detail"]
    viewer = client.post("/api/exports", json={"view": "audit"},
                         headers=auth(db, tenant, Role.VIEWER))
    assert viewer.status_code == 403
    assert "'exports:export:run' permission" in viewer.json()["detail"]


def test_another_tenants_export_is_not_found_and_its_event_not_exportable(
    client: TestClient, db: Session, tenant: Tenant, event: Event
) -> None:
    other = make_tenant(db)
    other_headers = auth(db, other, Role.TENANT_ADMIN)
    export_id = start(client, auth(db, tenant), event).json()["id"]

    for method, path in [("GET", f"/api/exports/{export_id}"),
                         ("GET", f"/api/exports/{export_id}/download"),
                         ("POST", f"/api/exports/{export_id}/cancel"),
                         ("POST", f"/api/exports/{export_id}/retry")]:
        response = client.request(method, path, headers=other_headers)
        assert response.status_code == 404, (path, response.text)
    assert start(client, other_headers, event).status_code == 404
    assert client.get("/api/exports", headers=other_headers).json() == []


def test_bad_filters_are_refused_naming_the_field(
    client: TestClient, db: Session, tenant: Tenant, event: Event
) -> None:
    response = start(client, auth(db, tenant), event, filters={"eventId": str(event.id),
                                                               "status": "asleep"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "filters.status"
    assert problem["detail"].startswith("filters.status: Input should be 'active' or")


def test_cancel_then_retry_makes_a_new_export_of_the_same_list(
    client: TestClient, db: Session, tenant: Tenant, event: Event, run_export: RunExport
) -> None:
    headers = auth(db, tenant)
    make_participant(db, event, last_name="Only")
    first = start(client, headers, event, sort="bib", descending=True,
                  columns=["bib", "last_name"]).json()

    cancelled = client.post(f"/api/exports/{first['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["stage"]) == ("cancelled",
                                                                       "Cancelled")
    again = client.post(f"/api/exports/{first['id']}/cancel", headers=headers)
    assert again.status_code == 409

    retried = client.post(f"/api/exports/{first['id']}/retry", headers=headers)
    assert retried.status_code == 201
    new = retried.json()
    assert new["id"] != first["id"] and new["retryOfId"] == first["id"]
    assert (new["sort"], new["descending"], new["columns"], new["filters"]) == (
        "bib", True, ["bib", "last_name"], first["filters"])
    run_export(db.get(Export, uuid.UUID(new["id"])))
    assert client.get(f"/api/exports/{new['id']}", headers=headers).json()["rowCount"] == 1
    refused = client.post(f"/api/exports/{new['id']}/retry", headers=headers)
    assert refused.status_code == 409
    assert "this one is completed" in refused.json()["detail"]


def test_an_expired_export_answers_410_saying_so(
    client: TestClient, db: Session, tenant: Tenant, event: Event, run_export: RunExport,
    settings: Settings
) -> None:
    headers = auth(db, tenant)
    exp = run_export(db.get(Export, uuid.UUID(start(client, headers, event).json()["id"])))
    exp.expires_at = datetime.now(UTC) - timedelta(hours=1)
    db.flush()

    response = client.get(f"/api/exports/{exp.id}/download", headers=headers)

    assert response.status_code == 410
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Export expired"
    assert "This export expired on" in response.json()["detail"]
    assert client.get(f"/api/exports/{exp.id}", headers=headers).json()["status"] == "expired"


def test_a_results_officer_exports_participants_titled_by_their_event(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    second = make_event(db, tenant, name="Night Run")
    response = start(client, auth(db, tenant, Role.RESULTS_OFFICER), second)
    assert response.status_code == 201
    assert response.json()["title"] == "Participants — Night Run"


def test_results_export_in_ranking_order_with_the_pages_filters(
    client: TestClient, db: Session, tenant: Tenant, event: Event, run_export: RunExport
) -> None:
    ten_k, five_k = make_category(db, event, "10K"), make_category(db, event, "5K")
    runners = [  # last name, category, chip ms, status
        ("Abel", ten_k, 2_401_500, ResultStatus.FINISHED),
        ("Bohr", ten_k, 2_300_000, ResultStatus.FINISHED),
        ("Curie", five_k, 1_500_250, ResultStatus.FINISHED),
        ("Dirac", ten_k, None, ResultStatus.DNF),
    ]
    for name, category, chip_ms, status in runners:
        ep = make_participant(db, event, last_name=name, category_id=category.id,
                              bib=str(len(name) * 10 + ord(name[0])))
        db.add(Result(tenant_id=tenant.id, event_id=event.id, event_participant_id=ep.id,
                      status=status, chip_ms=chip_ms, gun_ms=chip_ms))
    db.flush()
    results.recompute_places(db, system_ctx(tenant), event_id=event.id)
    headers = auth(db, tenant, Role.RESULTS_OFFICER)

    def export(filters: dict[str, str]) -> list[list[str]]:
        created = client.post("/api/exports", headers=headers, json={
            "view": "results", "filters": {"eventId": str(event.id), **filters},
            "columns": ["overall_place", "last_name", "category", "chip_time", "status",
                        "category_place"]})
        assert created.status_code == 201, created.text
        run_export(db.get(Export, uuid.UUID(created.json()["id"])))
        done = client.get(f"/api/exports/{created.json()['id']}", headers=headers).json()
        return csv_rows(client.get(done["downloadUrl"], headers=headers).content)

    assert export({}) == [
        ["Place", "Last name", "Category", "Chip time", "Status", "Category place"],
        ["1", "Curie", "5K", "0:25:00.250", "finished", "1"],
        ["2", "Bohr", "10K", "0:38:20", "finished", "1"],
        ["3", "Abel", "10K", "0:40:01.500", "finished", "2"],
        ["", "Dirac", "10K", "", "DNF", ""],
    ]
    # Within a category the ranking is the category's, as on the page.
    assert [r[1] for r in export({"categoryId": str(ten_k.id)})[1:]] == [
        "Bohr", "Abel", "Dirac"]
    created = client.post("/api/exports", headers=headers, json={
        "view": "results", "filters": {"eventId": str(event.id), "gender": "Q"}})
    assert created.status_code == 422 and "gender" in created.text
    # The results page offers the export with its current filters.
    page_headers = auth(db, tenant, Role.RESULTS_OFFICER)
    page = client.get(f"/events/{event.id}/results", params={"category": str(ten_k.id)},
                      headers=page_headers)
    assert "/exports/new?view=results" in page.text
    assert f"filter.categoryId={ten_k.id}" in page.text
