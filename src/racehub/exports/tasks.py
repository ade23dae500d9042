"""The export job, and the hourly expiry of old export files."""

from __future__ import annotations

from typing import Any

import structlog
from procrastinate import Blueprint
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.exports import service
from racehub.exports.models import Export
from racehub.exports.views import get_view, load_views
from racehub.jobs.registry import Needs, Subject
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


@job_task(blueprint, kind=service.EXPORT_KIND, label="Export",
          permission=Perm.EXPORTS_EXPORT_RUN, subject=EXPORT_SUBJECT)
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
