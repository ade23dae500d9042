"""Requesting sync runs (one active per link), the fetch into staging, and what a failed
attempt leaves: a retry after 2, 4, 8 minutes for provider outages, none for bad
credentials, and never anything applied from a read that failed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.exceptions import Invalid
from racehub.jobs import service as jobs_service
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.retry import RetryScheduled
from racehub.jobs.runner import JobHandle
from racehub.providers.errors import AuthFailed, ProviderDown
from racehub.providers.runsignup.simulator import RunSignUpSimulator
from racehub.sync import adapters, engine, runs
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    StagedKind,
    StagedRow,
    SyncedRecord,
    SyncRun,
    SyncStatus,
    SyncTrigger,
)
from tests.factories import make_event
from tests.sync.engine_helpers import (
    Clock,
    attempt,
    connect,
    event_ref,
    job_of,
    link,
)


def _staged(db: Session, run: SyncRun, kind: StagedKind | None = None) -> list[StagedRow]:
    stmt = select(StagedRow).where(StagedRow.run_id == run.id)
    if kind is not None:
        stmt = stmt.where(StagedRow.kind == kind)
    return list(db.scalars(stmt.order_by(StagedRow.seq)))


def _queue_row(db: Session, job: JobRun) -> dict[str, Any]:
    return dict(db.execute(text(
        "SELECT priority, scheduled_at, lock, status::text AS status FROM procrastinate_jobs "
        "WHERE id = :id"), {"id": job.queue_job_id}).mappings().one())


# --- requesting --------------------------------------------------------------------------


def test_a_request_makes_one_run_and_job_per_linked_event_and_a_second_joins_it(
    db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str],
) -> None:
    _, base = sim
    connection = connect(db, ctx, keyring, base)
    first, second = make_event(db, tenant), make_event(db, tenant)
    link_a = link(db, connection, first, "100000:660000")
    link_b = link(db, connection, second, "100000:660001")
    link(db, connection, None, "100000:660002")  # chosen, not linked: not synced

    requested = runs.request_participant_sync(db, ctx, connection_id=connection.id)

    assert [r.run.link_id for r in requested] == [link_a.id, link_b.id]
    assert not any(r.joined for r in requested)
    for request in requested:
        job = job_of(db, request.run)
        assert job.kind == runs.SYNC_PARTICIPANTS_KIND
        assert (job.subject_type, job.subject_id) == ("event_link", request.run.link_id)
        assert request.run.status == SyncStatus.QUEUED
        assert request.run.trigger == SyncTrigger.MANUAL
        queued = _queue_row(db, job)
        # Manual runs go first; one link's attempts never run at once.
        assert queued["priority"] == runs.PRIORITY_OF[SyncTrigger.MANUAL] > 0
        assert queued["lock"] == f"sync-link:{request.run.link_id}"

    again = runs.request_participant_sync(db, ctx, connection_id=connection.id,
                                          event_id=second.id)
    assert [(r.run.id, r.joined) for r in again] == [(requested[1].run.id, True)]
    assert db.scalar(select(func.count()).select_from(SyncRun)) == 2


def test_a_request_with_nothing_linked_names_the_field(
    db: Session, ctx: TenantContext, tenant: Any, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection,
) -> None:
    with pytest.raises(Invalid) as nothing:
        runs.request_participant_sync(db, ctx, connection_id=connection.id)
    assert nothing.value.field == "connectionId"
    link(db, connection, make_event(db, tenant), event_ref(sim[0]))
    with pytest.raises(Invalid) as other_event:
        runs.request_participant_sync(db, ctx, connection_id=connection.id,
                                      event_id=make_event(db, tenant).id)
    assert other_event.value.field == "eventId"


def test_a_run_whose_job_was_cancelled_does_not_hold_its_link(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink,
) -> None:
    [first] = runs.request_participant_sync(db, ctx, connection_id=connection.id)
    assert first.run.job_run_id is not None
    jobs_service.cancel_job(db, ctx, job_id=first.run.job_run_id)  # queued: cancelled at once

    [second] = runs.request_participant_sync(db, ctx, connection_id=connection.id)

    assert not second.joined and second.run.id != first.run.id
    assert first.run.status == SyncStatus.CANCELLED
    assert runs.active_run(db, event_link.id).id == second.run.id  # type: ignore[union-attr]


# --- fetch -> stage ---------------------------------------------------------------------------


def _stage_only(db: Session, ctx: TenantContext, keyring: Keyring,
                connection: ProviderConnection, run: SyncRun) -> JobHandle:
    from racehub.sync import service

    handle = JobHandle(db, job_of(db, run), None)
    assert run.link_id is not None
    event_link = db.get(runs.EventLink, run.link_id)
    assert event_link is not None
    with adapters.build_adapter(connection, service.read_credentials(keyring, connection)) as a:
        engine.stage(handle, db, run, event_link, connection, a)
    return handle


def test_the_fetch_stages_every_page_and_names_the_rows_it_could_not_read(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink,
) -> None:
    simulator_ = sim[0]
    [request] = runs.request_participant_sync(db, ctx, connection_id=connection.id)
    simulator_.faults.arm("malformed_rows", 1, rows=[1, 3])

    handle = _stage_only(db, ctx, keyring, connection, request.run)

    event_id = int(event_link.provider_event_ref.split(":")[1])
    served = len(simulator_.participants[event_id])
    participants = _staged(db, request.run, StagedKind.PARTICIPANT)
    problems = _staged(db, request.run, StagedKind.PROBLEM)
    assert len(participants) == served - 2 and len(problems) == 2
    assert request.run.fetched == served and request.run.problems == 2
    assert {p.data["field"] for p in problems} == {"user.dob", "user"}
    assert all(p.source_ref and p.data["ref"] == p.source_ref for p in problems)
    assert "raw" not in problems[0].data  # a problem names the row, it does not keep it
    withdrawals = _staged(db, request.run, StagedKind.WITHDRAWAL)
    assert len(withdrawals) == len(simulator_.removed[event_id]) == 3
    assert handle.checkpoint["staged"] is True
    assert handle.run.done == served and handle.run.counts["fetched"] == served


def test_an_incremental_read_asks_from_the_cursor_minus_the_overlap(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink,
) -> None:
    from datetime import timedelta

    from tests.sync.engine_helpers import T0

    simulator_ = sim[0]
    event_link.cursor = T0
    [request] = runs.request_participant_sync(db, ctx, connection_id=connection.id)
    simulator_.faults.clear()

    _stage_only(db, ctx, keyring, connection, request.run)

    asked = {r.params.get("modified_after_timestamp") for r in simulator_.faults.seen()
             if "participants" in r.path or "removed" in r.path}
    assert asked == {str(int((T0 - timedelta(minutes=10)).timestamp()))}
    assert engine.since_of(request.run, event_link, timedelta(minutes=10)) == \
        T0 - timedelta(minutes=10)
    request.run.full_refresh = True
    assert engine.since_of(request.run, event_link, timedelta(minutes=10)) is None


# --- failed attempts ---------------------------------------------------------------------------


def test_a_read_failing_midway_applies_nothing_and_retries_after_2_4_8_minutes(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink,
) -> None:
    simulator_ = sim[0]
    connection.settings = {**connection.settings, "max_attempts": 1}
    [request] = runs.request_participant_sync(db, ctx, connection_id=connection.id)
    run, clock = request.run, Clock()
    first_job = run.job_run_id

    def failing_after_two_pages(connection: ProviderConnection, credentials: Any) -> Any:
        adapter = adapters.build_adapter(connection, credentials)
        read = adapter.list_participants

        def list_participants(ref: str, since: Any = None) -> Iterator[Any]:
            for number, page in enumerate(read(ref, since=since), start=1):
                yield page
                if number == 2:  # two pages read (and staged), then the provider fails
                    simulator_.faults.arm("http_500", -1)

        setattr(adapter, "list_participants", list_participants)  # noqa: B010
        return adapter

    waits = []
    for number in (1, 2, 3):
        with pytest.raises(RetryScheduled):
            attempt(db, ctx, keyring, run, clock=clock, adapter_factory=failing_after_two_pages)
        assert run.status == SyncStatus.RETRYING and run.retryable is True
        assert run.attempts == number
        assert run.next_attempt_at is not None
        waits.append(run.next_attempt_at - clock.now)
        assert _staged(db, run) == []
        assert db.scalar(select(func.count()).select_from(SyncedRecord)) == 0
        assert event_link.cursor is None
        assert run.error and "500" in run.error
        job = job_of(db, run)  # the same job waits: the runner's retry policy decided alike
        assert job.id == first_job and job.status == JobStatus.QUEUED
        assert (job.retry_at, job.retries) == (run.next_attempt_at, number)
        clock.now = run.next_attempt_at
        simulator_.faults.clear()
    assert [w.total_seconds() / 60 for w in waits] == [2, 4, 8]

    with pytest.raises(ProviderDown):
        attempt(db, ctx, keyring, run, clock=clock, adapter_factory=failing_after_two_pages)
    assert run.status == SyncStatus.FAILED and run.attempts == 4
    assert job_of(db, run).status == JobStatus.FAILED
    # The re-attempts were retries of the manual run: it stays manual, its attempts count.
    assert run.trigger == SyncTrigger.MANUAL
    assert runs.list_runs(db, ctx, filters=runs.RunFilter(retried=True))[0] == [run]
    assert runs.list_runs(db, ctx, filters=runs.RunFilter(retried=False))[0] == []
    assert run.next_attempt_at is None and run.finished_at == clock.now
    assert runs.active_run(db, event_link.id) is None


def test_bad_credentials_fail_at_once_and_the_error_names_no_secret(
    db: Session, ctx: TenantContext, tenant: Any, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str],
) -> None:
    simulator_, base = sim
    wrong = {"api_key": "wrong-key-0123456789", "api_secret": "wrong-secret-0123456789"}
    connection = connect(db, ctx, keyring, base, credentials=wrong, auth_style="query")
    link(db, connection, make_event(db, tenant), event_ref(simulator_))
    [request] = runs.request_participant_sync(db, ctx, connection_id=connection.id)
    first_job = request.run.job_run_id

    with pytest.raises(AuthFailed):
        attempt(db, ctx, keyring, request.run)

    run = request.run
    assert run.status == SyncStatus.FAILED and run.retryable is False and run.attempts == 1
    assert run.error and "Key authentication failed" in run.error
    assert wrong["api_key"] not in run.error and wrong["api_secret"] not in run.error
    assert run.job_run_id == first_job and run.next_attempt_at is None
    assert job_of(db, run).status == JobStatus.FAILED and job_of(db, run).retry_at is None
