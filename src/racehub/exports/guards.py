"""What of the exports keeps an event from being deleted: an export of its lists whose
job has not ended."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.events.models import Event
from racehub.exports.models import Export
from racehub.jobs.models import JobRun, JobStatus

UNFINISHED = [s for s in JobStatus if not s.is_terminal]


def event_blockers(db: Session, ctx: TenantContext, event: Event) -> list[str]:
    count = db.scalar(
        select(func.count()).select_from(Export).join(JobRun, JobRun.id == Export.job_run_id)
        .where(Export.tenant_id == ctx.tenant_id,
               Export.filters["eventId"].astext == str(event.id),
               JobRun.status.in_(UNFINISHED))) or 0
    if not count:
        return []
    if count == 1:
        return ["an export of its lists has not finished"]
    return [f"{count} exports of its lists have not finished"]
