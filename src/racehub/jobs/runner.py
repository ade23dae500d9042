"""Running a JobRun inside a procrastinate task: progress, checkpoints, pause and cancel.

A task body gets a ``JobHandle`` and works in batches. ``commit_batch`` commits the
batch's rows together with the checkpoint that says they are done, so a run that is
resumed, or retried after its worker died, continues exactly where the last commit left
it: nothing is repeated, nothing skipped. A kind's retry policy (jobs.retry) may retry
a failed attempt later, from the same checkpoint.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import structlog
from procrastinate import Blueprint, JobContext
from procrastinate.exceptions import JobAborted
from procrastinate.job_context import AbortReason
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.jobs.exceptions import JobCancelled, JobInterrupted, JobPaused
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.registry import JOB_KINDS, BelongsTo, JobKind, OfEvent, Subject
from racehub.jobs.retry import JOB_RETRY, RetryPolicy, RetryScheduled
from racehub.jobs.service import append_log

log = structlog.get_logger(__name__)

JobBody = Callable[..., Any]
Clock = Callable[[], datetime]


@lru_cache(maxsize=1)
def worker_sessionmaker() -> sessionmaker[Session]:
    from racehub.db.bootstrap import database_url
    from racehub.db.session import get_engine, make_sessionmaker
    from racehub.settings import get_settings

    return make_sessionmaker(get_engine(database_url(get_settings())))


def _now() -> datetime:
    return datetime.now(UTC)


class JobHandle:
    """What a task body uses to report progress and to honour pause/cancel (the
    ``jobs.handle.RunningJob`` that services take)."""

    def __init__(self, db: Session, run: JobRun, context: JobContext | None, *,
                 is_retry: bool = False) -> None:
        self.db = db
        self.run = run
        self._context = context
        self._is_retry = is_retry

    @property
    def retries(self) -> int:
        return self.run.retries

    @property
    def is_retry(self) -> bool:
        return self._is_retry

    @property
    def checkpoint(self) -> dict[str, Any]:
        return dict(self.run.checkpoint or {})

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.run.params or {})

    def set_progress(
        self,
        *,
        stage: str | None = None,
        done: int | None = None,
        total: int | None = None,
        message: str | None = None,
        counts: dict[str, Any] | None = None,
        commit: bool = True,
    ) -> None:
        run = self.run
        if stage is not None:
            run.stage = stage
        if total is not None:
            run.total = total
        if done is not None:
            run.done = done
        if message is not None:
            run.message = message[:1000]
        if counts is not None:
            run.counts = {**(run.counts or {}), **counts}
        if run.total:
            run.percent = round(min(100.0, 100.0 * run.done / run.total), 1)
        if commit:
            self.db.commit()

    def log(self, message: str, **data: Any) -> None:
        _append_log(self.db, self.run, message, **data)

    def commit_batch(
        self, *, checkpoint: dict[str, Any], done: int, counts: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        """Commit the batch's writes with its checkpoint, then honour pause/cancel."""
        self.run.checkpoint = checkpoint
        self.set_progress(done=done, counts=counts, message=message, commit=False)
        self.db.commit()
        self.check_control()

    def check_control(self) -> None:
        flags = self.db.execute(
            select(JobRun.cancel_requested, JobRun.pause_requested).where(JobRun.id == self.run.id)
        ).one()
        abort = self._context.abort_reason() if self._context is not None else None
        if abort is AbortReason.SHUTDOWN:
            raise JobInterrupted
        if flags.cancel_requested or abort is not None:
            raise JobCancelled
        if flags.pause_requested:
            raise JobPaused


def _append_log(db: Session, run: JobRun, message: str, **data: Any) -> None:
    """Append to the log as it is in the database now, not as this session last read it:
    operators add entries (pause, cancel requested) while the job runs."""
    db.flush()  # keeps entries this transaction added but has not written yet
    db.expire(run, ["log"])
    append_log(run, message, **data)


