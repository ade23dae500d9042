"""The start list push over the API, per role: VIEWER neither previews nor pushes,
RESULTS_OFFICER previews and pushes but confirms no risky step, EVENT_MANAGER confirms
them (a live Copernico change, a full re-push after a mode change)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role
from racehub.events.models import Event
from racehub.jobs.models import JobRun
from racehub.sync.models import EventLink, SyncRun, SyncStatus, TimingPushState
from tests.factories import auth, make_event, make_participant
from tests.sync.engine_helpers import T0
from tests.sync.push_helpers import connect, timing_link


@pytest.fixture
def event(db: Session, tenant: Any) -> Event:
    return make_event(db, tenant, start_at=T0 + timedelta(days=30))


@pytest.fixture
def copernico_link(db: Session, ctx: TenantContext, keyring: Keyring, event: Event) -> EventLink:
    # Never called: the requests below only plan and queue.
    connection = connect(db, ctx, keyring, "COPERNICO", "http://127.0.0.1:9")
    return timing_link(db, connection, event, "race-1:event-1")


def manual(link: EventLink, **extra: Any) -> dict[str, Any]:
    return {"connectionId": str(link.connection_id), "syncType": "start_list_push", **extra}


def test_a_viewer_neither_previews_nor_pushes(client: TestClient, db: Session, tenant: Any,
                                             copernico_link: EventLink) -> None:
    headers = auth(db, tenant, Role.VIEWER)
    preview = client.get(f"/api/sync/links/{copernico_link.id}/push-preview", headers=headers)
    pushed = client.post("/api/sync/manual", json=manual(copernico_link), headers=headers)
    assert (preview.status_code, pushed.status_code) == (403, 403)
    assert "sync:timing:run" in pushed.text
    assert db.scalars(select(SyncRun)).all() == []


def test_a_results_officer_previews_and_pushes_but_confirms_no_live_change(
        client: TestClient, db: Session, tenant: Any, event: Event,
        copernico_link: EventLink) -> None:
    make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="7")
    headers = auth(db, tenant, Role.RESULTS_OFFICER)

    preview = client.get(f"/api/sync/links/{copernico_link.id}/push-preview", headers=headers)

    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["counts"] == {"new": 1, "changed": 0, "withdrawn": 0, "problem": 0,
                              "unchanged": 0}
    assert body["identifierMode"] == "PERSON_ID" and not body["identifierLocked"]
    [row] = body["rows"]
    assert (row["action"], row["name"], row["bib"]) == ("new", "Ada Lovelace", "7")

    refused = client.post("/api/sync/manual", json=manual(copernico_link,
                                                          confirmLiveChanges=True),
                          headers=headers)
    assert refused.status_code == 403 and "confirmLiveChanges" in refused.text
    participants = client.post("/api/sync/manual", headers=headers, json={
        "connectionId": str(copernico_link.connection_id), "syncType": "participants"})
    assert participants.status_code == 403 and "sync:run:start" in participants.text

    pushed = client.post("/api/sync/manual", headers=headers, json=manual(
        copernico_link, planFingerprint=body["planFingerprint"]))

    assert pushed.status_code == 202, pushed.text
    [requested] = pushed.json()["runs"]
    assert requested["run"]["syncType"] == "start_list_push"
    assert requested["run"]["status"] == "queued" and not requested["joined"]
    job = db.get(JobRun, requested["jobId"])
    assert job is not None and job.kind == "sync.start_list_push"
    assert job.params["plan_fingerprint"] == body["planFingerprint"]
    # Asked again while it is queued: the same run (a confirmed request would be refused).
    again = client.post("/api/sync/manual", json=manual(copernico_link), headers=headers)
    assert again.json()["runs"][0]["joined"] is True


def test_an_event_manager_confirms_a_live_change(client: TestClient, db: Session,
                                                 tenant: Any,
                                                 copernico_link: EventLink) -> None:
    headers = auth(db, tenant, Role.EVENT_MANAGER)
    pushed = client.post("/api/sync/manual", json=manual(copernico_link,
                                                         confirmLiveChanges=True),
                         headers=headers)
    assert pushed.status_code == 202, pushed.text
    job = db.get(JobRun, pushed.json()["runs"][0]["jobId"])
    assert job is not None and job.params["confirm_live"] is True


def test_push_options_belong_to_the_push_and_a_registration_connection_is_not_a_target(
        client: TestClient, db: Session, tenant: Any, copernico_link: EventLink,
        offline_link: EventLink) -> None:
    headers = auth(db, tenant, Role.TENANT_ADMIN)
    mixed = client.post("/api/sync/manual", headers=headers,
                        json=manual(copernico_link, fullRefresh=True))
    assert mixed.status_code == 422
    wrong = client.post("/api/sync/manual", headers=headers, json={
        "connectionId": str(offline_link.connection_id), "syncType": "start_list_push"})
    assert wrong.status_code == 422 and "connectionId" in wrong.text


def test_a_pushed_mode_changes_only_with_confirm_full_repush_by_an_event_manager(
        client: TestClient, db: Session, tenant: Any, event: Event,
        copernico_link: EventLink) -> None:
    ep = make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="7")
    event.preferred_timing_identifier_locked_at = T0
    db.add(TimingPushState(tenant_id=tenant.id, link_id=copernico_link.id,
                           participant_id=ep.id, external_id=str(ep.person_id),
                           content_hash="0" * 64, pushed_values={}, pushed_at=T0))
    db.flush()
    url = f"/api/events/{event.id}"
    manager = auth(db, tenant, Role.EVENT_MANAGER)

    acknowledged = client.patch(url, headers=manager, json={
        "preferredTimingIdentifier": "EPID", "acknowledgeOverride": True})

    assert acknowledged.status_code == 409
    problem = acknowledged.json()
    assert "confirmFullRepush" in problem["detail"]
    officer = client.patch(url, headers=auth(db, tenant, Role.RESULTS_OFFICER), json={
        "preferredTimingIdentifier": "EPID", "confirmFullRepush": True})
    assert officer.status_code == 403

    confirmed = client.patch(url, headers=manager, json={
        "preferredTimingIdentifier": "EPID", "confirmFullRepush": True})

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["preferredTimingIdentifier"] == "EPID"
    [run] = db.scalars(select(SyncRun).where(SyncRun.link_id == copernico_link.id)).all()
    assert (run.sync_type, run.status) == ("start_list_push", SyncStatus.QUEUED)
    # While that push is active, the mode does not change again under it.
    busy = client.patch(url, headers=manager, json={
        "preferredTimingIdentifier": "PERSON_ID", "confirmFullRepush": True})
    assert busy.status_code == 409 and "push" in busy.json()["detail"]
