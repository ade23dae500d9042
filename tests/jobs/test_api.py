"""The jobs JSON API and the job page: reading runs, controlling them, queueing a bib
assignment (202 with the run), and the page with its htmx progress fragment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.events.models import Category, Event
from racehub.events.service import ASSIGN_BIBS_KIND
from racehub.jobs.models import JobRun, JobStatus
from racehub.sync.discovery import DISCOVER_EVENTS_KIND
from tests.factories import auth, make_category, make_event, make_tenant
from tests.jobs.helpers import RECORD_ITEMS_KIND, log_messages, make_run

H = dict[str, str]

JOB_RUN_KEYS = {"id", "kind", "status", "stage", "percent", "done", "total", "counts",
                "message", "error", "log", "params", "requestedByUserId", "requestedByLabel",
                "cancelRequested", "pauseRequested", "attempts", "retries", "retryAt",
                "priority", "createdAt", "startedAt", "finishedAt"}


BASE = datetime(2026, 5, 1, tzinfo=UTC)


def bibs_run(db: Session, tenant: Tenant, category: Category, *, minute: int,
             **fields: Any) -> JobRun:
    return make_run(db, tenant, kind=ASSIGN_BIBS_KIND,
                    created_at=BASE + timedelta(minutes=minute),
                    params={"event_id": str(category.event_id),
                            "category_id": str(category.id), "first_bib": 1},
                    subject_type="category", subject_id=category.id, **fields)


def problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def running(db: Session, tenant: Tenant) -> JobRun:
    return make_run(db, tenant, status=JobStatus.RUNNING, stage="Assigning", done=30, total=120,
                    percent=25.0, counts={"assigned": 30}, message="Assigned 30 bibs")


# --- reading ------------------------------------------------------------------------------


def test_job_list_is_the_tenants_runs_in_camel_case(
    client: TestClient, db: Session, headers: H, tenant: Tenant, running: JobRun
) -> None:
    other = make_tenant(db)
    make_run(db, other)

    response = client.get("/api/jobs", headers=headers)

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items", "nextCursor", "total"}
    (item,) = response.json()["items"]
    assert set(item) == JOB_RUN_KEYS
    assert (item["id"], item["kind"], item["status"], item["stage"]) == (
        str(running.id), ASSIGN_BIBS_KIND, "running", "Assigning")
    assert (item["done"], item["total"], item["percent"], item["counts"]) == (
        30, 120, 25.0, {"assigned": 30})


def listed_ids(client: TestClient, headers: H, **params: str) -> list[str]:
    response = client.get("/api/jobs", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["items"]]


def test_job_list_filters_by_kind_status_event_and_who(
    client: TestClient, db: Session, tenant: Tenant, headers: H,
) -> None:
    event, other_event = make_event(db, tenant), make_event(db, tenant)
    category, other_category = make_category(db, event), make_category(db, other_event)
    mine = bibs_run(db, tenant, category, minute=1, requested_by_label="ada@example.test")
    elsewhere = bibs_run(db, tenant, other_category, minute=2, status=JobStatus.FAILED)
    recorder = make_run(db, tenant, kind=RECORD_ITEMS_KIND, created_at=BASE)

    assert listed_ids(client, headers) == [str(elsewhere.id), str(mine.id), str(recorder.id)]
    assert listed_ids(client, headers, kind=RECORD_ITEMS_KIND) == [str(recorder.id)]
    assert listed_ids(client, headers, status="failed") == [str(elsewhere.id)]
    assert listed_ids(client, headers, eventId=str(event.id)) == [str(mine.id)]
    assert listed_ids(client, headers, who="ADA@example.test") == [str(mine.id)]
    assert listed_ids(client, headers, kind=ASSIGN_BIBS_KIND, status="queued",
                      eventId=str(event.id), who="ada@example.test") == [str(mine.id)]
    assert listed_ids(client, headers, who="nobody@example.test") == []


def test_job_list_pages_by_keyset_keeping_its_filters(
    client: TestClient, db: Session, tenant: Tenant, headers: H,
) -> None:
    category = make_category(db, make_event(db, tenant))
    runs = [bibs_run(db, tenant, category, minute=i) for i in range(5)]
    make_run(db, tenant, kind=RECORD_ITEMS_KIND, created_at=BASE + timedelta(minutes=9))
    newest_first = [str(r.id) for r in reversed(runs)]

    seen: list[str] = []
    params = {"kind": ASSIGN_BIBS_KIND, "limit": "2"}
    pages = 0
    while True:
        body = client.get("/api/jobs", headers=headers, params=params).json()
        seen += [r["id"] for r in body["items"]]
        pages += 1
        if body["nextCursor"] is None:
            break
        params = {**params, "cursor": body["nextCursor"]}
    assert (seen, pages) == (newest_first, 3)


def test_job_list_refuses_bad_filters_naming_them_and_another_tenants_event(
    client: TestClient, db: Session, headers: H,
) -> None:
    for params, field in [({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"),
                          ({"status": "nope"}, "status"), ({"eventId": "nope"}, "eventId"),
                          ({"kind": "nope"}, "kind"), ({"cursor": "nope"}, "cursor")]:
        body = problem(client.get("/api/jobs", headers=headers, params=params), 422)
        assert field in [e["field"] for e in body["errors"]], (params, body)
    foreign = make_event(db, make_tenant(db))
    problem(client.get("/api/jobs", headers=headers, params={"eventId": str(foreign.id)}), 404)


def test_job_list_shows_each_role_only_the_runs_it_may_read(
    client: TestClient, db: Session, tenant: Tenant,
) -> None:
    category = make_category(db, make_event(db, tenant))
    bibs = bibs_run(db, tenant, category, minute=1)
    discovery = make_run(db, tenant, kind=DISCOVER_EVENTS_KIND, created_at=BASE,
                         params={"connection_id": str(uuid.uuid4())},
                         subject_type="provider_connection")

    # A discovery is read with the connections (sync:connection:read): not a viewer's.
    assert listed_ids(client, auth(db, tenant, Role.VIEWER)) == [str(bibs.id)]
    assert listed_ids(client, auth(db, tenant, Role.EVENT_MANAGER)) == [
        str(bibs.id), str(discovery.id)]
    assert listed_ids(client, auth(db, tenant, Role.VIEWER), kind=DISCOVER_EVENTS_KIND) == []


def test_read_job(client: TestClient, headers: H, running: JobRun) -> None:
    response = client.get(f"/api/jobs/{running.id}", headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == JOB_RUN_KEYS
    assert (body["id"], body["message"], body["cancelRequested"]) == (
        str(running.id), "Assigned 30 bibs", False)


TRACEBACK = """Traceback (most recent call last):
  File "/srv/racehub/src/racehub/jobs/runner.py", line 173, in run_job
    body(handle, db, ctx, **run.params)
