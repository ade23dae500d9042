"""What of timing keeps an event from being deleted: its results."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.events.models import Event
from racehub.timing.models import Result


def event_blockers(db: Session, ctx: TenantContext, event: Event) -> list[str]:
    count = db.scalar(select(func.count()).where(
        Result.tenant_id == ctx.tenant_id, Result.event_id == event.id)) or 0
    return [f"it has {count} result{'' if count == 1 else 's'}"] if count else []
