"""Pages of results publications: "Prepare publication" on the event's Sync tab (whose
list of versions is ``sync/_publications.html``), and the page of one version (its diff,
its validation, the approve form, the platform's answers). Thin: sync/publications.py
holds the rules; the permissions are the API's."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.exceptions import DomainError, Invalid
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.jobs import service as jobs_service
from racehub.sync import publication_build, publications, runs_pages
from racehub.sync.models import PublicationStatus, RowAnswer, RowChange
from racehub.timing.results import format_ms
from racehub.web.pages import PostedForm, form_error, render
from racehub.web.templating import is_htmx

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_READ))]
StartRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_START))]
Approve = Annotated[TenantContext, Depends(require(Perm.SYNC_RESULTS_PUBLISH))]

ROWS_PAGE = 100
# What the rows filter offers: the diff (the default), every row, or the rows refused.
ROW_VIEWS = {"diff": [RowChange.ADDED, RowChange.CHANGED, RowChange.REMOVED], "all": None}
WORKING = (PublicationStatus.APPROVED, PublicationStatus.PUBLISHING)


@router.post("/events/{event_id}/publications")
def prepare_publication(event_id: uuid.UUID, request: Request, db: DB,
                        ctx: StartRuns) -> Response:
    """A prepare run for each registration platform feeding the event that takes results;
    back to the Sync tab, whose list shows the version once its job built it."""
    try:
        requested = publications.request_event_prepare(db, ctx, event_id=event_id)
    except DomainError as exc:
        db.rollback()
        return runs_pages.event_tab(request, db, ctx, event_id, status_code=exc.status_code,
                                    **form_error(exc))
    db.commit()
    new = sum(1 for r in requested if not r.joined)
    flash = (f"Preparing {new} results version(s)" if new
             else "A results version is being prepared already")
    return RedirectResponse(f"/events/{event_id}/sync?flash={quote_plus(flash)}#publications",
                            status_code=303)


@router.get("/events/{event_id}/publications/{version}")
def publication_page(event_id: uuid.UUID, version: int, request: Request, db: DB,
                     ctx: ReadRuns) -> Response:
    return _page(request, db, ctx, event_id, version)


def _page(request: Request, db: Session, ctx: TenantContext, event_id: uuid.UUID,
          version: int, *, status_code: int = 200, **extra: Any) -> Response:
    event = events_service.get_event_or_raise(db, ctx, event_id=event_id)
    publication = publications.get_publication_or_raise(db, ctx, event_id=event_id,
                                                        version=version)
    params = request.query_params
    view = params.get("rows") or "diff"
    if view not in ROW_VIEWS:
        raise Invalid(f"rows: '{view}' is not one of {', '.join(ROW_VIEWS)}", field="rows")
    cursor = params.get("cursor") or None
    rows, next_cursor = publications.list_rows(db, ctx, publication=publication,
                                               changes=ROW_VIEWS[view], cursor=cursor,
                                               limit=ROWS_PAGE)
    url = f"/events/{event.id}/publications/{publication.version}"
    kept = f"{url}?rows={view}"
    job = (jobs_service.get_readable_job(db, ctx, job_id=publication.publish_job_run_id)
           if publication.publish_job_run_id else None)
    context: dict[str, Any] = {
        "event": event, "publication": publication, "rows": rows, "rows_view": view,
        "row_views": list(ROW_VIEWS), "timezone": event.timezone, "fmt": format_ms,
        "issues": publication.validation, "answers": publications.answer_counts(db, publication),
        "warning_codes": publications.warning_codes(publication),
        "warning_meaning": publication_build.WARNING_CODES, "job": job,
        "working": publication.status in WORKING, "refused": RowAnswer.REFUSED,
        "approvable": publication.status in (PublicationStatus.READY,
                                              PublicationStatus.FAILED),
        "can_approve": ctx.can(Perm.SYNC_RESULTS_PUBLISH),
        "rows_first_url": kept if cursor else None,
        "rows_next_url": f"{kept}&cursor={quote_plus(next_cursor)}" if next_cursor else None,
    }
    response = render(request, db, ctx, "sync/publication.html", status_code=status_code,
                      **context, **extra)
    target = request.headers.get("hx-target") if is_htmx(request) else None
    if target == "publication-facts" and publication.status not in WORKING:
        response.headers["HX-Refresh"] = "true"  # it ended: show the answers once
    return response


@router.post("/events/{event_id}/publications/{version}/approve")
def approve_publication(event_id: uuid.UUID, version: int, request: Request, db: DB,
                        ctx: Approve, form: PostedForm) -> Response:
    """Approve the version, the warnings ticked named; its publish job sends it."""
    named = [str(code) for code in form.getlist("warning")]
    try:
        publication = publications.approve(db, ctx, event_id=event_id, version=version,
                                           acknowledged=named)
    except DomainError as exc:
        db.rollback()
        return _page(request, db, ctx, event_id, version, status_code=exc.status_code,
                     **form_error(exc))
    db.commit()
    flash = f"Version {publication.version} approved: publishing"
    return RedirectResponse(f"/events/{event_id}/publications/{version}?flash="
                            f"{quote_plus(flash)}", status_code=303)
