"""The Sync tabs (event, connection) and a run's page, without a browser: what a run
left shows in the history and on its page, Sync now starts (then joins) a run, the live
status polls only while a run is active, conflicts are resolved from the tab, and what a
role may not do is not offered."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.events.models import EventParticipant
from racehub.sync import links
from racehub.sync.models import ConflictStatus, SyncConflict, SyncRun, SyncStatus
from tests.core.conftest import start_browser_session
from tests.factories import make_event, make_user
from tests.sync.engine_helpers import attempt, connect, event_ref, link, simulator, sync


def _browse(client: TestClient, db: Session, tenant: Tenant, role: Role) -> TestClient:
    client.headers["X-CSRF-Token"] = start_browser_session(db, client,
                                                           make_user(db, tenant, role))
    db.commit()  # as in production: a refused form rolls the request's work back
    return client


def test_the_event_tab_shows_its_links_the_history_and_a_runs_changes(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    with simulator(participants_per_event=5) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        event = make_event(db, tenant, name="Harbour 10K")
        event_link = link(db, connection, event, event_ref(sim), "Harbour 10K (RunSignUp)")
        run = sync(db, ctx, keyring, connection, event_link)
    assert run.status == SyncStatus.SUCCEEDED and run.created == 5
    browser = _browse(client, db, tenant, Role.VIEWER)

    tab = browser.get(f"/events/{event.id}/sync")

    assert tab.status_code == 200
    assert "Harbour 10K (RunSignUp)" in tab.text
    assert f'href="/sync/runs/{run.id}"' in tab.text
    assert "succeeded" in tab.text and "No open conflict." in tab.text
    assert 'data-export-menu="sync_runs"' not in tab.text  # exports need exports:export:run
    # A viewer reads; starting a run and resolving conflicts are not offered.
    assert "Sync now" not in tab.text
    page = browser.get(f"/sync/runs/{run.id}")
    assert page.status_code == 200
    assert "5 read: 5 created" in page.text
    assert page.text.count('data-action="created"') == 5
    only_updates = browser.get(f"/sync/runs/{run.id}?change=updated")
    assert "No change of this kind." in only_updates.text
    assert 'data-action="created"' not in only_updates.text
    assert browser.get(f"/sync/runs/{run.id}?change=moved").status_code == 422
    first = db.scalars(select(EventParticipant).where(
        EventParticipant.event_id == event.id)).first()
    assert first is not None and f"/participants/{first.id}/edit" in page.text


def test_sync_now_starts_a_run_then_joins_it_and_the_status_polls_while_it_is_active(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest")  # never called
    event = make_event(db, tenant)
    event_link = link(db, connection, event, "1:2")
    browser = _browse(client, db, tenant, Role.EVENT_MANAGER)
    assert "Sync now" in browser.get(f"/events/{event.id}/sync").text

    first = browser.post(f"/events/{event.id}/sync", data={}, follow_redirects=False)
    second = browser.post(f"/events/{event.id}/sync", data={"full_refresh": "1"},
                          follow_redirects=False)

    assert first.status_code == second.status_code == 303
    assert "1+sync+run%28s%29+started" in first.headers["location"]
    assert "already+running" in second.headers["location"]
    [run] = db.scalars(select(SyncRun).where(SyncRun.link_id == event_link.id)).all()
    assert run.status == SyncStatus.QUEUED and run.trigger == "manual"
    polled = browser.get(f"/events/{event.id}/sync", headers={
        "HX-Request": "true", "HX-Target": "sync-status"})
    assert polled.status_code == 200 and 'hx-trigger="every 2s"' in polled.text
    assert "HX-Refresh" not in polled.headers
    # The run ends: the next poll stops polling and reloads the page once.
    run.status = SyncStatus.SUCCEEDED
    db.flush()
    ended = browser.get(f"/events/{event.id}/sync", headers={
        "HX-Request": "true", "HX-Target": "sync-status"})
    assert ended.headers.get("HX-Refresh") == "true" and "every 2s" not in ended.text


def test_sync_now_of_an_event_nothing_feeds_names_the_reason(
    client: TestClient, db: Session, tenant: Tenant,
) -> None:
    event = make_event(db, tenant)
    browser = _browse(client, db, tenant, Role.EVENT_MANAGER)

    response = browser.post(f"/events/{event.id}/sync", data={})

    assert response.status_code == 422
    assert "No provider event feeds this event: link one first" in response.text


def test_the_connection_tab_starts_runs_of_its_linked_events_only(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest")
    event = make_event(db, tenant, name="Linked one")
    linked = link(db, connection, event, "1:2", "Linked provider event")
    link(db, connection, None, "1:3", "Chosen, not linked")
    browser = _browse(client, db, tenant, Role.EVENT_MANAGER)

    tab = browser.get(f"/connections/{connection.id}/sync")
    started = browser.post(f"/connections/{connection.id}/sync", data={},
                           follow_redirects=False)

    assert "Linked provider event" in tab.text and "Chosen, not linked" not in tab.text
    export = re.search(r"<a [^>]*data-export-menu=\"sync_runs\"[^>]*>", tab.text)
    assert export and f"filter.connectionId={connection.id}" in export.group(0), export
    assert started.status_code == 303
    assert [r.link_id for r in db.scalars(select(SyncRun).where(
        SyncRun.connection_id == connection.id))] == [linked.id]
    assert links.read_link(db, ctx, link_id=linked.id).syncing


def test_history_filters_page_and_refuse_an_unknown_status(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest")
    event = make_event(db, tenant)
    event_link = link(db, connection, event, "1:2")
    for status in [SyncStatus.FAILED] * 26 + [SyncStatus.SUCCEEDED]:
        db.add(SyncRun(tenant_id=tenant.id, connection_id=connection.id, provider="RUNSIGNUP",
                       link_id=event_link.id, event_id=event.id, sync_type="participants",
                       trigger="schedule", status=status, error=f"boom {status.value}"))
    db.flush()
    browser = _browse(client, db, tenant, Role.VIEWER)

    failed = browser.get(f"/events/{event.id}/sync?status=failed", headers={
        "HX-Request": "true", "HX-Target": "sync-history"})
    succeeded = browser.get(f"/events/{event.id}/sync?status=succeeded&trigger=schedule")
    wrong = browser.get(f"/events/{event.id}/sync?status=done")

    assert failed.text.count("data-run-id=") == 25 and "boom succeeded" not in failed.text
    assert "cursor=" in failed.text and "status=failed" in failed.text  # the next page keeps it
    assert succeeded.text.count("data-run-id=") == 1
    assert wrong.status_code == 422 and "status: &#39;done&#39; is not one of" in wrong.text


def test_a_conflict_is_resolved_from_the_tab_by_a_manager_only(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    with simulator(participants_per_event=1) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        event = make_event(db, tenant)
        sync(db, ctx, keyring, connection, link(db, connection, event, event_ref(sim)))
    ep = db.scalars(select(EventParticipant).where(EventParticipant.event_id == event.id)).one()
    conflict = SyncConflict(tenant_id=tenant.id, event_id=event.id, participant_id=ep.id,
                            field="team", local_value="Harriers", provider_value="Harriers B")
    db.add(conflict)
    db.flush()
    viewer = _browse(client, db, tenant, Role.VIEWER)
    shown = viewer.get(f"/events/{event.id}/sync")
    assert "Harriers B" in shown.text and "Keep ours" not in shown.text
    assert viewer.post(f"/events/{event.id}/conflicts/{conflict.id}/keep",
                       data={}).status_code == 403
    manager = _browse(client, db, tenant, Role.EVENT_MANAGER)
    assert "Keep ours" in manager.get(f"/events/{event.id}/sync").text

    kept = manager.post(f"/events/{event.id}/conflicts/{conflict.id}/keep", data={},
                        follow_redirects=False)
    again = manager.post(f"/events/{event.id}/conflicts/{conflict.id}/take", data={})

    assert kept.status_code == 303 and "team%3A+racehub%27s+value+kept" in kept.headers[
        "location"]
    db.refresh(conflict)
    assert conflict.status == ConflictStatus.KEPT
    assert again.status_code == 409 and "No open conflict." in again.text


def test_sync_now_asks_for_a_preview_applied_in_part_from_the_runs_page(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    with simulator(participants_per_event=4) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        event = make_event(db, tenant)
        event_link = link(db, connection, event, event_ref(sim))
        browser = _browse(client, db, tenant, Role.EVENT_MANAGER)
        assert browser.post(f"/events/{event.id}/sync", data={},
                            follow_redirects=False).status_code == 303
        run = db.scalars(select(SyncRun).where(SyncRun.link_id == event_link.id)).one()
        assert run.preview
        run = attempt(db, ctx, keyring, run)
    assert run.status == SyncStatus.AWAITING_REVIEW, run.error
    tab = browser.get(f"/events/{event.id}/sync")
    assert "review and apply" in tab.text and "every 2s" not in tab.text  # waits, no poll
    page = browser.get(f"/sync/runs/{run.id}")
    assert "created: 4" in page.text and page.text.count('name="source_ref"') == 4
    refs = re.findall(r'data-source-ref="([^"]+)"', page.text)
    none_ticked = browser.post(f"/sync/runs/{run.id}/apply", data={})
    assert none_ticked.status_code == 422 and "tick the registrations" in none_ticked.text

    applied = browser.post(f"/sync/runs/{run.id}/apply", data={"source_ref": refs[:2]},
                           follow_redirects=False)

    assert applied.status_code == 303 and "Applying+2+registration" in applied.headers[
        "location"]
    queued = db.get(SyncRun, run.id, populate_existing=True)
    assert queued is not None
    assert queued.status == SyncStatus.QUEUED and queued.review == "applied"
    done = attempt(db, ctx, keyring, queued)  # applies the read: the provider is not asked
    assert (done.status, done.created) == (SyncStatus.SUCCEEDED, 2)
    assert done.attempts == 1  # one read of the provider: applying it is not a retry
    assert "Decision" in browser.get(f"/sync/runs/{run.id}").text


def test_a_waiting_run_is_discarded_from_its_page(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest")
    event = make_event(db, tenant)
    event_link = link(db, connection, event, "1:2")
    held = SyncRun(tenant_id=tenant.id, connection_id=connection.id, provider="RUNSIGNUP",
                   link_id=event_link.id, event_id=event.id, sync_type="participants",
                   trigger="schedule", status=SyncStatus.HELD,
                   hold_reason="it would withdraw 40 of 50 active participants")
    db.add(held)
    db.flush()
    viewer = _browse(client, db, tenant, Role.VIEWER)
    shown = viewer.get(f"/sync/runs/{held.id}")
    assert "Held by the circuit breaker" in shown.text and "would withdraw 40" in shown.text
    assert "Discard" not in shown.text
    event_page = viewer.get(f"/events/{event.id}")
    assert f'href="/sync/runs/{held.id}#review"' in event_page.text  # wherever the link is
    assert "held: confirm or discard" in event_page.text
    manager = _browse(client, db, tenant, Role.EVENT_MANAGER)
    assert "Confirm and apply all" in manager.get(f"/sync/runs/{held.id}").text

    discarded = manager.post(f"/sync/runs/{held.id}/discard", data={})
    again = manager.post(f"/sync/runs/{held.id}/discard", data={})

    assert discarded.status_code == 200 and "Discarded: nothing was applied" in discarded.text
    db.refresh(held)
    assert held.status == SyncStatus.DISCARDED
    assert again.status_code == 409
