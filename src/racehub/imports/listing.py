"""Lists of imports: filters, keyset pages, and what each import belongs to.

Who may see an import is the rule of its run (``jobs.service.readable``): the list shows
exactly the imports whose job page the caller may open."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, contains_eager

from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import scoped
from racehub.imports.models import Import
from racehub.imports.registry import IMPORT_TYPES, load_import_types
from racehub.jobs import service as jobs_service
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.registry import Owner

IMPORT_SORT = SortKey((Import.created_at, Import.id), descending=True)
# The import types that name the event they belong to keep its id under this parameter.
EVENT_PARAM = "eventId"


@dataclass(frozen=True)
class ImportFilters:
    import_type: str | None = None
    status: JobStatus | None = None
    event_id: uuid.UUID | None = None
    requested_by: str | None = None


def imports_of_event(ctx: TenantContext, event_id: uuid.UUID) -> Select[Any]:
    """The ids of the tenant's imports into one event (result files)."""
    return select(Import.id).where(Import.tenant_id == ctx.tenant_id,
                                   Import.params[EVENT_PARAM].astext == str(event_id))


def page_imports(
    db: Session, ctx: TenantContext, *, filters: ImportFilters, cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Import], str | None]:
    """One keyset page of the imports the caller may read, newest first."""
    check_limit(limit)
    types = load_import_types()
    if filters.import_type is not None and filters.import_type not in types:
        raise Invalid(f"type must be one of {', '.join(sorted(types))}", field="type")
    stmt = (scoped(ctx, Import).join(Import.job_run).options(contains_eager(Import.job_run))
            .where(jobs_service.readable(ctx)))
    if filters.import_type:
        stmt = stmt.where(Import.import_type == filters.import_type)
    if filters.status:
        stmt = stmt.where(JobRun.status == filters.status)
    if filters.event_id:
        stmt = stmt.where(Import.params[EVENT_PARAM].astext == str(filters.event_id))
    if filters.requested_by:
        stmt = stmt.where(func.lower(JobRun.requested_by_label)
                          == filters.requested_by.strip().lower())
    rows = db.scalars(apply_keyset(stmt, IMPORT_SORT, cursor, limit)).all()
    return split_page(rows, limit, lambda i: (i.created_at, i.id))


def belongs_to(db: Session, ctx: TenantContext, imp: Import) -> list[Owner]:
    """What the import belongs to (the event of a result file, the number type of
    manufactured numbers), as its type says."""
    import_type = IMPORT_TYPES.get(imp.import_type) or load_import_types().get(imp.import_type)
    if import_type is None or import_type.belongs_to is None:
        return []
    return import_type.belongs_to(db, ctx, imp.params or {})


def type_choices() -> list[tuple[str, str]]:
    return sorted(((t.key, t.label) for t in load_import_types().values()), key=lambda c: c[1])
