"""E08 pages: an event's results (ranking by category, search, reconciliation), the
result-file upload, and the import summary with every bucket."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import Gender
from racehub.imports import service as imports_service
from racehub.imports.summary import summary_context
from racehub.timing import results
from racehub.timing.importers import TIMING_RESULTS
from racehub.timing.results import Outcome
from racehub.web.pages import query_enum, query_uuid, render
from racehub.web.templating import is_htmx

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadResults = Annotated[TenantContext, Depends(require(Perm.TIMING_RESULT_READ))]
ImportResults = Annotated[TenantContext, Depends(require(Perm.TIMING_RESULT_IMPORT))]

PAGE_SIZE = 50


def _buttons(ctx: TenantContext) -> dict[str, Any]:
    return {"can_export_timing": ctx.can(Perm.TIMING_EXPORT),
            "can_change_mode": ctx.can(Perm.EVENTS_EVENT_WRITE),
            "can_import_results": ctx.can(Perm.TIMING_RESULT_IMPORT)
            and ctx.can(Perm.IMPORTS_IMPORT_RUN),
            "role": ctx.role.value if ctx.role else "none"}


@router.get("/events/{event_id}/results")
def results_page(event_id: uuid.UUID, request: Request, db: DB, ctx: ReadResults) -> Response:
    event = events_service.get_event_or_raise(db, ctx, event_id=event_id)
    params = dict(request.query_params)
    category_id = query_uuid(params.get("category"), "category")
    gender = query_enum(params.get("gender"), Gender, "gender")
    q = params.get("q", "").strip()
    rows, next_cursor = results.list_results(
        db, ctx, event_id=event_id, category_id=category_id, gender=gender, q=q or None,
        cursor=params.get("cursor") or None, limit=PAGE_SIZE)
    filters = {"category": str(category_id or ""), "gender": gender.value if gender else "",
               "q": q}
    base = f"/events/{event_id}/results?"
    table = {"rows": rows, "filters": filters, "by_category": category_id is not None,
             "next_url": base + urlencode({**filters, "cursor": next_cursor})
             if next_cursor else None,
             "first_url": base + urlencode(filters) if params.get("cursor") else None,
             "format_ms": results.format_ms}
    if is_htmx(request) and request.headers.get("hx-target") == "results":
        return render(request, db, ctx, "timing/_results.html", event=event, **table)
    return render(request, db, ctx, "timing/results.html", event=event,
                  categories=events_service.list_categories(db, ctx, event_id=event_id),
                  genders=list(Gender), reconciliation=results.reconcile(db, ctx,
                                                                          event_id=event_id),
                  **table, **_buttons(ctx))


@router.get("/events/{event_id}/results/import")
def results_import_page(event_id: uuid.UUID, request: Request, db: DB,
                        ctx: ImportResults) -> Response:
    event = events_service.get_event_or_raise(db, ctx, event_id=event_id)
    return render(request, db, ctx, "timing/results_import.html", event=event,
                  import_type=imports_service.get_import_type(TIMING_RESULTS),
                  recent=results.recent_imports(db, ctx, event_id=event_id),
                  required=results.REQUIRED_COLUMNS, optional=results.OPTIONAL_COLUMNS,
                  aliases=results.COLUMN_ALIASES, **_buttons(ctx))


@router.get("/results/imports/{import_id}/summary")
def results_import_summary(import_id: uuid.UUID, request: Request, db: DB,
                           ctx: ReadResults) -> Response:
    context, one_bucket = summary_context(request, db, ctx, import_id=import_id,
                                          import_type=TIMING_RESULTS)
    context["links"] = {Outcome.UNMATCHED.value: "Suggested participant",
                        Outcome.BIB_MISMATCH.value: "Participant"}
    if one_bucket:
        return render(request, db, ctx, "timing/_summary_bucket.html",
                      section=context["sections"][0], **context)
    imp = context["imp"]
    event = results.event_of_import(db, ctx, imp=imp)
    return render(request, db, ctx, "timing/results_summary.html", event=event,
                  reconciliation=results.reconcile(db, ctx, event_id=event.id),
                  mapping=imports_service.mapping_of(imp), **context, **_buttons(ctx))
