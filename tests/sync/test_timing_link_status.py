"""A timing link with a start list push AND a results pull active at once (one run per
link and type): the event's Sync tab, the links API and the status API show both, neither
hiding the other."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.sync import results_pull, timing_push
from racehub.sync.models import SyncStatus
from tests.core.conftest import start_browser_session
from tests.factories import auth, make_event, make_participant, make_user
from tests.sync.engine_helpers import T0
from tests.sync.push_helpers import connect, timing_link


def test_a_push_and_a_pull_active_on_one_timing_link_both_show(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    event = make_event(db, tenant, name="Harbour 10K", start_at=T0 + timedelta(days=30))
    make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="1")
    connection = connect(db, ctx, keyring, "COPERNICO", "http://127.0.0.1:9")  # never called
    link = timing_link(db, connection, event, "race-1:event-1")
    push = timing_push.request_push(
        db, ctx, target=timing_push.get_target_or_raise(db, ctx, link_id=link.id)).run
    [pull] = results_pull.request_results_pull(db, ctx, connection_id=connection.id,
                                               event_id=event.id, link_id=link.id)
    assert not pull.joined and pull.run.id != push.id
    pull.run.status = SyncStatus.RUNNING  # the pull is under way, the push still queued
    db.flush()

    browser = client
    browser.headers["X-CSRF-Token"] = start_browser_session(
        db, browser, make_user(db, tenant, Role.RESULTS_OFFICER))
    db.commit()
    tab = browser.get(f"/events/{event.id}/sync")
    assert tab.status_code == 200
    row = re.search(rf'<tr data-link-id="{link.id}">(.*?)</tr>', tab.text, re.S)
    assert row is not None
    cell = row.group(1)
    assert f'href="/sync/runs/{push.id}"' in cell and f'href="/sync/runs/{pull.run.id}"' in cell
    shown = re.findall(r'data-sync-type="([a-z_]+)".*?class="sync-type">([^<]+)<'
                       r'.*?status-([a-z_]+)', cell, re.S)
    assert shown == [("results_pull", "results pull", "running"),
                     ("start_list_push", "start list push", "queued")]
    assert 'hx-trigger="every 2s"' in tab.text  # it polls while they work
    polled = browser.get(f"/events/{event.id}/sync",
                         headers={"HX-Request": "true", "HX-Target": "sync-status"})
    assert polled.text.count('class="active-run"') == 2
    assert "HX-Refresh" not in polled.headers

    headers = auth(db, tenant, Role.VIEWER)
    status = client.get(f"/api/sync/status/{connection.id}", headers=headers)
    assert status.status_code == 200, status.text
    [entry] = status.json()["links"]
    assert [(r["syncType"], r["status"]) for r in entry["active"]] == [
        ("results_pull", "running"), ("start_list_push", "queued")]
    assert entry["running"]["id"] == str(pull.run.id) and entry["waiting"] is None
    [read] = client.get(f"/api/events/{event.id}/links", headers=headers).json()
    assert read["syncing"] is True
    assert read["syncingTypes"] == ["results_pull", "start_list_push"]
