"""The import pipeline's job."""

from __future__ import annotations

import uuid
from typing import Any

from procrastinate import Blueprint
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.query import scoped
from racehub.core.rbac import Perm
from racehub.imports import listing, service
from racehub.imports.models import Import
from racehub.imports.registry import load_import_types
from racehub.jobs.models import JobRun
from racehub.jobs.registry import Needs, Owner, Subject
from racehub.jobs.runner import JobHandle, job_task
from racehub.settings import get_settings

blueprint = Blueprint()


def _needs_of_type(import_type: str) -> Needs:
    """Controlling an import needs its type's own permission too (manufactured numbers:
    inventory:number:manage); reading it, only what reading imports needs."""
    return Needs(control=frozenset({load_import_types()[import_type].permission}))


IMPORT_SUBJECT = Subject("import", key=Import.import_type,
                         known_keys=lambda: load_import_types().keys(),
                         needs=_needs_of_type)


def _belongs_to(db: Session, ctx: TenantContext, run: JobRun) -> list[Owner]:
    """The import itself, then what its type says it belongs to (the event, the number
    type)."""
    imp = db.scalar(scoped(ctx, Import).where(Import.id == run.subject_id))
    if imp is None:
        return []
    return [Owner("Import", imp.filename, f"/imports/{imp.id}"),
            *listing.belongs_to(db, ctx, imp)]


def _of_event(ctx: TenantContext, event_id: uuid.UUID) -> ColumnElement[bool]:
    return JobRun.subject_id.in_(listing.imports_of_event(ctx, event_id))


@job_task(
    blueprint,
    kind=service.RUN_IMPORT_KIND,
    label="Import",
    permission=Perm.IMPORTS_IMPORT_RUN,
    read_permission=Perm.IMPORTS_IMPORT_READ,
    subject=IMPORT_SUBJECT,
    # Imports of one type in one tenant run one after another: two files onboarding the
    # same sequences at once would race for them.
    lock="import:{tenant_id}:{import_type}",
    belongs_to=_belongs_to,
    of_event=_of_event,
)
def run_import(handle: JobHandle, db: Session, ctx: TenantContext, **params: Any) -> None:
    settings = get_settings()
    service.run_import(handle, db, ctx, import_id=params["import_id"],
                       batch_size=settings.job_batch_size, data_dir=settings.data_dir,
                       limits=service.import_limits(settings))
