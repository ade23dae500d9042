"""JSON API of job runs: progress and cooperative pause/resume/cancel."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.jobs import service
from racehub.jobs.models import JobStatus
from racehub.jobs.schemas import JobRunRead

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

ReadJobs = Annotated[TenantContext, Depends(require(Perm.JOBS_RUN_READ))]


@router.get("", response_model=Page[JobRunRead])
def list_jobs(
    db: DB,
    ctx: ReadJobs,
    kind: Annotated[str | None, Query(description="One job kind (as `kind` reads)")] = None,
    status: JobStatus | None = None,
    event_id: Annotated[uuid.UUID | None, Query(
        alias="eventId", description="The runs belonging to this event")] = None,
    who: Annotated[str | None, Query(
        max_length=320, description="Who asked (`requestedByLabel`, any case)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Page[JobRunRead]:
    """The runs the caller may read, newest first, keyset-paged: the /jobs page's list."""
    if event_id is not None:  # another tenant's event is not found (404), like the page
        events_service.get_event_or_raise(db, ctx, event_id=event_id)
    runs, next_cursor = service.page_jobs(
        db, ctx, filters=service.JobFilters(kind=kind or None, status=status,
                                            event_id=event_id, requested_by=who or None),
        cursor=cursor, limit=limit)
    return Page[JobRunRead](items=[JobRunRead.model_validate(r) for r in runs],
                            next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobRunRead)
def read_job(job_id: uuid.UUID, db: DB, ctx: ReadJobs) -> JobRunRead:
    return JobRunRead.model_validate(service.get_job_or_raise(db, ctx, job_id=job_id))


@router.post("/{job_id}/cancel", response_model=JobRunRead)
def cancel_job(job_id: uuid.UUID, db: DB, ctx: ReadJobs) -> JobRunRead:
    """Cancel at the next batch boundary (at once if not running). Needs the permissions of
    the job's kind and of its subject (an audit-log export: core:audit:read)."""
    run = service.cancel_job(db, ctx, job_id=job_id)
    db.commit()
    return JobRunRead.model_validate(run)


@router.post("/{job_id}/pause", response_model=JobRunRead)
def pause_job(job_id: uuid.UUID, db: DB, ctx: ReadJobs) -> JobRunRead:
    """Pause at the next batch boundary; resume continues from the last checkpoint."""
    run = service.pause_job(db, ctx, job_id=job_id)
    db.commit()
    return JobRunRead.model_validate(run)


@router.post("/{job_id}/resume", response_model=JobRunRead)
def resume_job(job_id: uuid.UUID, db: DB, ctx: ReadJobs) -> JobRunRead:
    run = service.resume_job(db, ctx, job_id=job_id)
    db.commit()
    return JobRunRead.model_validate(run)
