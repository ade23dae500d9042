"""What of the imports keeps an event from being deleted: an import into it whose job has
not ended (a result file being read)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.events.models import Event
from racehub.imports.models import Import
from racehub.jobs.models import JobRun, JobStatus

UNFINISHED = [s for s in JobStatus if not s.is_terminal]


def event_blockers(db: Session, ctx: TenantContext, event: Event) -> list[str]:
    names = list(db.scalars(
        select(Import.filename).join(JobRun, JobRun.id == Import.job_run_id)
        .where(Import.tenant_id == ctx.tenant_id,
               Import.params["eventId"].astext == str(event.id),
               JobRun.status.in_(UNFINISHED))
        .order_by(Import.created_at)))
    if not names:
        return []
    return [f"an import into it has not finished ({', '.join(names[:3])}"
            f"{' ...' if len(names) > 3 else ''})"]
