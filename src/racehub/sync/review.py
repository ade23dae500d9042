"""Between staging and applying: a run stops for a person, or goes on.

Once a run's read is staged (``staged`` in its job's checkpoint), ``stop_before_apply``
decides, for every run whatever its trigger:

- the circuit breaker (sync/breaker.py) holds a read that looks like a provider's mistake:
  status ``held`` with its ``hold_reason``;
- else a run asked with ``preview`` (a manual run's choice) stops as ``awaiting_review``;
- else (a scheduled run, or a manual one without preview) it is applied at once.

A run that stops keeps its staged rows and gets its preview (sync/preview.py); its job
ends, and the run stays active (the link's one run: a request meanwhile joins it). A
person then decides, with ``sync:run:start``:

- ``apply_reviewed`` (awaiting review): all, or only some registrations;
- ``confirm_held`` (held): the same choice, confirming the breaker's doubt;
- ``discard``: nothing is applied, the staged rows go, the cursor stays where it was.

Applying defers a job of the run's kind that resumes with ``staged`` set: it reads nothing
again and applies what was chosen; the registrations left out are not applied, and the
link's cursor stays before them so the next run reads them again. Each decision is
audited (``sync.apply``, ``sync.confirm``, ``sync.discard``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime

import structlog
from sqlalchemy import delete
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Conflict
from racehub.core.query import scoped
from racehub.jobs import service as jobs_service
from racehub.jobs.handle import RunningJob
from racehub.jobs.models import JobRun
from racehub.sync import breaker, preview, schedule
from racehub.sync.exceptions import SyncRunNotFound
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    StagedRow,
    SyncRun,
    SyncStatus,
    SyncTrigger,
)
from racehub.sync.runs import PRIORITY_OF, SYNC_PARTICIPANTS_KIND

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class RunNotWaiting(Conflict):
    """Apply, confirm or discard on a run that does not wait for that decision."""


# --- the border (in the run's job) ---------------------------------------------------------


def stop_before_apply(handle: RunningJob, db: Session, run: SyncRun, link: EventLink, *,
                      clock: Clock = _now, limits: breaker.Limits | None = None) -> bool:
    """Whether the staged run stops here for a person (held, or awaiting review) instead of
    being applied. A run a person already decided on goes on. Writes nothing but the run's
    state and its preview; the job commits."""
    if run.reviewed_at is not None:
        return False
    reason = breaker.hold_reason(db, run, link, limits)
    if reason is None and not run.preview:
        return False
    counts = preview.build_preview(db, run, link)
    run.status = SyncStatus.HELD if reason else SyncStatus.AWAITING_REVIEW
    run.hold_reason = reason
    run.waiting_since = clock()
    would = ", ".join(f"{n} {action}" for action, n in counts.items() if n)
    if reason:
        handle.log("held by the circuit breaker", reason=reason, preview=counts)
        log.warning("sync.held", sync_run_id=str(run.id), reason=reason)
        message = f"held: {reason}"
    else:
        message = "read: waiting for someone to review and apply it"
    # The job's counts stay what it did (it read); what applying would do is the message's.
    handle.set_progress(stage="Held" if reason else "Awaiting review",
                        message=f"{message} (preview: {would or 'nothing'})",
                        counts={"fetched": run.fetched, "problems": run.problems},
                        commit=False)
    return True


# --- a person's decision (API) -----------------------------------------------------------


def _waiting_run(db: Session, ctx: TenantContext, run_id: uuid.UUID) -> SyncRun:
    # Locked: two people deciding at once decide one after the other (the second is told).
    run = db.scalar(scoped(ctx, SyncRun).where(SyncRun.id == run_id).with_for_update()
                    .execution_options(populate_existing=True))
    if run is None:
        raise SyncRunNotFound()
    return run


def _refuse(run: SyncRun, wanted: SyncStatus, action: str) -> None:
    if run.status == wanted:
        return
    if run.status == SyncStatus.HELD:
        raise RunNotWaiting(f"run {run.id} is held by the circuit breaker ({run.hold_reason}): "
                            f"confirm it (POST /api/sync/runs/{run.id}/confirm) or discard it")
    if run.status == SyncStatus.AWAITING_REVIEW:
        raise RunNotWaiting(f"run {run.id} awaits review, it is not held: apply it "
                            f"(POST /api/sync/runs/{run.id}/apply) or discard it")
    raise RunNotWaiting(f"run {run.id} is {run.status.value}: only a run waiting for a "
                        f"review or a confirmation can be {action}")


def _decided(run: SyncRun, ctx: TenantContext, review: str, clock: Clock) -> None:
    run.review = review
    run.reviewed_by_user_id = ctx.user_id
    run.reviewed_by_label = ctx.actor_label
    run.reviewed_at = clock()


def _defer_apply(db: Session, ctx: TenantContext, run: SyncRun) -> None:
    """The run's job kind again, resuming after the read: it applies what was chosen."""
    link = db.get(EventLink, run.link_id) if run.link_id else None
    connection = db.get(ProviderConnection, run.connection_id) if run.connection_id else None
    if link is None or link.event_id is None or connection is None:
        raise RunNotWaiting(f"run {run.id}: its provider event is no longer linked; discard it")
    run.status = SyncStatus.QUEUED
    job = jobs_service.start_job(
        db, ctx, kind=SYNC_PARTICIPANTS_KIND,
        params={"sync_run_id": str(run.id), "link_id": str(link.id)}, subject_id=link.id,
        # Someone is waiting on it, as on a manual run.
        priority=PRIORITY_OF[SyncTrigger.MANUAL],
        message=f"{connection.name}: {link.provider_event_name or link.provider_event_ref} "
                "(applying the reviewed read)")
    # Read already: the job applies, reading nothing. The read's checkpoint carries what
    # staging found unchanged (not staged), which the apply counts and moves the cursor by.
    read = db.get(JobRun, run.job_run_id) if run.job_run_id else None
    job.checkpoint = {**((read.checkpoint or {}) if read else {}), "staged": True}
    run.job_run_id = job.id


