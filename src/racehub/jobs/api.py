"""JSON API of job runs: progress and cooperative pause/resume/cancel."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.jobs import service
from racehub.jobs.schemas import JobRunRead

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

ReadJobs = Annotated[TenantContext, Depends(require(Perm.JOBS_RUN_READ))]


@router.get("", response_model=list[JobRunRead])
def list_jobs(
    db: DB,
    ctx: ReadJobs,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[JobRunRead]:
    return [JobRunRead.model_validate(r) for r in service.list_jobs(db, ctx, kind=kind,
                                                                   limit=limit)]


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
