"""The export job, and the hourly expiry of old export files."""

from __future__ import annotations

from typing import Any

import structlog
from procrastinate import Blueprint
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.exports import service
from racehub.jobs.runner import JobHandle, job_task, worker_sessionmaker
from racehub.settings import get_settings

log = structlog.get_logger(__name__)

blueprint = Blueprint()


@job_task(blueprint, kind=service.EXPORT_KIND, label="Export",
          permission=Perm.EXPORTS_EXPORT_RUN)
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
