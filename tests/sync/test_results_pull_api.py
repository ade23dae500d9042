"""Asking for a results pull: ``POST /api/sync/manual`` with ``syncType: results_pull``
(sync:timing:run: RESULTS_OFFICER and up, VIEWER refused) and the event's Sync tab's
"Pull results"; the pull then fills the results page."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role
from racehub.providers.chronotrack import simulator as ct_sim
from racehub.sync.models import SyncRun
from tests.core.conftest import start_browser_session
from tests.factories import auth, make_event, make_user
from tests.sync import results_helpers as h


def _timing_event(db: Session, ctx: TenantContext, keyring: Keyring, tenant: Any,
                  url: str = "http://127.0.0.1:9") -> tuple[Any, Any, Any]:
    connection = h.connect(db, ctx, keyring, "COPERNICO", url, {"api_key": h.COPERNICO_KEY})
    event = make_event(db, tenant)
    link = h.timing_link(db, connection, event, "race-1:event-1")
    return connection, event, link


def test_results_officer_pulls_and_viewer_is_refused(
        db: Session, ctx: TenantContext, keyring: Keyring, tenant: Any,
        client: TestClient) -> None:
    connection, event, link = _timing_event(db, ctx, keyring, tenant)
    body = {"connectionId": str(connection.id), "syncType": "results_pull",
            "eventId": str(event.id)}

    refused = client.post("/api/sync/manual", json=body, headers=auth(db, tenant, Role.VIEWER))
    officer = auth(db, tenant, Role.RESULTS_OFFICER)
    # A results officer pulls results but does not sync registrations.
    participants = client.post("/api/sync/manual", headers=officer,
                               json={**body, "syncType": "participants"})
    pulled = client.post("/api/sync/manual", json=body, headers=officer)
    again = client.post("/api/sync/manual", json=body, headers=officer)

    assert refused.status_code == 403 and "sync:timing:run" in refused.text
    assert participants.status_code == 403 and "sync:run:start" in participants.text
    assert pulled.status_code == 202, pulled.text
    [run] = pulled.json()["runs"]
    assert run["run"]["syncType"] == "results_pull" and run["run"]["linkId"] == str(link.id)
    assert run["run"]["onCourse"] == 0 and not run["joined"]
    assert again.json()["runs"][0]["joined"] is True
    assert db.get(SyncRun, run["run"]["id"]) is not None


def test_a_registration_connection_cannot_be_pulled(
        db: Session, tenant: Any, client: TestClient, offline_link: Any) -> None:
    response = client.post("/api/sync/manual", headers=auth(db, tenant, Role.RESULTS_OFFICER),
                           json={"connectionId": str(offline_link.connection_id),
                                 "syncType": "results_pull"})

    assert response.status_code == 422
    assert "not a timing system" in response.text


def test_the_sync_tab_pulls_a_timing_race_and_the_results_page_fills(
        db: Session, ctx: TenantContext, keyring: Keyring, tenant: Any,
        client: TestClient) -> None:
    with h.chronotrack() as (sim, url):
        connection = h.connect(db, ctx, keyring, "CHRONOTRACK", url,
                               dict(ct_sim.DEMO_CREDENTIALS))
        event = make_event(db, tenant)
        ref, race_id = h.chronotrack_race(sim)
        eps = h.pushed_chronotrack(db, event, sim, race_id, count=8)
        link = h.timing_link(db, connection, event, ref)
        csrf = start_browser_session(db, client, make_user(db, tenant, Role.RESULTS_OFFICER))

        tab = client.get(f"/events/{event.id}/sync")
        assert tab.status_code == 200 and "Pull results" in tab.text
        posted = client.post(f"/events/{event.id}/sync/links/{link.id}/pull",
                             data={"csrf_token": csrf}, follow_redirects=False)
        assert posted.status_code == 303
        [run] = db.scalars(select(SyncRun).where(SyncRun.link_id == link.id)).all()
        h.attempt(db, keyring, run)

        run_page = client.get(f"/sync/runs/{run.id}")
        results = client.get(f"/events/{event.id}/results")
        history = client.get(f"/events/{event.id}/sync")

    assert "Results pull" in run_page.text and "8 created" in run_page.text
    assert "results pull" in history.text
    assert results.status_code == 200
    assert all(f'data-participant-id="{ep.id}"' in results.text for ep in eps)
    assert 'data-count="finished">finished: <strong>8</strong>' in results.text