def _apply(db: Session, ctx: TenantContext, *, run_id: uuid.UUID, wanted: SyncStatus,
           review: str, source_refs: Collection[str] | None, clock: Clock) -> SyncRun:
    run = _waiting_run(db, ctx, run_id)
    _refuse(run, wanted, "applied" if wanted == SyncStatus.AWAITING_REVIEW else "confirmed")
    changed = preview.counts(db, run.id)
    chosen = preview.choose(db, run, source_refs=source_refs)
    before = {"status": run.status.value, "holdReason": run.hold_reason}
    _decided(run, ctx, review, clock)
    _defer_apply(db, ctx, run)
    audit.record(db, ctx, action=f"sync.{'apply' if review == 'applied' else 'confirm'}",
                 target_type="sync_run", target_id=run.id, before=before,
                 after={"all": source_refs is None, "chosen": chosen,
                        "sourceRefs": sorted(set(source_refs))[:100] if source_refs else None,
                        "preview": changed, "job": str(run.job_run_id)})
    db.flush()
    return run


def apply_reviewed(db: Session, ctx: TenantContext, *, run_id: uuid.UUID,
                   source_refs: Collection[str] | None = None,
                   clock: Clock = _now) -> SyncRun:
    """Apply a run awaiting review: all (``source_refs`` None) or those registrations."""
    return _apply(db, ctx, run_id=run_id, wanted=SyncStatus.AWAITING_REVIEW, review="applied",
                  source_refs=source_refs, clock=clock)


def confirm_held(db: Session, ctx: TenantContext, *, run_id: uuid.UUID,
                 source_refs: Collection[str] | None = None,
                 clock: Clock = _now) -> SyncRun:
    """Confirm a run the circuit breaker held: applied, all or those registrations."""
    return _apply(db, ctx, run_id=run_id, wanted=SyncStatus.HELD, review="confirmed",
                  source_refs=source_refs, clock=clock)


def discard(db: Session, ctx: TenantContext, *, run_id: uuid.UUID,
            clock: Clock = _now) -> SyncRun:
    """Apply nothing of a waiting run: its staged rows and preview go, the link's cursor
    stays (the next run reads the same changes again)."""
    run = _waiting_run(db, ctx, run_id)
    if not run.status.is_waiting:
        _refuse(run, SyncStatus.AWAITING_REVIEW, "discarded")
    before = {"status": run.status.value, "holdReason": run.hold_reason,
              "preview": preview.counts(db, run.id)}
    db.execute(delete(StagedRow).where(StagedRow.run_id == run.id))
    preview.drop(db, run.id)
    _decided(run, ctx, "discarded", clock)
    run.status = SyncStatus.DISCARDED
    run.finished_at = run.reviewed_at
    schedule.run_ended(db, run)  # the link's next scheduled run counts from this end
    audit.record(db, ctx, action="sync.discard", target_type="sync_run", target_id=run.id,
                 before=before, after={"status": run.status.value})
    db.flush()
    return run
