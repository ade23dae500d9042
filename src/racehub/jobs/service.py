"""Create, read and control job runs. Tasks report through ``runner.JobHandle``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, text
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Forbidden, Invalid
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.rbac import Perm
from racehub.jobs.exceptions import JobNotFound, JobStateConflict
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.queue import defer_on
from racehub.jobs.registry import JobKind, Needs, Owner, Subject, get_kind, load_kinds

LOG_LIMIT = 200
DEFAULT_PRIORITY = 0  # procrastinate's default


def _now() -> datetime:
    return datetime.now(UTC)


def append_log(run: JobRun, message: str, **data: Any) -> None:
    entry = {"at": _now().isoformat(), "message": message, **data}
    run.log = [*(run.log or []), entry][-LOG_LIMIT:]


def start_job(
    db: Session, ctx: TenantContext, *, kind: str, params: dict[str, Any], message: str = "",
    subject_id: uuid.UUID | None = None, priority: int = DEFAULT_PRIORITY,
) -> JobRun:
    """Create the run and enqueue its task in the caller's transaction (both or neither).

    ``subject_id`` is the row the run works on, of the kind's subject type: who may read
    and control the run depends on it (``access_of``). ``priority``: among the jobs a
    worker may take, the higher runs first (a run someone waits for before a scheduled
    one); it stays the run's for its retries and resumes."""
    job_kind = get_kind(kind)
    if job_kind.subject is not None and subject_id is None:
        raise ValueError(f"a {kind} run needs its subject (a {job_kind.subject.type} id)")
    if job_kind.subject is None and subject_id is not None:
        raise ValueError(f"a {kind} run has no subject")
    run = JobRun(
        tenant_id=ctx.tenant_id,
        kind=kind,
        subject_type=job_kind.subject.type if job_kind.subject else None,
        subject_id=subject_id,
        requested_by_user_id=ctx.user_id,
        requested_by_label=ctx.actor_label,
        params=params,
        message=message,
        priority=priority,
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
    run.queue_job_id = defer_on(db, job_kind.task, lock=lock_key, priority=run.priority).defer(
        job_run_id=str(run.id))


# --- who may read and control a run: the one rule ------------------------------------------


@dataclass(frozen=True)
class JobAccess:
    """What reading and controlling one run need, and what the caller lacks of it."""

    read_needs: frozenset[Perm]
    control_needs: frozenset[Perm]  # reading included: nobody controls what they cannot see
    missing_read: frozenset[Perm]
    missing_control: frozenset[Perm]

    @property
    def can_read(self) -> bool:
        return not self.missing_read

    @property
    def can_control(self) -> bool:
        return not self.missing_control

    def require_read(self) -> None:
        if self.missing_read:
            raise Forbidden(f"reading this job needs {_named(self.missing_read)}")

    def require_control(self) -> None:
        if self.missing_control:
            raise Forbidden(f"controlling this job needs {_named(self.missing_control)}")


def _named(perms: frozenset[Perm]) -> str:
    names = [f"'{p.value}'" for p in sorted(perms)]
    return ("the " + names[0] + " permission" if len(names) == 1
            else "the permissions " + ", ".join(names))


def _strictest(subject: Subject) -> Needs:
    assert subject.known_keys is not None and subject.needs is not None
    every = [subject.needs(key) for key in subject.known_keys()]
    return Needs(read=frozenset().union(*(n.read for n in every)),
                 control=frozenset().union(*(n.control for n in every)))


def _subject_needs(db: Session, run: JobRun, subject: Subject | None) -> Needs:
    if subject is None or not subject.has_rule:
        return Needs()
    assert subject.known_keys is not None and subject.needs is not None
    key = None
    if run.subject_type == subject.type and run.subject_id is not None:
        model = subject.key.class_
        key = db.scalar(select(subject.key).where(model.id == run.subject_id,
                                                  model.tenant_id == run.tenant_id))
    if key is None or key not in set(subject.known_keys()):
        return _strictest(subject)  # a run without its subject: the rule's strictest case
    return subject.needs(key)


def access_of(db: Session, ctx: TenantContext, run: JobRun) -> JobAccess:
    """Who may read and control ``run``: its kind's permissions plus what its subject adds.

    Every route reading or controlling a run goes through here (or through ``readable``,
    its form as a query filter for lists): /api/jobs, the job page and its buttons, and
    the import and export routes that control their run."""
    job_kind = load_kinds().get(run.kind)
    if job_kind is None:  # a kind no code declares any more: only those holding everything
        read = control = frozenset(Perm)
    else:
        needs = _subject_needs(db, run, job_kind.subject)
        read = frozenset({job_kind.read_permission}) | needs.read
        control = read | {job_kind.permission} | needs.control
    return JobAccess(read_needs=read, control_needs=control,
                     missing_read=read - ctx.permissions,
                     missing_control=control - ctx.permissions)


def _readable_of_kind(ctx: TenantContext, job_kind: JobKind) -> ColumnElement[bool] | None:
    """``access_of(...).can_read`` for runs of one kind, as a filter (None: none readable)."""
    if not ctx.can(job_kind.read_permission):
        return None
    condition = JobRun.kind == job_kind.kind
    subject = job_kind.subject
    if subject is None or not subject.has_rule:
        return condition
    assert subject.known_keys is not None and subject.needs is not None
    keys = list(subject.known_keys())
    allowed = [key for key in keys if subject.needs(key).read <= ctx.permissions]
    if len(allowed) == len(keys):
        return condition  # every subject readable, a missing one too (its strictest case)
    model = subject.key.class_
    return and_(condition, JobRun.subject_type == subject.type, JobRun.subject_id.in_(
        select(model.id).where(model.tenant_id == ctx.tenant_id, subject.key.in_(allowed))))


def readable(ctx: TenantContext) -> ColumnElement[bool]:
    """The runs ``ctx`` may read, as a filter on JobRun (the same rule as ``access_of``)."""
    kinds = load_kinds()
    clauses = [c for c in (_readable_of_kind(ctx, k) for k in kinds.values()) if c is not None]
    if ctx.permissions >= frozenset(Perm):
        clauses.append(JobRun.kind.not_in(list(kinds)))
    return or_(false(), *clauses)


# --- reading ---------------------------------------------------------------------------------


def get_job_or_raise(db: Session, ctx: TenantContext, *, job_id: uuid.UUID) -> JobRun:
    """The tenant's run, if the caller may read it (403 naming what reading it needs)."""
    run = db.scalar(select(JobRun).where(JobRun.id == job_id, JobRun.tenant_id == ctx.tenant_id))
    if run is None:
        raise JobNotFound()
    access_of(db, ctx, run).require_read()
    return run


def get_readable_job(db: Session, ctx: TenantContext, *, job_id: uuid.UUID) -> JobRun | None:
    """The tenant's run if the caller may read it, else None: for pages that show a run's
    progress beside what it works on, and nothing where the caller may not see it."""
    run = db.scalar(select(JobRun).where(JobRun.id == job_id, JobRun.tenant_id == ctx.tenant_id))
    if run is None or not access_of(db, ctx, run).can_read:
        return None
    return run


JOB_SORT = SortKey((JobRun.created_at, JobRun.id), descending=True)


@dataclass(frozen=True)
class JobFilters:
    """The jobs list's filters: the kind, the state, the event the runs belong to (by
    their kind's ``of_event``), who asked for them (as the run names them)."""

    kind: str | None = None
    status: JobStatus | None = None
    event_id: uuid.UUID | None = None
    requested_by: str | None = None


def of_event(ctx: TenantContext, event_id: uuid.UUID) -> ColumnElement[bool]:
    """The runs belonging to one event, each kind saying which of its runs do."""
    kinds = load_kinds().values()
    return or_(false(), *(k.of_event(ctx, event_id) for k in kinds if k.of_event is not None))


def page_jobs(
    db: Session, ctx: TenantContext, *, filters: JobFilters, cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[JobRun], str | None]:
    """One keyset page of the tenant's runs the caller may read (the rule of ``access_of``,
    as ``readable``), newest first."""
    check_limit(limit)
    if filters.kind is not None and filters.kind not in load_kinds():
        raise Invalid(f"kind must be one of {', '.join(sorted(load_kinds()))}", field="kind")
    stmt = select(JobRun).where(JobRun.tenant_id == ctx.tenant_id, readable(ctx))
    if filters.kind:
        stmt = stmt.where(JobRun.kind == filters.kind)
    if filters.status:
        stmt = stmt.where(JobRun.status == filters.status)
    if filters.event_id:
        stmt = stmt.where(of_event(ctx, filters.event_id))
    if filters.requested_by:
        stmt = stmt.where(func.lower(JobRun.requested_by_label)
                          == filters.requested_by.strip().lower())
    rows = db.scalars(apply_keyset(stmt, JOB_SORT, cursor, limit)).all()
    return split_page(rows, limit, lambda r: (r.created_at, r.id))


def belongs_to(db: Session, ctx: TenantContext, run: JobRun) -> list[Owner]:
    """What ``run`` belongs to (the event, the number type, the connection...), as its
    kind says; its page links back to each."""
    job_kind = load_kinds().get(run.kind)
    if job_kind is None or job_kind.belongs_to is None:
        return []
    return job_kind.belongs_to(db, ctx, run)


def kind_choices(ctx: TenantContext) -> list[tuple[str, str]]:
    """(kind, label) of the kinds whose runs the caller may read at all, by label."""
    return sorted(((k.kind, k.label) for k in load_kinds().values()
                   if ctx.can(k.read_permission)), key=lambda c: c[1])


# --- control ---------------------------------------------------------------------------------


def _controllable(db: Session, ctx: TenantContext, job_id: uuid.UUID) -> JobRun:
    # Locked: the worker updates the same row (status, log) while the operator acts on it.
    run = db.scalar(select(JobRun).where(JobRun.id == job_id, JobRun.tenant_id == ctx.tenant_id)
                    .with_for_update().execution_options(populate_existing=True))
    if run is None:
        raise JobNotFound()
    access_of(db, ctx, run).require_control()
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
        _stop_waiting_for_retry(db, run)
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
    if run.retry_at is not None:  # waiting for a retry: paused now, resumed by a new job
        _stop_waiting_for_retry(db, run)
        run.status = JobStatus.PAUSED
        run.stage = "Paused"
        append_log(run, "paused", checkpoint=run.checkpoint)
    audit.record(db, ctx, action="job.pause", target_type="job", target_id=run.id)
    return run


def _stop_waiting_for_retry(db: Session, run: JobRun) -> None:
    """Take a run waiting for its retry out of the queue: its job there would hold the
    kind's lock (blocking the runs queued after it) until the retry time."""
    if run.retry_at is None:
        return
    run.retry_at = None
    if run.queue_job_id is not None:
        db.execute(text("SELECT procrastinate_cancel_job_v1(:id, false, false)"),
                   {"id": run.queue_job_id})


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
    run.retry_at = None
    append_log(run, "resumed", by=ctx.actor_label)
    _enqueue(db, run, get_kind(run.kind).lock)
    audit.record(db, ctx, action="job.resume", target_type="job", target_id=run.id)
    return run
