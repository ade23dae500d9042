"""The export job, and the hourly expiry of old export files."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from procrastinate import Blueprint
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.query import scoped
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.exports import service
from racehub.exports.models import Export
from racehub.exports.views import get_view, load_views
from racehub.jobs.models import JobRun
from racehub.jobs.registry import Needs, Owner, Subject
from racehub.jobs.runner import JobHandle, job_task, worker_sessionmaker
from racehub.settings import get_settings

log = structlog.get_logger(__name__)

blueprint = Blueprint()


def _needs_of_view(view_key: str) -> Needs:
    """An export holds its list's rows: reading or controlling its run needs what reading
    the list needs (the audit log: core:audit:read), whoever started it."""
    permission = frozenset({get_view(view_key).permission})
    return Needs(read=permission, control=permission)


EXPORT_SUBJECT = Subject("export", key=Export.view_key,
                         known_keys=lambda: load_views().keys(), needs=_needs_of_view)


def _belongs_to(db: Session, ctx: TenantContext, run: JobRun) -> list[Owner]:
    """The export itself, then the event its list was filtered to, if any."""
    export = db.scalar(scoped(ctx, Export).where(Export.id == run.subject_id))
    if export is None:
        return []
    owners = [Owner("Export", export.title, f"/exports/{export.id}")]
    if (export.filters or {}).get("eventId"):
        owners += events_service.event_owner(db, ctx, export.filters["eventId"])
    return owners


def _of_event(ctx: TenantContext, event_id: uuid.UUID) -> ColumnElement[bool]:
    return JobRun.subject_id.in_(select(Export.id).where(
        Export.tenant_id == ctx.tenant_id, Export.filters["eventId"].astext == str(event_id)))


@job_task(blueprint, kind=service.EXPORT_KIND, label="Export",
          permission=Perm.EXPORTS_EXPORT_RUN, subject=EXPORT_SUBJECT,
          belongs_to=_belongs_to, of_event=_of_event)
def run_export(handle: JobHandle, db: Session, ctx: TenantContext, **params: Any) -> None:
    service.run_export(handle, db, ctx, export_id=params["export_id"],
                       settings=get_settings())


@blueprint.periodic(cron="7 * * * *")  # hourly
@blueprint.task(name="expire", queueing_lock="exports_expire")
def expire(timestamp: int) -> int:
    """Delete export files older than RACEHUB_EXPORT_EXPIRY_HOURS and mark them expired."""
    with worker_sessionmaker()() as db:
        count = service.expire_exports(db, get_settings())
        db.commit()
    if count:
        log.info("exports.expired", count=count)
    return count
