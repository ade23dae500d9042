"""Retry policies: a kind declared with ``retry=PROVIDER_OUTAGES`` retries provider
outages and throttling after 2, 4 and 8 minutes, then gives up; other errors fail at once.
The run says it waits, and until when, and keeps its checkpoint. Then procrastinate's
side: the queue's job comes back with ``scheduled_at`` at that time (a real in-process
worker), and the priority a run is started with.

The runner gets a fixed clock; the worker test moves the queue's job to "now" instead of
waiting for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from procrastinate import Blueprint, PsycopgConnector
from procrastinate.exceptions import JobAborted
from procrastinate.jobs import Job
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.db.session import libpq_url
from racehub.jobs import runner
from racehub.jobs import service as jobs_service
from racehub.jobs.handle import RunningJob
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.queue import load_tasks
from racehub.jobs.registry import get_kind
from racehub.jobs.retry import JOB_RETRY, PROVIDER_OUTAGES, RetryScheduled
from racehub.jobs.runner import job_task, run_job
from racehub.providers.errors import AuthFailed, BadData, NotFound, ProviderDown, Throttled
from tests.factories import make_tenant, system_ctx
from tests.jobs.helpers import RECORD_ITEMS_KIND, log_messages

Factory = sessionmaker[Session]
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
FLAKY_KIND = "tests.flaky"

ERRORS: dict[str, Exception] = {
    "down": ProviderDown("503 Service Unavailable", provider="runsignup", status=503),
    "timeout": ProviderDown("timed out (ReadTimeout)", provider="runsignup"),
    "throttled": Throttled("429 Too Many Requests", provider="runsignup", status=429),
    "auth": AuthFailed("401 Unauthorized", provider="runsignup", status=401),
}


def flaky(handle: RunningJob, db: Session, ctx: TenantContext, *, failures: list[str]) -> None:
    """Each attempt commits itself to the checkpoint (with what the handle said of it),
    then fails with the next of ``failures``, if any is left."""
    attempts = [*handle.checkpoint.get("attempts", []),
                {"retries": handle.retries, "is_retry": handle.is_retry}]
    handle.commit_batch(checkpoint={"attempts": attempts}, done=len(attempts))
    if len(attempts) <= len(failures):
        raise ERRORS[failures[len(attempts) - 1]]


_blueprint = Blueprint()
job_task(_blueprint, kind=FLAKY_KIND, label="Flaky", permission=Perm.EVENTS_PARTICIPANT_WRITE,
         retry=PROVIDER_OUTAGES)(flaky)
load_tasks().add_tasks_from(_blueprint, namespace="tests_retry")


@pytest.fixture
def ctx(committed_db: Factory) -> TenantContext:
    with committed_db() as db:
        tenant = make_tenant(db)
        db.commit()
    return system_ctx(tenant)


def start(factory: Factory, ctx: TenantContext, *failures: str, priority: int = 0) -> JobRun:
    with factory() as db:
        run = jobs_service.start_job(db, ctx, kind=FLAKY_KIND, params={"failures": failures},
                                     priority=priority)
        db.commit()
        return run


def load(factory: Factory, run_id: uuid.UUID) -> JobRun:
    with factory() as db:
        run = db.get(JobRun, run_id)
        assert run is not None
        return run


def attempt(factory: Factory, run_id: uuid.UUID, *, now: datetime = T0) -> None:
    """One attempt, as the kind's task makes it, at ``now``."""
    run_job(None, str(run_id), flaky, factory=factory, retry=PROVIDER_OUTAGES,
            clock=lambda: now)


