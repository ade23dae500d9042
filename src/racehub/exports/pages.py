"""Export pages: start an export from a list page, its status page (polls itself), and
"My exports". The Export button itself is the shared partial ``exports/_button.html``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.deps import DB, AppSettings, require
from racehub.core.exceptions import Invalid
from racehub.core.rbac import Perm
from racehub.exports import service
from racehub.exports.models import Export
from racehub.exports.schemas import ExportCreate
from racehub.exports.views import ExportView, get_view
from racehub.web.pages import PostedForm, form_error, render
from racehub.web.templating import is_htmx, templates

router = APIRouter(tags=["pages"], include_in_schema=False)

Exporter = Annotated[TenantContext, Depends(require(Perm.EXPORTS_EXPORT_RUN))]


def _may_export(request: Request, view: ExportView | str) -> bool:
    """For templates: may the caller of this page export ``view``?"""
    ctx = getattr(request.state, "ctx", None)
    if ctx is None:
        return False
    view = get_view(view) if isinstance(view, str) else view
    return bool(ctx.can(Perm.EXPORTS_EXPORT_RUN) and ctx.can(view.permission))


# The Export partial is included by other domains' list templates: it reads the view's
# columns and the caller's rights through these.
templates.env.globals["export_view"] = get_view
templates.env.globals["may_export"] = _may_export


def _status_context(exp: Export) -> dict[str, Any]:
    return {"exp": exp, "run": exp.job_run, "state": service.state_of(exp),
            "stage": service.stage_of(exp), "stages": service.stages_of(exp),
            "download_url": service.download_url(exp), "list_url": service.list_url(exp),
            "labels": service.column_labels(exp), "view": get_view(exp.view_key)}


@router.get("/exports")
def my_exports_page(request: Request, db: DB, ctx: Exporter) -> Response:
    exports = service.list_my_exports(db, ctx)
    rows = [_status_context(e) for e in exports]
    active = any(r["state"] in ("queued", "running") for r in rows)
    template = "exports/_list.html" if is_htmx(request) else "exports/list.html"
    return render(request, db, ctx, template, rows=rows, active=active)


@router.get("/exports/new")
def new_export_page(request: Request, db: DB, ctx: Exporter) -> Response:
    """The export form of a list: ``view``, ``filter.<name>``, ``sort`` and ``desc`` as the
    list's Export button sends them; columns and format are chosen here."""
    params = request.query_params
    view = get_view(params.get("view"))
    service.require_view(ctx, view)
    raw = {key.removeprefix("filter."): value for key, value in params.multi_items()
           if key.startswith("filter.") and value}
    flt = view.parse_filters(raw)  # bad filters are refused here, naming the field
    sort = view.choose_sort(params.get("sort"))
    desc = params.get("desc")
    descending = view.default_descending if desc in (None, "") else desc == "1"
    return _form_page(request, db, ctx, view, flt, sort, descending)


def _form_page(request: Request, db: Session, ctx: TenantContext, view: ExportView,
               flt: Any, sort: str, descending: bool, *, chosen: list[str] | None = None,
               status_code: int = 200, **extra: Any) -> Response:
    filters = flt.model_dump(mode="json", by_alias=True, exclude_none=True)
    chosen = chosen if chosen is not None else [c.key for c in view.columns if c.default]
    return render(request, db, ctx, "exports/new.html", status_code=status_code, view=view,
                  filters=filters, sort=sort, descending=descending, chosen=chosen,
                  title=view.describe(db, ctx, flt),
                  list_url=view.list_url(flt, sort, descending), **extra)


@router.post("/exports")
def start_export(
    request: Request, db: DB, ctx: Exporter, settings: AppSettings, form: PostedForm
) -> Response:
    """From a list page's Export form: ``view``, ``filter.<name>``, ``sort``, ``desc``,
    ``columns`` (repeated) and ``format``."""
    view = get_view(str(form.get("view") or ""))
    filters = {key.removeprefix("filter."): value for key, value in form.multi_items()
               if key.startswith("filter.") and isinstance(value, str) and value}
    desc = form.get("desc")
    data = ExportCreate(
        view=view.key, filters=filters, sort=str(form.get("sort") or "") or None,
        descending=None if desc in (None, "") else desc in ("1", "true", "on"),
        # Every box unticked is an empty choice, refused (not the defaults).
        columns=[str(c) for c in form.getlist("columns")],
        file_format=str(form.get("format") or "csv"))
    try:
        exp = service.create_export(db, ctx, settings=settings, data=data)
    except Invalid as exc:
        # Back to the form with the problem, as the operator left it.
        db.rollback()
        flt = view.parse_filters(filters)
        return _form_page(request, db, ctx, view, flt, view.choose_sort(data.sort),
                          view.default_descending if data.descending is None
                          else data.descending, chosen=data.columns,
                          status_code=exc.status_code, **form_error(exc))
    db.commit()
    return RedirectResponse(f"/exports/{exp.id}", status_code=303)


@router.get("/exports/{export_id}")
def export_page(export_id: uuid.UUID, request: Request, db: DB, ctx: Exporter) -> Response:
    exp = service.get_export_or_raise(db, ctx, export_id=export_id)
    template = "exports/_status.html" if is_htmx(request) else "exports/detail.html"
    return render(request, db, ctx, template, **_status_context(exp))


@router.post("/exports/{export_id}/cancel")
def cancel_export(export_id: uuid.UUID, db: DB, ctx: Exporter) -> Response:
    service.cancel_export(db, ctx, export_id=export_id)
    db.commit()
    return RedirectResponse(f"/exports/{export_id}", status_code=303)


@router.post("/exports/{export_id}/retry")
def retry_export(export_id: uuid.UUID, db: DB, ctx: Exporter,
                 settings: AppSettings) -> Response:
    exp = service.retry_export(db, ctx, settings=settings, export_id=export_id)
    db.commit()
    return RedirectResponse(f"/exports/{exp.id}", status_code=303)

