"""The sync runs API: asking for a run (and joining the active one), the status of a
connection's links, the run list with its filters and keyset pages, one run with its
changes; and two requests racing for one link in two transactions."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring, keyring_from_settings
from racehub.core.models import Role, Tenant
from racehub.settings import Settings
from racehub.sync import runs
from racehub.sync.models import (
    ChangeAction,
    EventLink,
    ProviderConnection,
    SyncChange,
    SyncRun,
    SyncStatus,
)
from tests.concurrency import loser_of_a_race
from tests.factories import auth, make_event, make_tenant
from tests.sync.engine_helpers import T0, connect, link


def _connection(db: Session, ctx: TenantContext, keyring: Keyring) -> ProviderConnection:
    return connect(db, ctx, keyring, "http://127.0.0.1:9/Rest")  # never called here


def _run(db: Session, event_link: EventLink, status: SyncStatus, **fields: Any) -> SyncRun:
    run = SyncRun(tenant_id=event_link.tenant_id, connection_id=event_link.connection_id,
                  provider=event_link.provider, link_id=event_link.id,
                  event_id=event_link.event_id, sync_type="participants", trigger="schedule",
                  status=status, **fields)
    db.add(run)
    db.flush()
    return run


def test_asking_twice_for_a_sync_answers_the_same_run(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = _connection(db, ctx, keyring)
    event = make_event(db, tenant)
    link(db, connection, event, "1:2")
    headers = auth(db, tenant, Role.EVENT_MANAGER)
    body = {"connectionId": str(connection.id), "syncType": "participants",
            "eventId": str(event.id)}

    first = client.post("/api/sync/manual", json=body, headers=headers)
    second = client.post("/api/sync/manual", json={**body, "fullRefresh": True},
                         headers=headers)

    assert first.status_code == second.status_code == 202, first.text
    [made], [joined] = first.json()["runs"], second.json()["runs"]
    assert not made["joined"] and joined["joined"]
    assert joined["run"]["id"] == made["run"]["id"] and joined["jobId"] == made["jobId"]
    assert made["run"]["status"] == "queued" and made["run"]["trigger"] == "manual"
    job = client.get(f"/api/jobs/{made['jobId']}", headers=headers).json()
    assert job["kind"] == runs.SYNC_PARTICIPANTS_KIND


def test_a_sync_of_nothing_linked_is_422_naming_the_field(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = _connection(db, ctx, keyring)
    link(db, connection, None, "1:2")  # chosen, not linked
    headers = auth(db, tenant, Role.EVENT_MANAGER)

    response = client.post("/api/sync/manual", headers=headers, json={
        "connectionId": str(connection.id), "syncType": "participants"})
    wrong_type = client.post("/api/sync/manual", headers=headers, json={
        "connectionId": str(connection.id), "syncType": "results"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "connectionId"
    assert wrong_type.status_code == 422 and "syncType" in wrong_type.text


def test_status_shows_per_link_the_run_now_the_last_success_and_recent_failures(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = _connection(db, ctx, keyring)
    busy = link(db, connection, make_event(db, tenant), "1:2")
    quiet = link(db, connection, make_event(db, tenant), "1:3")
    _run(db, busy, SyncStatus.SUCCEEDED, finished_at=T0)
    newest = _run(db, busy, SyncStatus.SUCCEEDED, finished_at=T0.replace(hour=13))
    failed = _run(db, busy, SyncStatus.FAILED, finished_at=T0, error="RUNSIGNUP: down")
    running = _run(db, busy, SyncStatus.RUNNING)

    response = client.get(f"/api/sync/status/{connection.id}",
                          headers=auth(db, tenant, Role.VIEWER))

    assert response.status_code == 200, response.text
    by_link = {s["linkId"]: s for s in response.json()["links"]}
    assert set(by_link) == {str(busy.id), str(quiet.id)}
    assert by_link[str(busy.id)]["running"]["id"] == str(running.id)
    assert by_link[str(busy.id)]["lastSuccess"]["id"] == str(newest.id)
    assert [r["id"] for r in by_link[str(busy.id)]["recentFailures"]] == [str(failed.id)]
    assert by_link[str(busy.id)]["recentFailures"][0]["error"] == "RUNSIGNUP: down"
    assert by_link[str(quiet.id)]["running"] is None
    assert by_link[str(quiet.id)]["lastSuccess"] is None


def test_the_run_list_filters_and_pages_and_a_run_shows_its_changes(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = _connection(db, ctx, keyring)
    first_event, second_event = make_event(db, tenant), make_event(db, tenant)
    first = link(db, connection, first_event, "1:2")
    second = link(db, connection, second_event, "1:3")
    ours = [_run(db, first, SyncStatus.SUCCEEDED) for _ in range(3)]
    _run(db, second, SyncStatus.FAILED)
    headers = auth(db, tenant, Role.VIEWER)
    for n in range(3):
        db.add(SyncChange(tenant_id=tenant.id, run_id=ours[0].id, source_ref=f"r{n}",
                          action=ChangeAction.UPDATED,
                          changes={"bib": ["1", "2"], "email": ["a@x.org", "b@x.org"]}))
    db.flush()

    seen, cursor = [], None
    while True:
        page = client.get("/api/sync/runs", headers=headers, params={
            "eventId": str(first_event.id), "limit": 2, **({"cursor": cursor} if cursor else {})
        }).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    failed = client.get("/api/sync/runs", headers=headers, params={"status": "failed"}).json()
    detail = client.get(f"/api/sync/runs/{ours[0].id}", headers=headers,
                        params={"limit": 2}).json()
    rest = client.get(f"/api/sync/runs/{ours[0].id}", headers=headers,
                      params={"limit": 2, "cursor": detail["changes"]["nextCursor"]}).json()

    assert sorted(seen) == sorted(str(r.id) for r in ours) and len(seen) == 3
    assert [r["linkId"] for r in failed["items"]] == [str(second.id)]
    changes = detail["changes"]["items"] + rest["changes"]["items"]
    assert sorted(c["sourceRef"] for c in changes) == ["r0", "r1", "r2"]  # each once
    # The history shows what the participants page shows: no e-mail.
    assert all(c["changes"] == {"bib": ["1", "2"]} for c in changes)
    other = make_tenant(db)
    assert client.get(f"/api/sync/runs/{ours[0].id}",
                      headers=auth(db, other, Role.TENANT_ADMIN)).status_code == 404


def test_a_runs_changes_filter_by_action_through_their_pages(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    event_link = link(db, _connection(db, ctx, keyring), make_event(db, tenant), "1:2")
    run = _run(db, event_link, SyncStatus.SUCCEEDED)
    actions = [ChangeAction.CREATED, ChangeAction.WITHDRAWN, ChangeAction.PROBLEM] * 3 + [
        ChangeAction.TRANSFERRED]
    for n, action in enumerate(actions):
        db.add(SyncChange(tenant_id=tenant.id, run_id=run.id, source_ref=f"r{n}",
                          action=action, at=T0.replace(minute=n)))
    db.flush()
    headers = auth(db, tenant, Role.VIEWER)

    def walk(params: dict[str, Any]) -> list[tuple[str, str]]:
        seen, cursor = [], None
        for _ in range(len(actions) + 1):  # bounded: a page holds at least one change
            page = client.get(f"/api/sync/runs/{run.id}", headers=headers, params={
                **params, "limit": 2, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            body = page.json()["changes"]
            seen += [(c["sourceRef"], c["action"]) for c in body["items"]]
            cursor = body["nextCursor"]
            if not cursor:
                return seen
        raise AssertionError("the pages never ended")

    withdrawn = walk({"action": "withdrawn"})
    gone = walk({"action": ["withdrawn", "transferred"]})
    everything = walk({})

    assert withdrawn == [("r1", "withdrawn"), ("r4", "withdrawn"), ("r7", "withdrawn")]
    assert gone == withdrawn + [("r9", "transferred")]
    assert len(everything) == len(actions)
    unknown = client.get(f"/api/sync/runs/{run.id}", headers=headers,
                         params={"action": "deleted"})
    assert unknown.status_code == 422 and "action" in unknown.text


def test_a_retried_run_shows_its_trigger_its_attempts_and_that_it_was_retried(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    event_link = link(db, _connection(db, ctx, keyring), make_event(db, tenant), "1:2")
    once = _run(db, event_link, SyncStatus.SUCCEEDED, attempts=1)
    retried = _run(db, event_link, SyncStatus.SUCCEEDED, attempts=3)
    headers = auth(db, tenant, Role.VIEWER)

    detail = client.get(f"/api/sync/runs/{retried.id}", headers=headers).json()
    only_retried = client.get("/api/sync/runs", headers=headers,
                              params={"retried": "true"}).json()["items"]
    never = client.get("/api/sync/runs", headers=headers,
                       params={"retried": "false"}).json()["items"]

    assert (detail["trigger"], detail["attempts"], detail["retried"]) == ("schedule", 3, True)
    assert [r["id"] for r in only_retried] == [str(retried.id)]
    assert [(r["id"], r["retried"]) for r in never] == [(str(once.id), False)]


def test_two_requests_racing_for_one_link_make_one_run(
    engine: Engine, committed_db: sessionmaker[Session], database_url: str,
) -> None:
    keyring = keyring_from_settings(Settings(database_url=database_url))
    with committed_db() as db:
        tenant = make_tenant(db)
        ctx = TenantContext.system(tenant.id, label="test")
        connection = _connection(db, ctx, keyring)
        event_link = link(db, connection, make_event(db, tenant), "1:2")
        db.commit()
        ids = (connection.id, event_link.id)

    def request(db: Session) -> tuple[uuid.UUID, bool]:
        requested = request_uncommitted(db, ctx, ids)
        answer = (requested.run.id, requested.joined)
        db.commit()
        return answer

    winner_db = committed_db()
    winner = request_uncommitted(winner_db, ctx, ids)
    winner_id = winner.run.id
    winner_joined = winner.joined
    loser_run, loser_joined = loser_of_a_race(engine, winner_db, "sync-request-race", request)

    assert not winner_joined and loser_joined and loser_run == winner_id
    with committed_db() as db:
        assert db.scalar(select(func.count()).select_from(SyncRun)) == 1
        assert db.scalar(select(func.count()).select_from(SyncRun).where(
            SyncRun.id != winner_id)) == 0


def request_uncommitted(db: Session, ctx: TenantContext,
                        ids: tuple[uuid.UUID, uuid.UUID]) -> runs.RunRequest:
    connection, event_link = db.get(ProviderConnection, ids[0]), db.get(EventLink, ids[1])
    assert connection is not None and event_link is not None
    return runs.request_link_sync(db, ctx, connection=connection, link=event_link)