def queue_row(factory: Factory, job_id: int | None) -> dict[str, Any]:
    with factory() as db:
        return dict(db.execute(text(
            "SELECT status::text AS status, attempts, priority, scheduled_at "
            "FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}).mappings().one())


# --- the policy ---------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["down", "timeout", "throttled"])
def test_outages_and_throttling_are_retried_after_2_4_and_8_minutes_then_not(
    error: str
) -> None:
    waits = [PROVIDER_OUTAGES.next_attempt_at(ERRORS[error], retries=n, now=T0)
             for n in range(4)]

    assert waits == [T0 + timedelta(minutes=2), T0 + timedelta(minutes=4),
                     T0 + timedelta(minutes=8), None]


@pytest.mark.parametrize("error", [
    AuthFailed("bad key"), NotFound("no such event"), BadData("row 3 unreadable"),
    ValueError("a bug"),
])
def test_permanent_errors_are_never_retried(error: Exception) -> None:
    assert PROVIDER_OUTAGES.next_attempt_at(error, retries=0, now=T0) is None


def test_a_longer_retry_after_from_the_provider_is_honoured_up_to_an_hour() -> None:
    def wait(retry_after: float) -> timedelta | None:
        at = PROVIDER_OUTAGES.next_attempt_at(Throttled("slow down", retry_after=retry_after),
                                              retries=0, now=T0)
        return at - T0 if at else None

    assert [wait(30), wait(600), wait(86400)] == [
        timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1)]


def test_procrastinate_requeues_a_scheduled_retry_at_its_time_and_a_shutdown_at_once() -> None:
    job = Job(id=1, queue="default", lock=None, queueing_lock=None, task_name="tests:x")

    scheduled = JOB_RETRY.get_retry_decision(exception=RetryScheduled(T0), job=job)
    at_shutdown = JOB_RETRY.get_retry_decision(exception=JobAborted(), job=job)

    assert scheduled is not None and scheduled.retry_at == T0
    assert at_shutdown is not None and at_shutdown.retry_at is None  # no wait: at once
    assert JOB_RETRY.get_retry_decision(exception=ProviderDown("down"), job=job) is None
    assert JOB_RETRY.get_retry_decision(exception=ValueError("bug"), job=job) is None


def test_the_kind_declares_its_policy() -> None:
    assert get_kind(FLAKY_KIND).retry is PROVIDER_OUTAGES
    assert get_kind(RECORD_ITEMS_KIND).retry is None


# --- the run ------------------------------------------------------------------------------


def test_a_failed_attempt_waits_queued_saying_when_and_keeps_its_checkpoint(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, "down").id

    with pytest.raises(RetryScheduled) as raised:
        attempt(committed_db, run_id)

    assert raised.value.retry_at == T0 + timedelta(minutes=2)
    assert isinstance(raised.value.__cause__, ProviderDown)
    run = load(committed_db, run_id)
    assert (run.status, run.stage, run.retries, run.retry_at) == (
        JobStatus.QUEUED, "Retrying at 12:02 UTC (attempt 2 of 4)", 1,
        T0 + timedelta(minutes=2))
    assert run.message == "runsignup: 503 Service Unavailable"
    assert (run.error, run.finished_at) == (None, None)
    assert run.checkpoint == {"attempts": [{"retries": 0, "is_retry": False}]}
    waiting = run.log[-1]
    assert (waiting["message"], waiting["retry"], waiting["retry_at"]) == (
        "failed; will retry", 1, "2026-12-07T12:02:00+00:00")

    attempt(committed_db, run_id, now=T0 + timedelta(minutes=2))

    run = load(committed_db, run_id)
    assert (run.status, run.stage, run.retries, run.retry_at, run.attempts) == (
        JobStatus.COMPLETED, "Done", 1, None, 2)
    # The retry continued from the checkpoint, and knew it was a retry.
    assert run.checkpoint == {"attempts": [{"retries": 0, "is_retry": False},
                                           {"retries": 1, "is_retry": True}]}
    assert log_messages(run) == [
        "queued", "failed; will retry", "retry 1 after a failed attempt; continuing from "
        "checkpoint", "completed"]


def test_after_the_third_retry_fails_the_run_gives_up(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, "down", "throttled", "timeout", "down").id
    stages = []

    for minutes in (0, 2, 6):
        with pytest.raises(RetryScheduled):
            attempt(committed_db, run_id, now=T0 + timedelta(minutes=minutes))
        stages.append(load(committed_db, run_id).stage)
    with pytest.raises(ProviderDown):
        attempt(committed_db, run_id, now=T0 + timedelta(minutes=14))

    assert stages == ["Retrying at 12:02 UTC (attempt 2 of 4)",
                      "Retrying at 12:06 UTC (attempt 3 of 4)",
                      "Retrying at 12:14 UTC (attempt 4 of 4)"]
    run = load(committed_db, run_id)
    assert (run.status, run.stage, run.retries, run.retry_at) == (
        JobStatus.FAILED, "Failed", 3, None)
    assert run.message == "gave up after 3 retries: runsignup: 503 Service Unavailable"
    assert run.error_summary == "racehub.providers.errors.ProviderDown: runsignup: 503 Service " \
                                "Unavailable"
    assert run.finished_at is not None
    assert len(run.checkpoint["attempts"]) == 4


def test_a_permanent_error_fails_the_run_at_once_even_after_a_retry(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, "down", "auth").id
    with pytest.raises(RetryScheduled):
        attempt(committed_db, run_id)

    with pytest.raises(AuthFailed):
        attempt(committed_db, run_id, now=T0 + timedelta(minutes=2))

    run = load(committed_db, run_id)
    assert (run.status, run.stage, run.retries, run.message) == (
        JobStatus.FAILED, "Failed", 1, "runsignup: 401 Unauthorized")


def test_a_kind_without_a_policy_does_not_retry_an_outage(
    committed_db: Factory, ctx: TenantContext
) -> None:
    run_id = start(committed_db, ctx, "down").id

    with pytest.raises(ProviderDown):
        run_job(None, str(run_id), flaky, factory=committed_db, clock=lambda: T0)

    run = load(committed_db, run_id)
    assert (run.status, run.retries, run.message) == (
        JobStatus.FAILED, 0, "runsignup: 503 Service Unavailable")


def test_a_run_waiting_to_retry_is_paused_or_cancelled_at_once_and_leaves_the_queue(
    committed_db: Factory, ctx: TenantContext
) -> None:
    paused, cancelled = start(committed_db, ctx, "down"), start(committed_db, ctx, "down")
    for run in (paused, cancelled):
        with pytest.raises(RetryScheduled):
            attempt(committed_db, run.id)
    with committed_db() as db:
        jobs_service.pause_job(db, ctx, job_id=paused.id)
        jobs_service.cancel_job(db, ctx, job_id=cancelled.id)
        db.commit()

    # Their queue jobs no longer hold the kind's lock until the retry time.
    assert queue_row(committed_db, paused.queue_job_id)["status"] == "cancelled"
    assert queue_row(committed_db, cancelled.queue_job_id)["status"] == "cancelled"
    run = load(committed_db, paused.id)
    assert (run.status, run.stage, run.retry_at, run.retries) == (
        JobStatus.PAUSED, "Paused", None, 1)
    run = load(committed_db, cancelled.id)
    assert (run.status, run.stage, run.retry_at) == (JobStatus.CANCELLED, "Cancelled", None)

    with committed_db() as db:
        resumed = jobs_service.resume_job(db, ctx, job_id=paused.id)
        db.commit()
    assert queue_row(committed_db, resumed.queue_job_id)["status"] == "todo"
    attempt(committed_db, paused.id, now=T0 + timedelta(minutes=30))
    run = load(committed_db, paused.id)
    assert (run.status, run.retries) == (JobStatus.COMPLETED, 1)
    # Resumed by an operator, not by the policy: not a retry.
    assert run.checkpoint["attempts"][-1] == {"retries": 1, "is_retry": False}


# --- the queue ----------------------------------------------------------------------------


@pytest.fixture
def in_process_worker(committed_db: Factory, database_url: str,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Runs procrastinate's worker here until the queue has nothing due (``wait=False``);
    task bodies use the test database."""
    monkeypatch.setattr(runner, "worker_sessionmaker", lambda: committed_db)

    async def work() -> None:
        # A connector of its own: the app's stays as web code uses it (on a connection).
        connector = PsycopgConnector(conninfo=libpq_url(database_url), min_size=1, max_size=4)
        with load_tasks().replace_connector(connector) as app:
            async with app.open_async():
                await app.run_worker_async(wait=False, install_signal_handlers=False,
                                           listen_notify=False, name="retry-test")

    yield lambda: asyncio.run(work())


def test_the_worker_puts_a_failed_attempt_back_in_the_queue_for_its_retry_time(
    committed_db: Factory, ctx: TenantContext, in_process_worker: Any
) -> None:
    run = start(committed_db, ctx, "down")

    before = datetime.now(UTC)
    in_process_worker()
    after = datetime.now(UTC)

    job = queue_row(committed_db, run.queue_job_id)
    assert (job["status"], job["attempts"]) == ("todo", 1)
    assert before + timedelta(minutes=2) <= job["scheduled_at"] <= after + timedelta(minutes=2)
    waiting = load(committed_db, run.id)
    assert (waiting.status, waiting.retries, waiting.retry_at) == (
        JobStatus.QUEUED, 1, job["scheduled_at"])

    with committed_db() as db:  # two minutes later
        db.execute(text("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = :id"),
                   {"id": run.queue_job_id})
        db.commit()
    in_process_worker()

    assert queue_row(committed_db, run.queue_job_id)["status"] == "succeeded"
    done = load(committed_db, run.id)
    assert (done.status, done.retries) == (JobStatus.COMPLETED, 1)
    assert [a["is_retry"] for a in done.checkpoint["attempts"]] == [False, True]


def test_priority_goes_to_the_queue_and_stays_with_a_resumed_run(
    committed_db: Factory, ctx: TenantContext
) -> None:
    default, manual = start(committed_db, ctx), start(committed_db, ctx, priority=10)

    assert queue_row(committed_db, default.queue_job_id)["priority"] == 0
    assert queue_row(committed_db, manual.queue_job_id)["priority"] == 10
    assert (default.priority, manual.priority) == (0, 10)

    with committed_db() as db:
        jobs_service.pause_job(db, ctx, job_id=manual.id)
        db.commit()
    run_job(None, str(manual.id), flaky, factory=committed_db)
    with committed_db() as db:
        resumed = jobs_service.resume_job(db, ctx, job_id=manual.id)
        db.commit()
    assert resumed.queue_job_id != manual.queue_job_id
    assert queue_row(committed_db, resumed.queue_job_id)["priority"] == 10