ValueError: row 4 is malformed
"""


def test_a_failure_shows_its_reason_never_the_traceback(
    client: TestClient, headers: H, db: Session, tenant: Tenant
) -> None:
    """Server paths and code are nobody's business but the operator's (the worker's log
    and the row keep the traceback)."""
    failed = make_run(db, tenant, status=JobStatus.FAILED, stage="Failed",
                      message="row 4 is malformed", error=TRACEBACK)

    body = client.get(f"/api/jobs/{failed.id}", headers=headers).json()
    page = client.get(f"/jobs/{failed.id}", headers=headers).text

    assert body["error"] == "ValueError: row 4 is malformed"
    for shown in (str(body), page):
        assert "Traceback" not in shown and "/srv/racehub" not in shown
    assert "ValueError: row 4 is malformed" in page


def test_another_tenants_job_is_404_for_every_route(
    client: TestClient, db: Session, headers: H
) -> None:
    theirs = make_run(db, make_tenant(db), status=JobStatus.PAUSED)

    assert problem(client.get(f"/api/jobs/{theirs.id}", headers=headers), 404)["detail"] \
        == "job not found"
    for verb in ("cancel", "pause", "resume"):
        problem(client.post(f"/api/jobs/{theirs.id}/{verb}", headers=headers), 404)
    problem(client.get(f"/api/jobs/{uuid.uuid4()}", headers=headers), 404)
    db.refresh(theirs)
    assert (theirs.status, theirs.log) == (JobStatus.PAUSED, [])


# --- control ------------------------------------------------------------------------------


def test_cancel_of_a_running_job_asks_it_to_stop(
    client: TestClient, db: Session, headers: H, running: JobRun
) -> None:
    response = client.post(f"/api/jobs/{running.id}/cancel", headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["cancelRequested"]) == ("running", True)
    db.refresh(running)
    assert running.cancel_requested is True


def test_pause_then_resume_before_the_pause_took_effect(
    client: TestClient, headers: H, running: JobRun
) -> None:
    paused = client.post(f"/api/jobs/{running.id}/pause", headers=headers).json()
    assert (paused["status"], paused["pauseRequested"]) == ("running", True)

    resumed = client.post(f"/api/jobs/{running.id}/resume", headers=headers).json()
    assert (resumed["status"], resumed["pauseRequested"]) == ("running", False)


def test_resume_of_a_paused_job_queues_it_again(
    client: TestClient, db: Session, headers: H, tenant: Tenant, event: Event,
    category: Category,
) -> None:
    params = {"event_id": str(event.id), "category_id": str(category.id), "first_bib": 1}
    run = make_run(db, tenant, status=JobStatus.PAUSED, stage="Paused", pause_requested=True,
                   params=params, checkpoint={"next_bib": 11, "assigned": 10})

    response = client.post(f"/api/jobs/{run.id}/resume", headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["stage"], body["pauseRequested"]) == ("queued", "Queued", False)
    db.refresh(run)
    assert run.queue_job_id is not None
    task = db.execute(text("SELECT args->>'job_run_id', lock FROM procrastinate_jobs "
                           "WHERE id = :id"), {"id": run.queue_job_id}).one()
    assert tuple(task) == (str(run.id), f"assign-bibs:{event.id}")


@pytest.mark.parametrize(("status", "verb", "detail"), [
    (JobStatus.COMPLETED, "cancel", "the job is already completed"),
    (JobStatus.COMPLETED, "pause", "only a queued or running job can be paused, not a "
                                   "completed one"),
    (JobStatus.COMPLETED, "resume", "only a paused job can be resumed, not a completed one"),
    (JobStatus.RUNNING, "resume", "only a paused job can be resumed, not a running one"),
])
def test_control_in_the_wrong_state_is_409_saying_why(
    client: TestClient, db: Session, headers: H, tenant: Tenant, status: JobStatus, verb: str,
    detail: str,
) -> None:
    run = make_run(db, tenant, status=status)

    body = problem(client.post(f"/api/jobs/{run.id}/{verb}", headers=headers), 409)

    assert body["detail"] == detail


def test_viewer_reads_jobs_but_cannot_control_them(
    client: TestClient, db: Session, tenant: Tenant, running: JobRun
) -> None:
    viewer = auth(db, tenant, Role.VIEWER)

    assert client.get(f"/api/jobs/{running.id}", headers=viewer).status_code == 200
    body = problem(client.post(f"/api/jobs/{running.id}/pause", headers=viewer), 403)
    assert "events:participant:write" in body["detail"]
    db.refresh(running)
    assert (running.pause_requested, running.log) == (False, [])


# --- queueing a bib assignment ------------------------------------------------------------


def test_assign_bibs_answers_202_with_the_queued_run(
    client: TestClient, db: Session, headers: H, event: Event, category: Category
) -> None:
    url = f"/api/events/{event.id}/categories/{category.id}/assign-bibs"

    response = client.post(url, headers=headers, json={"firstBib": 500})

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == JOB_RUN_KEYS
    assert (body["kind"], body["status"], body["stage"], body["percent"]) == (
        ASSIGN_BIBS_KIND, "queued", "Queued", 0.0)
    # Task parameters are passed through as the task gets them, not camelCased.
    assert body["params"] == {"event_id": str(event.id), "category_id": str(category.id),
                              "first_bib": 500}
    assert body["message"] == "Assign bibs from 500 in 21K"
    assert body["requestedByLabel"].startswith("token:")
    run = db.get(JobRun, uuid.UUID(body["id"]))
    assert run is not None and log_messages(run) == ["queued"]
    assert db.scalar(text("SELECT lock FROM procrastinate_jobs WHERE id = :id"),
                     {"id": run.queue_job_id}) == f"assign-bibs:{event.id}"
    assert client.get(f"/api/jobs/{run.id}", headers=headers).json()["id"] == body["id"]


def test_assign_bibs_starts_at_the_categorys_range_by_default(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    category = make_category(db, event, "5K", bib_range_start=2001, bib_range_end=2999)
    url = f"/api/events/{event.id}/categories/{category.id}/assign-bibs"

    body = client.post(url, headers=headers, json={}).json()

    assert body["message"] == "Assign bibs from 2001 in 5K"


def test_assign_bibs_above_the_range_is_422_naming_first_bib(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    category = make_category(db, event, "5K", bib_range_start=1, bib_range_end=99)
    url = f"/api/events/{event.id}/categories/{category.id}/assign-bibs"

    body = problem(client.post(url, headers=headers, json={"firstBib": 100}), 422)

    assert [e["field"] for e in body["errors"]] == ["firstBib"]
    assert db.scalar(text("SELECT count(*) FROM job_runs")) == 0


def test_assign_bibs_in_another_tenants_category_is_404(
    client: TestClient, db: Session, event: Event, category: Category
) -> None:
    stranger = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    url = f"/api/events/{event.id}/categories/{category.id}/assign-bibs"

    problem(client.post(url, headers=stranger, json={}), 404)
    assert db.scalar(text("SELECT count(*) FROM job_runs")) == 0


# --- the job page -------------------------------------------------------------------------


def test_job_page_shows_progress_controls_and_log(
    client: TestClient, headers: H, running: JobRun
) -> None:
    response = client.get(f"/jobs/{running.id}", headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<html" in page and "<h1>Assign bibs</h1>" in page
    assert 'data-status="running"' in page and "30 / 120" in page
    assert "Assigned 30 bibs" in page
    assert 'class="inline job-controls"' in page
    assert 'value="pause"' in page and 'value="cancel"' in page and 'value="resume"' not in page
    assert "<h2>Log</h2>" in page


def test_htmx_request_gets_only_the_polling_progress_fragment(
    client: TestClient, headers: H, running: JobRun
) -> None:
    response = client.get(f"/jobs/{running.id}", headers={**headers, "HX-Request": "true"})

    assert response.status_code == 200, response.text
    fragment = response.text.strip()
    assert fragment.startswith(f'<div class="job-progress" id="job-{running.id}"')
    assert "<html" not in fragment and "<h2>Log</h2>" not in fragment
    assert f'hx-get="/jobs/{running.id}"' in fragment and 'hx-trigger="every 1s"' in fragment


def test_fragment_of_a_finished_job_stops_polling_and_offers_no_control(
    client: TestClient, db: Session, headers: H, tenant: Tenant
) -> None:
    done = make_run(db, tenant, status=JobStatus.COMPLETED, stage="Done", percent=100.0)

    fragment = client.get(f"/jobs/{done.id}", headers={**headers, "HX-Request": "true"}).text

    assert 'data-status="completed"' in fragment and "100%" in fragment
    assert "hx-get" not in fragment and 'name="action"' not in fragment


def test_a_job_ending_on_its_own_page_reloads_it_for_the_log(
    client: TestClient, db: Session, headers: H, tenant: Tenant, running: JobRun
) -> None:
    done = make_run(db, tenant, status=JobStatus.COMPLETED, stage="Done", percent=100.0)
    polled = {**headers, "HX-Request": "true"}

    on_its_page = client.get(f"/jobs/{done.id}", headers={
        **polled, "HX-Current-URL": f"http://testserver/jobs/{done.id}"})
    elsewhere = client.get(f"/jobs/{done.id}", headers={
        **polled, "HX-Current-URL": "http://testserver/exports"})
    still_running = client.get(f"/jobs/{running.id}", headers={
        **polled, "HX-Current-URL": f"http://testserver/jobs/{running.id}"})

    assert on_its_page.headers.get("hx-refresh") == "true"
    assert "hx-refresh" not in elsewhere.headers  # another page embeds only the fragment
    assert "hx-refresh" not in still_running.headers


def test_viewer_sees_the_page_without_controls(
    client: TestClient, db: Session, tenant: Tenant, running: JobRun
) -> None:
    page = client.get(f"/jobs/{running.id}", headers=auth(db, tenant, Role.VIEWER))

    assert page.status_code == 200 and 'data-status="running"' in page.text
    assert "job-controls" not in page.text and 'name="action"' not in page.text


def test_page_control_pauses_and_redirects_back_to_the_page(
    client: TestClient, db: Session, headers: H, running: JobRun
) -> None:
    response = client.post(f"/jobs/{running.id}/control", headers=headers,
                           data={"action": "pause"}, follow_redirects=False)

    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/jobs/{running.id}"
    db.refresh(running)
    assert running.pause_requested is True


def test_another_tenants_job_page_is_404(
    client: TestClient, db: Session, headers: H
) -> None:
    theirs = make_run(db, make_tenant(db))

    assert client.get(f"/jobs/{theirs.id}", headers=headers).status_code == 404
