"""Create, read and control job runs. Tasks report through ``runner.JobHandle``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Forbidden
from racehub.jobs.exceptions import JobNotFound, JobStateConflict
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.queue import defer_on
from racehub.jobs.registry import get_kind

LOG_LIMIT = 200


def _now() -> datetime:
    return datetime.now(UTC)


def append_log(run: JobRun, message: str, **data: Any) -> None:
    entry = {"at": _now().isoformat(), "message": message, **data}
    run.log = [*(run.log or []), entry][-LOG_LIMIT:]


def start_job(
    db: Session, ctx: TenantContext, *, kind: str, params: dict[str, Any], message: str = ""
) -> JobRun:
    """Create the run and enqueue its task in the caller's transaction (both or neither)."""
    job_kind = get_kind(kind)
    run = JobRun(
        tenant_id=ctx.tenant_id,
        kind=kind,
        requested_by_user_id=ctx.user_id,
        requested_by_label=ctx.actor_label,
        params=params,
        message=message,
        counts={},
        log=[],
        checkpoint={},
    )
    db.add(run)
    db.flush()  # the task receives the run's id
    append_log(run, "queued", by=ctx.actor_label)
    _enqueue(db, run, job_kind.lock)
    audit.record(db, ctx, action="job.start", target_type="job", target_id=run.id,
                 after={"kind": kind, "params": params})
    return run


def _enqueue(db: Session, run: JobRun, lock: str | None) -> None:
    job_kind = get_kind(run.kind)
    lock_key = lock.format(tenant_id=run.tenant_id, **run.params) if lock else None
    run.queue_job_id = defer_on(db, job_kind.task, lock=lock_key).defer(job_run_id=str(run.id))


def get_job_or_raise(db: Session, ctx: TenantContext, *, job_id: uuid.UUID) -> JobRun:
    run = db.scalar(select(JobRun).where(JobRun.id == job_id, JobRun.tenant_id == ctx.tenant_id))
    if run is None:
        raise JobNotFound()
    return run


def list_jobs(
    db: Session, ctx: TenantContext, *, kind: str | None = None, limit: int = 20
) -> list[JobRun]:
    stmt = select(JobRun).where(JobRun.tenant_id == ctx.tenant_id)
    if kind:
        stmt = stmt.where(JobRun.kind == kind)
    return list(db.scalars(stmt.order_by(JobRun.created_at.desc(), JobRun.id).limit(limit)))


def _controllable(db: Session, ctx: TenantContext, job_id: uuid.UUID) -> JobRun:
    # Locked: the worker updates the same row (status, log) while the operator acts on it.
    run = db.scalar(select(JobRun).where(JobRun.id == job_id, JobRun.tenant_id == ctx.tenant_id)
                    .with_for_update().execution_options(populate_existing=True))
    if run is None:
        raise JobNotFound()
    permission = get_kind(run.kind).permission
    if not ctx.can(permission):
        raise Forbidden(f"controlling this job needs the '{permission.value}' permission")
    return run


def cancel_job(db: Session, ctx: TenantContext, *, job_id: uuid.UUID) -> JobRun:
    run = _controllable(db, ctx, job_id)
    if run.status.is_terminal:
        raise JobStateConflict(f"the job is already {run.status.value}")
    if run.status in (JobStatus.QUEUED, JobStatus.PAUSED):
        # Not running anywhere: cancel at once. A queued task that starts later sees it.
        run.status = JobStatus.CANCELLED
        run.stage = "Cancelled"
        run.finished_at = _now()
    run.cancel_requested = True
    append_log(run, "cancel requested", by=ctx.actor_label)
    audit.record(db, ctx, action="job.cancel", target_type="job", target_id=run.id)
    return run


def pause_job(db: Session, ctx: TenantContext, *, job_id: uuid.UUID) -> JobRun:
    run = _controllable(db, ctx, job_id)
    if run.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise JobStateConflict(f"only a queued or running job can be paused, not a "
                               f"{run.status.value} one")
    run.pause_requested = True
    append_log(run, "pause requested", by=ctx.actor_label)
    audit.record(db, ctx, action="job.pause", target_type="job", target_id=run.id)
    return run


def resume_job(db: Session, ctx: TenantContext, *, job_id: uuid.UUID) -> JobRun:
    run = _controllable(db, ctx, job_id)
    if run.status != JobStatus.PAUSED:
        if run.pause_requested and run.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            run.pause_requested = False  # withdrawn before the task reached a batch boundary
            return run
        raise JobStateConflict(f"only a paused job can be resumed, not a {run.status.value} one")
    run.pause_requested = False
    run.status = JobStatus.QUEUED
    run.stage = "Queued"
    append_log(run, "resumed", by=ctx.actor_label)
    _enqueue(db, run, get_kind(run.kind).lock)
    audit.record(db, ctx, action="job.resume", target_type="job", target_id=run.id)
    return run
