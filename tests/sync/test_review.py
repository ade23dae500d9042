"""The guards between a sync run's read and its apply, against the RunSignUp simulator on
real Postgres: a manual run's preview applied in part (the rest read again by the next
run), a discarded preview, the circuit breaker holding a mass withdrawal and an empty
full read until someone confirms, and scheduled runs applying directly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.events.models import Event, EventParticipant, ParticipantStatus
from racehub.events.writes import ParticipantWrite, write_participants
from racehub.jobs import service as jobs_service
from racehub.providers.runsignup.simulator import RunSignUpSimulator
from racehub.sync import breaker, review, runs
from racehub.sync.models import (
    ConflictStatus,
    EventLink,
    ProviderConnection,
    StagedRow,
    SyncConflict,
    SyncedRecord,
    SyncPreviewItem,
    SyncRun,
    SyncStatus,
    SyncTrigger,
)
from tests.factories import auth, make_event
from tests.sync.conftest import audit_entries
from tests.sync.engine_helpers import (
    attempt,
    connect,
    event_ref,
    link,
    provider_event_id,
    rows_written,
    simulator,
    sync,
)


@pytest.fixture
def sim() -> Iterator[tuple[RunSignUpSimulator, str]]:
    with simulator() as served:
        yield served


@pytest.fixture
def event(db: Session, tenant: Tenant) -> Event:
    return make_event(db, tenant)


@pytest.fixture
def connection(db: Session, ctx: TenantContext, keyring: Keyring,
               sim: tuple[RunSignUpSimulator, str]) -> ProviderConnection:
    return connect(db, ctx, keyring, sim[1])


@pytest.fixture
def event_link(db: Session, connection: ProviderConnection, event: Event,
               sim: tuple[RunSignUpSimulator, str]) -> EventLink:
    return link(db, connection, event, event_ref(sim[0]), name="5K")


@pytest.fixture
def manager(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.EVENT_MANAGER)


def _rows(sim: RunSignUpSimulator) -> list[dict[str, Any]]:
    return sim.participants[provider_event_id(sim)]


def _at(row: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(row["last_modified"]), UTC)


def _ep(db: Session, registration_id: int) -> EventParticipant | None:
    record = db.scalar(select(SyncedRecord).where(
        SyncedRecord.source_ref == str(registration_id))
        .execution_options(populate_existing=True))
    if record is None or record.participant_id is None:
        return None
    return db.scalar(select(EventParticipant).where(EventParticipant.id == record.participant_id)
                     .execution_options(populate_existing=True))


def _active(db: Session, event: Event) -> int:
    return db.scalar(select(func.count()).select_from(EventParticipant).where(
        EventParticipant.event_id == event.id,
        EventParticipant.status == ParticipantStatus.ACTIVE)) or 0


def _request(db: Session, ctx: TenantContext, keyring: Keyring, connection: ProviderConnection,
             event_link: EventLink, **options: Any) -> SyncRun:
    """Ask for a run of the link and run its first attempt (its read)."""
    requested = runs.request_link_sync(db, ctx, connection=connection, link=event_link,
                                       **options)
    assert not requested.joined
    return attempt(db, ctx, keyring, requested.run)


def _preview(client: TestClient, run: SyncRun, headers: dict[str, str],
             **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/sync/runs/{run.id}/preview", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_manual_preview_applied_in_part_leaves_the_rest_for_the_next_run(
    client: TestClient, db: Session, ctx: TenantContext, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str], connection: ProviderConnection,
    event_link: EventLink, event: Event, manager: dict[str, str], tenant: Tenant,
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    owned, left, contact = _rows(simulator_)[:3]
    old_team, left_team = owned["team_name"], left["team_name"]
    # racehub owns one registration's team (edited here), then the provider changes it.
    write_participants(db, ctx, event_id=event.id, origin="api", mark_local=True, rows=[
        ParticipantWrite(participant_id=_ep(db, owned["registration_id"]).id,  # type: ignore[union-attr]
                         values={"team": "Local Team"})])
    simulator_.modify(owned["registration_id"], team_name="Provider Team")
    # A day apart each, far beyond the overlap window: a cursor moved past ``left`` would
    # never read it again.
    simulator_.pass_time(24 * 3600)
    simulator_.modify(left["registration_id"], team_name="Left Out Team")
    simulator_.pass_time(24 * 3600)
    simulator_.modify(contact["registration_id"], email="moved.away@example.org")
    simulator_.pass_time(24 * 3600)
    added = simulator_.add_participant(provider_event_id(simulator_))
    cursor = event_link.cursor
    written = rows_written(db)

    run = _request(db, ctx, keyring, connection, event_link, preview=True)

    # Read and staged, nothing applied: no row of synced data written.
    assert run.status == SyncStatus.AWAITING_REVIEW, run.error
    assert run.waiting_since is not None and run.hold_reason is None
    assert rows_written(db) == written and event_link.cursor == cursor
    assert _ep(db, added["registration_id"]) is None
    body = _preview(client, run, manager)
    assert body["run"]["status"] == "awaiting_review"
    assert body["counts"] == {"created": 1, "updated": 2, "withdrawn": 0, "conflict": 1,
                              "unchanged": 3, "problems": 0}  # unchanged: old withdrawals
    items = {i["sourceRef"]: i for i in body["items"]}
    assert items[str(left["registration_id"])]["fields"] == {
        "team": {"provider": "Left Out Team", "synced": left_team, "local": left_team}}
    assert items[str(owned["registration_id"])]["action"] == "conflict"
    assert items[str(owned["registration_id"])]["fields"]["team"] == {
        "provider": "Provider Team", "synced": old_team, "local": "Local Team"}
    # A change to contact data is named, never shown; a new registration shows its name.
    moved = items[str(contact["registration_id"])]
    assert (moved["action"], moved["fields"], moved["otherFields"]) == ("updated", {}, ["email"])
    new = items[str(added["registration_id"])]
    assert new["action"] == "created" and new["fields"]["last_name"]["provider"] == \
        added["user"]["last_name"]
    assert "email" in new["otherFields"] and "moved.away" not in str(body)
    assert added["user"]["email"] not in str(body)
    filtered = _preview(client, run, manager, action="updated", limit=1)
    assert len(filtered["items"]) == 1 and filtered["nextCursor"]
    rest = _preview(client, run, manager, action="updated", cursor=filtered["nextCursor"])
    assert {i["sourceRef"] for i in filtered["items"] + rest["items"]} == {
        str(left["registration_id"]), str(contact["registration_id"])}

    chosen = [str(r["registration_id"]) for r in (owned, contact, added)]
    response = client.post(f"/api/sync/runs/{run.id}/apply", headers=manager,
                           json={"sourceRefs": chosen})
    assert response.status_code == 202, response.text
    assert response.json()["run"]["status"] == "queued"
    assert response.json()["run"]["review"] == "applied"
    db.refresh(run)
    applied = attempt(db, ctx, keyring, run)

    assert applied.status == SyncStatus.SUCCEEDED, applied.error
    assert (applied.created, applied.updated, applied.conflicts) == (1, 1, 1)
    assert _ep(db, added["registration_id"]) is not None
    assert _ep(db, contact["registration_id"]).person.email == "moved.away@example.org"  # type: ignore[union-attr]
    assert _ep(db, left["registration_id"]).team == left_team  # type: ignore[union-attr]
    [conflict] = db.scalars(select(SyncConflict).where(SyncConflict.run_id == run.id))
    assert conflict.status == ConflictStatus.OPEN and conflict.provider_value == "Provider Team"
    # The cursor stays just before the registration left out, not at the newest applied.
    assert applied.cursor_after == event_link.cursor == _at(left) - timedelta(microseconds=1)
    assert db.scalar(select(func.count()).select_from(StagedRow)) == 0
    assert db.scalar(select(func.count()).select_from(SyncPreviewItem)) == 0
    [entry] = audit_entries(db, "sync.apply")
    assert entry.after["chosen"] == 3 and not entry.after["all"]

    again = sync(db, ctx, keyring, connection, event_link)

    assert again.status == SyncStatus.SUCCEEDED, again.error
    assert (again.created, again.updated) == (0, 1)
    assert _ep(db, left["registration_id"]).team == "Left Out Team"  # type: ignore[union-attr]


def test_a_discarded_preview_applies_nothing_and_the_next_run_reads_it_again(
    client: TestClient, db: Session, ctx: TenantContext, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str], connection: ProviderConnection,
    event_link: EventLink, event: Event, manager: dict[str, str],
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    row = _rows(simulator_)[0]
    simulator_.modify(row["registration_id"], team_name="Changed")
    cursor = event_link.cursor
    asked = client.post("/api/sync/manual", headers=manager, json={
        "connectionId": str(connection.id), "syncType": "participants", "preview": True})
    assert asked.status_code == 202, asked.text
    [requested] = asked.json()["runs"]
    assert requested["run"]["preview"] and requested["run"]["status"] == "queued"
    asked_run = db.get(SyncRun, uuid.UUID(requested["run"]["id"]))
    assert asked_run is not None
    run = attempt(db, ctx, keyring, asked_run)
    assert run.status.is_waiting and run.preview

    refused = client.post(f"/api/sync/runs/{run.id}/confirm", headers=manager)
    response = client.post(f"/api/sync/runs/{run.id}/discard", headers=manager)

    assert refused.status_code == 409 and "awaits review" in refused.json()["detail"]
    assert response.status_code == 200, response.text
    db.refresh(run)
    assert run.status == SyncStatus.DISCARDED and run.review == "discarded"
    assert run.reviewed_by_label and run.finished_at is not None
    assert event_link.cursor == cursor
    assert _ep(db, row["registration_id"]).team != "Changed"  # type: ignore[union-attr]
    assert db.scalar(select(func.count()).select_from(StagedRow)) == 0
    assert db.scalar(select(func.count()).select_from(SyncPreviewItem)) == 0
    assert client.get(f"/api/sync/runs/{run.id}/preview", headers=manager).status_code == 409
    assert client.post(f"/api/sync/runs/{run.id}/discard", headers=manager).status_code == 409
    [entry] = audit_entries(db, "sync.discard")
    assert entry.before["status"] == "awaiting_review"

    again = sync(db, ctx, keyring, connection, event_link)

    assert again.status == SyncStatus.SUCCEEDED and again.updated == 1
    assert _ep(db, row["registration_id"]).team == "Changed"  # type: ignore[union-attr]


def test_the_breaker_holds_a_mass_withdrawal_until_someone_confirms_it(
    client: TestClient, db: Session, ctx: TenantContext, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str], connection: ProviderConnection,
    event_link: EventLink, event: Event, manager: dict[str, str], tenant: Tenant,
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    active = _active(db, event)
    gone = _rows(simulator_)[:15]  # more than 10% of the active participants
    assert 10 * active < 15 * 100
    for row in list(gone):
        simulator_.remove(row["registration_id"])

    run = _request(db, ctx, keyring, connection, event_link, trigger=SyncTrigger.SCHEDULE)

    assert run.status == SyncStatus.HELD, run.error
    assert f"withdraw 15 of the event's {active} active" in (run.hold_reason or "")
    assert run.withdrawn == 0 and _active(db, event) == active
    # Held wherever the link is shown; a request meanwhile joins it.
    status = client.get(f"/api/sync/status/{connection.id}", headers=manager).json()
    [shown] = status["links"]
    assert shown["waiting"]["id"] == str(run.id) == shown["running"]["id"]
    assert shown["waiting"]["holdReason"] == run.hold_reason
    [linked] = client.get(f"/api/events/{event.id}/links", headers=manager).json()
    assert linked["waitingRun"] == {"id": str(run.id), "status": "held",
                                    "holdReason": run.hold_reason,
                                    "waitingSince": linked["waitingRun"]["waitingSince"]}
    joined = runs.request_link_sync(db, ctx, connection=connection, link=event_link)
    assert joined.joined and joined.run.id == run.id
    preview = _preview(client, run, manager, action="withdrawn")
    assert preview["counts"]["withdrawn"] == 15 and len(preview["items"]) == 15
    assert preview["items"][0]["fields"]["status"] == {
        "provider": "withdrawn", "synced": None, "local": "active"}
    refused = client.post(f"/api/sync/runs/{run.id}/apply", headers=manager, json={"all": True})
    assert refused.status_code == 409 and "confirm" in refused.json()["detail"]
    viewer = client.post(f"/api/sync/runs/{run.id}/confirm",
                         headers=auth(db, tenant, Role.VIEWER))
    assert viewer.status_code == 403

    response = client.post(f"/api/sync/runs/{run.id}/confirm", headers=manager)

    assert response.status_code == 202, response.text
    db.refresh(run)
    confirmed = attempt(db, ctx, keyring, run)
    assert confirmed.status == SyncStatus.SUCCEEDED, confirmed.error
    assert confirmed.withdrawn == 15 and confirmed.review == "confirmed"
    assert _active(db, event) == active - 15
    [entry] = audit_entries(db, "sync.confirm")
    assert entry.before["holdReason"] == run.hold_reason and entry.after["all"]


def test_a_few_withdrawals_are_ordinary_whatever_their_share(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink,
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    for row in list(_rows(simulator_)[:4]):
        simulator_.remove(row["registration_id"])
    # Read and staged (a preview waits for a person), so the breaker's inputs are there.
    run = _request(db, ctx, keyring, connection, event_link, preview=True)
    assert run.status == SyncStatus.AWAITING_REVIEW, run.error

    def limits(withdraw_min: int) -> breaker.Limits:
        return breaker.Limits(withdraw_percent=0, zero_rows_min_records=10,
                              withdraw_min=withdraw_min)

    # Four withdrawals are above a 0% share, yet below a minimum of five: not held.
    assert breaker.hold_reason(db, run, event_link, limits(5)) is None
    assert "would withdraw 4 of the event's" in (
        breaker.hold_reason(db, run, event_link, limits(4)) or "")


def test_the_breaker_holds_an_empty_full_read_not_an_empty_incremental_one(
    client: TestClient, db: Session, ctx: TenantContext, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str], connection: ProviderConnection,
    event_link: EventLink, event: Event, manager: dict[str, str],
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    active = _active(db, event)
    quiet = sync(db, ctx, keyring, connection, event_link, trigger=SyncTrigger.SCHEDULE)
    assert quiet.status == SyncStatus.SUCCEEDED and quiet.fetched == 0  # nothing changed
    _rows(simulator_).clear()  # the provider answers: nobody

    run = _request(db, ctx, keyring, connection, event_link, full_refresh=True,
                   trigger=SyncTrigger.SCHEDULE)

    assert run.status == SyncStatus.HELD, run.error
    assert "no registration on a full read" in (run.hold_reason or "")
    assert str(active) in (run.hold_reason or "")
    assert event_link.last_success_at == quiet.finished_at

    response = client.post(f"/api/sync/runs/{run.id}/confirm", headers=manager,
                           json={"all": True})
    assert response.status_code == 202, response.text
    db.refresh(run)
    confirmed = attempt(db, ctx, keyring, run)

    assert confirmed.status == SyncStatus.SUCCEEDED, confirmed.error
    assert confirmed.fetched == 0 and _active(db, event) == active  # nothing inferred


def test_scheduled_runs_apply_directly_under_the_breakers_limits(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link, trigger=SyncTrigger.SCHEDULE)
    active = _active(db, event)
    changed, *gone = _rows(simulator_)[:3]
    simulator_.modify(changed["registration_id"], team_name="Scheduled")
    for row in list(gone):
        simulator_.remove(row["registration_id"])

    run = sync(db, ctx, keyring, connection, event_link, trigger=SyncTrigger.SCHEDULE)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert (run.updated, run.withdrawn) == (1, 2) and run.review is None
    assert _active(db, event) == active - 2
    assert _ep(db, changed["registration_id"]).team == "Scheduled"  # type: ignore[union-attr]
    assert db.scalar(select(func.count()).select_from(SyncPreviewItem)) == 0


def test_a_run_that_does_not_wait_has_no_preview_and_takes_no_decision(
    client: TestClient, db: Session, ctx: TenantContext, keyring: Keyring,
    connection: ProviderConnection, event_link: EventLink, manager: dict[str, str],
) -> None:
    run = sync(db, ctx, keyring, connection, event_link)
    assert run.status == SyncStatus.SUCCEEDED

    answers = [client.get(f"/api/sync/runs/{run.id}/preview", headers=manager),
               client.post(f"/api/sync/runs/{run.id}/apply", headers=manager,
                           json={"all": True}),
               client.post(f"/api/sync/runs/{run.id}/confirm", headers=manager),
               client.post(f"/api/sync/runs/{run.id}/discard", headers=manager)]

    assert [a.status_code for a in answers] == [409, 409, 409, 409]
    assert all("succeeded" in a.json()["detail"] for a in answers)


def test_applying_names_refs_the_preview_does_not_hold_and_needs_one_choice(
    client: TestClient, db: Session, ctx: TenantContext, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str], connection: ProviderConnection,
    event_link: EventLink, manager: dict[str, str],
) -> None:
    sync(db, ctx, keyring, connection, event_link)
    row = _rows(sim[0])[0]
    sim[0].modify(row["registration_id"], team_name="Changed")
    run = _request(db, ctx, keyring, connection, event_link, preview=True)

    unknown = client.post(f"/api/sync/runs/{run.id}/apply", headers=manager,
                          json={"sourceRefs": [str(row["registration_id"]), "no-such-ref"]})
    both = client.post(f"/api/sync/runs/{run.id}/apply", headers=manager,
                       json={"all": True, "sourceRefs": ["x"]})
    neither = client.post(f"/api/sync/runs/{run.id}/apply", headers=manager, json={})
    none = client.post(f"/api/sync/runs/{run.id}/apply", headers=manager,
                       json={"sourceRefs": []})  # applying none is discarding

    assert unknown.status_code == 422 and "no-such-ref" in unknown.json()["detail"]
    assert both.status_code == neither.status_code == none.status_code == 422
    db.refresh(run)
    assert run.status == SyncStatus.AWAITING_REVIEW and run.review is None


def test_a_reviewed_run_whose_applying_job_was_cancelled_frees_its_link_and_read(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink,
) -> None:
    sync(db, ctx, keyring, connection, event_link)
    sim[0].modify(_rows(sim[0])[0]["registration_id"], team_name="Changed")
    run = _request(db, ctx, keyring, connection, event_link, preview=True)
    review.apply_reviewed(db, ctx, run_id=run.id)
    assert run.job_run_id is not None
    jobs_service.cancel_job(db, ctx, job_id=run.job_run_id)  # from the jobs page

    requested = runs.request_link_sync(db, ctx, connection=connection, link=event_link)

    assert not requested.joined and run.status == SyncStatus.CANCELLED
    assert db.scalar(select(func.count()).select_from(StagedRow)
                     .where(StagedRow.run_id == run.id)) == 0
    assert db.scalar(select(func.count()).select_from(SyncPreviewItem)) == 0


def test_an_applied_preview_still_counts_what_the_read_found_unchanged(
    client: TestClient, db: Session, ctx: TenantContext, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str], connection: ProviderConnection,
    event_link: EventLink, manager: dict[str, str],
) -> None:
    simulator_ = sim[0]
    first = sync(db, ctx, keyring, connection, event_link)
    changed = _rows(simulator_)[0]
    simulator_.modify(changed["registration_id"], team_name="New Team")

    # A full re-read: every registration but one is unchanged, and so not even staged.
    run = _request(db, ctx, keyring, connection, event_link, preview=True, full_refresh=True)
    assert run.status == SyncStatus.AWAITING_REVIEW, run.error
    response = client.post(f"/api/sync/runs/{run.id}/apply", headers=manager,
                           json={"all": True})
    assert response.status_code == 202, response.text
    db.refresh(run)
    applied = attempt(db, ctx, keyring, run)

    assert applied.status == SyncStatus.SUCCEEDED, applied.error
    assert applied.updated == 1
    assert applied.unchanged == first.created - 1
