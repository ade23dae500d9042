"""Job progress page and the polling fragment other pages embed."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.jobs import service
from racehub.jobs.registry import label_of
from racehub.web.pages import render
from racehub.web.run_lists import PAGE_SIZE, filter_choices, list_query, paged
from racehub.web.templating import is_htmx

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadJobs = Annotated[TenantContext, Depends(require(Perm.JOBS_RUN_READ))]


@router.get("/jobs")
def jobs_page(request: Request, db: DB, ctx: ReadJobs) -> Response:
    """Every run of the tenant the caller may read (the rule of the job page), filtered
    by kind, state, event and who asked, keyset-paged."""
    query = list_query(request, db, ctx, kind_name="kind")
    runs, next_cursor = service.page_jobs(
        db, ctx, filters=service.JobFilters(kind=query.kind, status=query.status,
                                            event_id=query.event_id,
                                            requested_by=query.who),
        cursor=query.cursor, limit=PAGE_SIZE)
    labels = {k: label for k, label in service.kind_choices(ctx)}
    context: dict[str, Any] = {"runs": runs, "labels": labels, **paged(query, "/jobs", next_cursor)}
    if is_htmx(request):
        return render(request, db, ctx, "jobs/_list.html", **context)
    return render(request, db, ctx, "jobs/list.html", kinds=service.kind_choices(ctx),
                  **filter_choices(db, ctx, query), **context)


@router.get("/jobs/{job_id}")
def job_page(job_id: uuid.UUID, request: Request, db: DB, ctx: ReadJobs) -> Response:
    run = service.get_job_or_raise(db, ctx, job_id=job_id)
    template = "jobs/_progress.html" if is_htmx(request) else "jobs/detail.html"
    owners = [] if is_htmx(request) else service.belongs_to(db, ctx, run)
    response = render(request, db, ctx, template, run=run, label=label_of(run.kind),
                      can_control=service.access_of(db, ctx, run).can_control,
                      owners=owners)
    if is_htmx(request) and run.status.is_terminal and _polled_from(request, f"/jobs/{job_id}"):
        # The job ended while its own page watched: reload it once, so its log and any
        # error details (outside the polled fragment) show the end too.
        response.headers["HX-Refresh"] = "true"
    return response


def _polled_from(request: Request, path: str) -> bool:
    return urlsplit(request.headers.get("hx-current-url", "")).path == path


@router.post("/jobs/{job_id}/control")
def control_job(
    job_id: uuid.UUID,
    db: DB,
    ctx: ReadJobs,
    action: Annotated[str, Form(pattern="^(cancel|pause|resume)$")],
) -> Response:
    operation = {"cancel": service.cancel_job, "pause": service.pause_job,
                 "resume": service.resume_job}[action]
    operation(db, ctx, job_id=job_id)
    db.commit()
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)