def run_job(
    context: JobContext | None,
    job_run_id: str,
    body: JobBody,
    factory: sessionmaker[Session] | None = None,
    *,
    retry: RetryPolicy | None = None,
    clock: Clock = _now,
) -> None:
    """One attempt at the run. ``retry`` is its kind's policy for failed attempts."""
    factory = factory or worker_sessionmaker()
    with factory() as db:
        run = db.get(JobRun, uuid.UUID(job_run_id))
        if run is None:
            log.warning("job.run_missing", job_run_id=job_run_id)
            return
        structlog.contextvars.bind_contextvars(job_run_id=job_run_id, tenant_id=str(run.tenant_id),
                                               kind=run.kind)
        if run.status.is_terminal or run.status == JobStatus.PAUSED:
            return
        # Started by the retry policy: the run waited for this attempt since a failure.
        handle = JobHandle(db, run, context, is_retry=run.retry_at is not None)
        try:
            if run.cancel_requested:
                raise JobCancelled
            if run.pause_requested:
                raise JobPaused
            if handle.is_retry:
                run.retry_at = None
                handle.log(f"retry {run.retries} after a failed attempt; continuing from "
                           "checkpoint", checkpoint=run.checkpoint)
            elif run.status == JobStatus.RUNNING:
                # Running already: its worker died and the stalled-job recovery retried it.
                handle.log("restarted after the worker stopped; continuing from checkpoint",
                           checkpoint=run.checkpoint)
            elif run.started_at is not None:
                handle.log("resumed from checkpoint", checkpoint=run.checkpoint)
            run.status = JobStatus.RUNNING
            run.started_at = run.started_at or clock()
            run.attempts += 1
            if run.stage == "Queued" or handle.is_retry:
                run.stage = "Starting"
            db.commit()
            log.info("job.start", attempt=run.attempts, checkpoint=run.checkpoint)
            # The job acts for whoever asked; rights were checked when it was requested.
            ctx = TenantContext(
                tenant_id=run.tenant_id,
                permissions=frozenset(Perm),
                user_id=run.requested_by_user_id,
                actor_label=f"{run.requested_by_label} (job {run.kind})",
            )
            body(handle, db, ctx, **run.params)
            db.commit()
            _finish(db, run, JobStatus.COMPLETED, stage="Done")
        except JobCancelled:
            db.rollback()
            _finish(db, run, JobStatus.CANCELLED, stage="Cancelled")
        except JobPaused:
            db.rollback()
            run.retry_at = None  # paused while waiting to retry: a resume starts it
            run.status = JobStatus.PAUSED
            run.stage = "Paused"
            handle.log("paused", checkpoint=run.checkpoint)
            db.commit()
        except JobInterrupted:
            db.rollback()
            run.status = JobStatus.QUEUED
            run.stage = "Waiting for a worker"
            handle.log("interrupted: the worker is stopping; continues from checkpoint",
                       checkpoint=run.checkpoint)
            db.commit()
            log.info("job.interrupted", checkpoint=run.checkpoint)
            # procrastinate puts a job aborted at shutdown back in the queue (RETRY_AT_SHUTDOWN).
            raise JobAborted from None
        except Exception as exc:
            db.rollback()
            error = str(exc) or exc.__class__.__name__
            retry_at = (retry.next_attempt_at(exc, retries=run.retries, now=clock())
                        if retry is not None else None)
            if retry is not None and retry_at is not None:
                _wait_for_retry(handle, retry, retry_at, error)
                log.warning("job.retry_scheduled", retry=run.retries, retry_at=retry_at,
                            error=error)
                raise RetryScheduled(retry_at) from exc
            run.error = traceback.format_exc()[-8000:]
            if retry is not None and retry.retries(exc):
                error = f"gave up after {run.retries} retries: {error}"
            run.message = error[:1000]
            _finish(db, run, JobStatus.FAILED, stage="Failed")
            log.exception("job.failed")
            raise


def _wait_for_retry(handle: JobHandle, retry: RetryPolicy, retry_at: datetime,
                    error: str) -> None:
    """The run waits for its next attempt: queued, saying when, its checkpoint kept."""
    run = handle.run
    run.retries += 1
    run.retry_at = retry_at
    run.status = JobStatus.QUEUED
    # Attempts counted as the policy sees them: the first one, then one per retry.
    run.stage = (f"Retrying at {retry_at.astimezone(UTC):%H:%M} UTC "
                 f"(attempt {run.retries + 1} of {retry.max_retries + 1})")
    run.message = error[:1000]
    handle.log("failed; will retry", error=error[:1000], retry=run.retries,
               retry_at=retry_at.isoformat(), checkpoint=run.checkpoint)
    handle.db.commit()


def _finish(db: Session, run: JobRun, status: JobStatus, *, stage: str) -> None:
    run.status = status
    run.stage = stage
    run.finished_at = _now()
    if status == JobStatus.COMPLETED:
        run.percent = 100.0
    _append_log(db, run, status.value)
    db.commit()
    log.info("job.finish", status=status.value, done=run.done, total=run.total)


def job_task(
    blueprint: Blueprint,
    *,
    kind: str,
    label: str,
    permission: Perm,
    lock: str | None = None,
    read_permission: Perm = Perm.JOBS_RUN_READ,
    subject: Subject | None = None,
    retry: RetryPolicy | None = None,
    belongs_to: BelongsTo | None = None,
    of_event: OfEvent | None = None,
) -> Callable[[JobBody], Any]:
    """Declare a job kind: ``body(handle, db, ctx, **params)`` runs inside ``run_job``.

    ``permission`` controls a run, ``read_permission`` reads it, and ``subject`` names the
    row a run works on with the rule saying what that row adds (see jobs.registry).
    ``retry`` (jobs.retry, e.g. ``PROVIDER_OUTAGES``) says which failures are tried
    again, and when; without it a failure is final. ``belongs_to`` names what a run
    belongs to (its page links back there), ``of_event`` which runs belong to an event
    (the jobs list's event filter)."""

    def decorator(body: JobBody) -> Any:
        name = kind.split(".", 1)[-1]

        @blueprint.task(name=name, pass_context=True, retry=JOB_RETRY)
        def task(context: JobContext, job_run_id: str) -> None:
            run_job(context, job_run_id, body, retry=retry)

        JOB_KINDS[kind] = JobKind(kind=kind, label=label, permission=permission, task=task,
                                  lock=lock, read_permission=read_permission,
                                  subject=subject, retry=retry, belongs_to=belongs_to,
                                  of_event=of_event)
        return task

    return decorator
