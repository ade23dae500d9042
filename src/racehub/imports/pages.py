"""The C05 progress page: stage bar, percent, pause/resume/cancel, and the hand-back to
the page that started the import (``importCaller:{uuid}`` in localStorage)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.exceptions import DomainError, Forbidden, NotFound
from racehub.core.rbac import Perm
from racehub.imports import listing, service
from racehub.imports.models import Import
from racehub.jobs import service as jobs_service
from racehub.web.pages import form_error, render
from racehub.web.run_lists import PAGE_SIZE, filter_choices, list_query, paged
from racehub.web.templating import is_htmx

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadImports = Annotated[TenantContext, Depends(require(Perm.IMPORTS_IMPORT_READ))]
RunImports = Annotated[TenantContext, Depends(require(Perm.IMPORTS_IMPORT_RUN))]


def _render_import(request: Request, db: DB, ctx: TenantContext, imp: Import, *,
                   status_code: int = 200, **extra: Any) -> Response:
    import_type = service.get_import_type(imp.import_type)
    summary_url = import_type.summary_url.format(import_id=imp.id)
    template = "imports/_progress.html" if is_htmx(request) else "imports/progress.html"
    extra.setdefault("chosen", service.mapping_of(imp))
    if not is_htmx(request):  # the links back, above the polled fragment
        extra.setdefault("owners", listing.belongs_to(db, ctx, imp))
    return render(
        request, db, ctx, template, status_code=status_code, imp=imp, run=imp.job_run,
        import_type=import_type, stages=service.stages_of(imp),
        buckets=service.bucket_counts(imp), summary_url=summary_url,
        # Which caller pages may be handed back to, by their importCaller value.
        callers=json.dumps({import_type.caller: summary_url} if import_type.caller else {}),
        can_control=jobs_service.access_of(db, ctx, imp.job_run).can_control,
        needs_mapping=imp.mapping_state == service.NEEDS_MAPPING,
        mapping=service.mapping_of(imp), mapping_problems=service.mapping_problems(imp),
        **extra,
    )


@router.get("/imports")
def imports_page(request: Request, db: DB, ctx: ReadImports) -> Response:
    """Every import of the tenant the caller may read (the rule of its job), filtered by
    type, state, event and who uploaded it, keyset-paged."""
    query = list_query(request, db, ctx, kind_name="type")
    imports, next_cursor = listing.page_imports(
        db, ctx, filters=listing.ImportFilters(import_type=query.kind, status=query.status,
                                               event_id=query.event_id,
                                               requested_by=query.who),
        cursor=query.cursor, limit=PAGE_SIZE)
    labels = dict(listing.type_choices())
    context: dict[str, Any] = {"imports": imports, "labels": labels,
               **paged(query, "/imports", next_cursor)}
    if is_htmx(request):
        return render(request, db, ctx, "imports/_list.html", **context)
    return render(request, db, ctx, "imports/list.html", kinds=listing.type_choices(),
                  **filter_choices(db, ctx, query), **context)


@router.get("/imports/{import_id}")
def import_page(import_id: uuid.UUID, request: Request, db: DB, ctx: ReadImports) -> Response:
    return _render_import(request, db, ctx,
                          service.get_import_or_raise(db, ctx, import_id=import_id))


@router.post("/imports/{import_id}/mapping")
def map_import_columns(
    import_id: uuid.UUID,
    request: Request,
    db: DB,
    ctx: RunImports,
    # Paired by position: one hidden ``field`` and one ``header`` select per form row.
    field: Annotated[list[str], Form()],
    header: Annotated[list[str], Form()],
) -> Response:
    chosen = dict(zip(field, header, strict=False))
    try:
        service.apply_mapping(db, ctx, import_id=import_id,
                              mapping={f: h or None for f, h in chosen.items()})
    except (NotFound, Forbidden):
        raise
    except DomainError as exc:
        db.rollback()
        imp = service.get_import_or_raise(db, ctx, import_id=import_id)
        return _render_import(request, db, ctx, imp, status_code=exc.status_code,
                              chosen=chosen, **form_error(exc))
    db.commit()
    return RedirectResponse(f"/imports/{import_id}", status_code=303)


@router.post("/imports/{import_id}/control")
def control_import(
    import_id: uuid.UUID,
    db: DB,
    ctx: RunImports,
    action: Annotated[str, Form(pattern="^(cancel|pause|resume)$")],
) -> Response:
    service.control_import(db, ctx, import_id=import_id, action=action)
    db.commit()
    return RedirectResponse(f"/imports/{import_id}", status_code=303)
