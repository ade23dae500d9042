"""The Sync tab of an event and of a connection, and the page of one run.

A tab shows the provider events it syncs with (last success, the run active now with its
live progress, the next scheduled run), "Sync now", the history of runs (filters, keyset
pages) and, on an event, the open conflicts to resolve (keep ours / take theirs). Thin:
runs.py, conflicts.py and links.py hold the rules; the permissions are the API's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote_plus, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.exceptions import DomainError, Invalid
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.jobs import service as jobs_service
from racehub.sync import (
    conflicts,
    links,
    preview,
    publications,
    results_pull,
    review,
    runs,
)
from racehub.sync import service as connections_service
from racehub.sync.models import ChangeAction, PreviewAction, SyncRun, SyncStatus, SyncTrigger
from racehub.web.pages import PostedForm, form_error, render
from racehub.web.templating import is_htmx

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_READ))]
StartRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_START))]
ManageRecords = Annotated[TenantContext, Depends(require(Perm.SYNC_RECORD_MANAGE))]
PullResults = Annotated[TenantContext, Depends(require(Perm.SYNC_TIMING_RUN))]

HISTORY_PAGE = 25
CHANGES_PAGE = 100
CONFLICTS_SHOWN = 100
PREVIEW_PAGE = 100


def _enum_param(enum: Any, value: str | None, name: str) -> Any:
    """A filter from the query string; an unknown value is a 422 naming it."""
    if not value:
        return None
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise Invalid(f"{name}: '{value}' is not one of {choices}", field=name) from None


def _history(db: Session, ctx: TenantContext, base_url: str, params: dict[str, str], *,
             connection_id: uuid.UUID | None = None,
             event_id: uuid.UUID | None = None) -> dict[str, Any]:
    """A keyset page of runs, newest first, filtered by status and trigger."""
    status = _enum_param(SyncStatus, params.get("status"), "status")
    trigger = _enum_param(SyncTrigger, params.get("trigger"), "trigger")
    rows, next_cursor = runs.list_runs(
        db, ctx, filters=runs.RunFilter(status=status, trigger=trigger, event_id=event_id,
                                        connection_id=connection_id),
        cursor=params.get("cursor") or None, limit=HISTORY_PAGE)
    kept = {k: v for k, v in (("status", status and status.value),
                              ("trigger", trigger and trigger.value)) if v}
    url = f"{base_url}?{urlencode(kept)}" if kept else base_url
    return {
        "history_export": {"eventId": event_id, "connectionId": connection_id, **kept},
        "history": rows, "history_status": kept.get("status", ""),
        "history_trigger": kept.get("trigger", ""), "history_url": base_url,
        "statuses": [s.value for s in SyncStatus], "triggers": [t.value for t in SyncTrigger],
        "history_first_url": url if params.get("cursor") else None,
        "history_next_url": (f"{url}{'&' if kept else '?'}cursor={quote_plus(next_cursor)}"
                             if next_cursor else None),
    }


def _status(db: Session, ctx: TenantContext, link_rows: list[Any]) -> dict[str, Any]:
    """The links, each with its active runs and their jobs (for the live progress);
    a timing link offers "Push start list" to those who push."""
    # A link may have a run of each type active (a timing link pushes while it pulls).
    active = runs.active_runs_of(db, ctx, link_ids=[link.id for link in link_rows])
    every = [run for link_runs in active.values() for run in link_runs]
    jobs = {run.id: jobs_service.get_readable_job(db, ctx, job_id=run.job_run_id)
            for run in every if run.job_run_id}
    working = any(not run.status.is_waiting for run in every)
    return {"links": link_rows, "active": active, "jobs": jobs, "any_active": working,
            "sync_type_labels": runs.TYPE_LABELS,
            "can_pull": ctx.can(Perm.SYNC_TIMING_RUN), "can_push": ctx.can(Perm.SYNC_TIMING_RUN)}


def _tab(request: Request, db: Session, ctx: TenantContext, *, template: str,
         status_code: int = 200, **context: Any) -> Response:
    """The tab, or (htmx) only the part that asked: the polled status, the history."""
    target = request.headers.get("hx-target") if is_htmx(request) else None
    if _polled(request):
        response = render(request, db, ctx, "sync/_sync_status.html", **context)
        if not context["any_active"]:
            # The runs it showed ended: reload once, for the history and the conflicts.
            response.headers["HX-Refresh"] = "true"
        return response
    if target == "sync-history":
        return render(request, db, ctx, "sync/_sync_history.html", **context)
    return render(request, db, ctx, template, status_code=status_code,
                  can_start=ctx.can(Perm.SYNC_RUN_START),
                  can_resolve=ctx.can(Perm.SYNC_RECORD_MANAGE), **context)


# --- the event's tab ----------------------------------------------------------------------------


def _polled(request: Request) -> bool:
    """The tab's live status polling itself: it needs the status only."""
    return is_htmx(request) and request.headers.get("hx-target") == "sync-status"


def _event_context(db: Session, ctx: TenantContext, request: Request,
                   event_id: uuid.UUID) -> dict[str, Any]:
    event = events_service.get_event_or_raise(db, ctx, event_id=event_id)
    base = f"/events/{event.id}/sync"
    status = {"event": event, "tab_url": base, "timezone": event.timezone,
              **_status(db, ctx, links.list_event_links(db, ctx, event_id=event.id))}
    if _polled(request):
        return status
    open_conflicts, more = conflicts.list_conflicts(db, ctx, event_id=event.id,
                                                    limit=CONFLICTS_SHOWN)
    return {
        **status,
        **_history(db, ctx, base, dict(request.query_params), event_id=event.id),
        "conflicts": open_conflicts, "more_conflicts": more is not None,
        "names": runs.participant_labels(db, ctx, [c.participant_id for c in open_conflicts]),
        # Results publications (sync/publications_pages.py): the versions and their state.
        "publications": publications.list_publications(db, ctx, event_id=event.id),
        "can_prepare_publication": ctx.can(Perm.SYNC_RUN_START),
    }


def event_tab(request: Request, db: Session, ctx: TenantContext, event_id: uuid.UUID, *,
              status_code: int = 200, **extra: Any) -> Response:
    """The event's Sync tab (other pages of the tab render it with their form's error)."""
    return _tab(request, db, ctx, template="sync/event_sync.html", status_code=status_code,
                **_event_context(db, ctx, request, event_id), **extra)


@router.get("/events/{event_id}/sync")
def event_sync_page(event_id: uuid.UUID, request: Request, db: DB, ctx: ReadRuns) -> Response:
    return _tab(request, db, ctx, template="sync/event_sync.html",
                **_event_context(db, ctx, request, event_id))


@router.post("/events/{event_id}/sync")
def sync_event_now(event_id: uuid.UUID, request: Request, db: DB, ctx: StartRuns,
                   form: PostedForm) -> Response:
    """A run for each provider event feeding the event (joining any active one)."""
    options = _RunOptions.of(form)
    try:
        connection_ids = runs.connections_feeding(db, ctx, event_id=event_id)
        if not connection_ids:
            raise Invalid("No provider event feeds this event: link one first",
                          field="event_id")
        requested = [r for connection_id in connection_ids
                     for r in runs.request_participant_sync(
                         db, ctx, connection_id=connection_id, event_id=event_id,
                         full_refresh=options.full_refresh, preview=options.preview)]
    except DomainError as exc:
        db.rollback()
        return _tab(request, db, ctx, template="sync/event_sync.html",
                    status_code=exc.status_code, **_event_context(db, ctx, request, event_id),
                    **form_error(exc))
    db.commit()
    return RedirectResponse(f"/events/{event_id}/sync?flash={quote_plus(_started(requested))}",
                            status_code=303)


@router.post("/events/{event_id}/sync/links/{link_id}/pull")
def pull_results_now(event_id: uuid.UUID, link_id: uuid.UUID, request: Request, db: DB,
                     ctx: PullResults) -> Response:
    """A results pull of one timing race linked to the event (joining an active one)."""
    try:
        link = links.get_link_or_raise(db, ctx, link_id=link_id, event_id=event_id)
        requested = results_pull.request_results_pull(
            db, ctx, connection_id=link.connection_id, event_id=event_id, link_id=link.id)
    except DomainError as exc:
        db.rollback()
        return _tab(request, db, ctx, template="sync/event_sync.html",
                    status_code=exc.status_code, **_event_context(db, ctx, request, event_id),
                    **form_error(exc))
    db.commit()
    flash = ("A results pull of this race is running already (joined)" if requested[0].joined
             else "Results pull started")
    return RedirectResponse(f"/events/{event_id}/sync?flash={quote_plus(flash)}",
                            status_code=303)


@dataclass(frozen=True)
class _RunOptions:
    """Sync now's options: a full re-read, and (unless "apply directly" is ticked) a
    preview to review before anything is applied."""

    full_refresh: bool
    preview: bool

    @classmethod
    def of(cls, form: Any) -> _RunOptions:
        return cls(full_refresh=bool(form.get("full_refresh")),
                   preview=not form.get("apply_directly"))


def _started(requested: list[runs.RunRequest]) -> str:
    new = sum(1 for r in requested if not r.joined)
    joined = len(requested) - new
    parts = [f"{new} sync run(s) started"] if new else []
    if joined:
        parts.append(f"{joined} already running (joined)")
    return "; ".join(parts)


def _resolve(request: Request, db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
             conflict_id: uuid.UUID, keep: bool) -> Response:
    resolve = conflicts.keep_ours if keep else conflicts.take_theirs
    try:
        conflict = resolve(db, ctx, event_id=event_id, conflict_id=conflict_id)
    except DomainError as exc:
        db.rollback()
        return _tab(request, db, ctx, template="sync/event_sync.html",
                    status_code=exc.status_code, **_event_context(db, ctx, request, event_id),
                    **form_error(exc))
    db.commit()
    done = "racehub's value kept" if keep else "the provider's value taken"
    flash = f"{conflict.field}: {done}"
    return RedirectResponse(f"/events/{event_id}/sync?flash={quote_plus(flash)}#conflicts",
                            status_code=303)


@router.post("/events/{event_id}/conflicts/{conflict_id}/keep")
def keep_ours(event_id: uuid.UUID, conflict_id: uuid.UUID, request: Request, db: DB,
              ctx: ManageRecords) -> Response:
    return _resolve(request, db, ctx, event_id=event_id, conflict_id=conflict_id, keep=True)


@router.post("/events/{event_id}/conflicts/{conflict_id}/take")
def take_theirs(event_id: uuid.UUID, conflict_id: uuid.UUID, request: Request, db: DB,
                ctx: ManageRecords) -> Response:
    return _resolve(request, db, ctx, event_id=event_id, conflict_id=conflict_id, keep=False)


# --- the connection's tab -----------------------------------------------------------------------


def _connection_context(db: Session, ctx: TenantContext, request: Request,
                        connection_id: uuid.UUID) -> dict[str, Any]:
    connection = connections_service.get_connection_or_raise(db, ctx,
                                                             connection_id=connection_id)
    base = f"/connections/{connection.id}/sync"
    linked = [link for link in links.list_connection_links(db, ctx, connection_id=connection.id)
              if link.event_id is not None]
    status = {"connection": connection, "tab_url": base, "timezone": None,
              **_status(db, ctx, linked)}
    if _polled(request):
        return status
    return {**status,
            **_history(db, ctx, base, dict(request.query_params), connection_id=connection.id)}


@router.get("/connections/{connection_id}/sync")
def connection_sync_page(connection_id: uuid.UUID, request: Request, db: DB,
                         ctx: ReadRuns) -> Response:
    return _tab(request, db, ctx, template="sync/connection_sync.html",
                **_connection_context(db, ctx, request, connection_id))


@router.post("/connections/{connection_id}/sync")
def sync_connection_now(connection_id: uuid.UUID, request: Request, db: DB, ctx: StartRuns,
                        form: PostedForm) -> Response:
    """A run for each provider event of the connection linked to a racehub event."""
    options = _RunOptions.of(form)
    try:
        requested = runs.request_participant_sync(
            db, ctx, connection_id=connection_id, full_refresh=options.full_refresh,
            preview=options.preview)
    except DomainError as exc:
        db.rollback()
        return _tab(request, db, ctx, template="sync/connection_sync.html",
                    status_code=exc.status_code,
                    **_connection_context(db, ctx, request, connection_id), **form_error(exc))
    db.commit()
    return RedirectResponse(
        f"/connections/{connection_id}/sync?flash={quote_plus(_started(requested))}",
        status_code=303)


# --- one run ------------------------------------------------------------------------------------


@router.get("/sync/runs/{sync_run_id}")
def run_page(sync_run_id: uuid.UUID, request: Request, db: DB, ctx: ReadRuns) -> Response:
    """A run: what it read and did, its error, and its changes, a page at a time; a run
    waiting for a person shows what applying it would do, to apply or discard."""
    return _run_view(request, db, ctx, sync_run_id)


def _run_view(request: Request, db: Session, ctx: TenantContext, sync_run_id: uuid.UUID, *,
              status_code: int = 200, **extra: Any) -> Response:
    run = runs.get_run_or_raise(db, ctx, run_id=sync_run_id)
    cursor = request.query_params.get("cursor") or None
    action = _enum_param(ChangeAction, request.query_params.get("change"), "change")
    changes, next_cursor = runs.list_changes(db, ctx, run_id=run.id, cursor=cursor,
                                             actions=[action] if action else None,
                                             limit=CHANGES_PAGE)
    # Both are SET NULL when deleted: an id on the run is an existing row of the tenant.
    event = (events_service.get_event_or_raise(db, ctx, event_id=run.event_id)
             if run.event_id else None)
    connection = (connections_service.get_connection_or_raise(
        db, ctx, connection_id=run.connection_id) if run.connection_id else None)
    url = f"/sync/runs/{run.id}"
    changes_url = f"{url}?change={action.value}" if action else url
    context: dict[str, Any] = {
        "run": run, "event": event, "connection": connection, "changes": changes,
        "names": runs.participant_labels(db, ctx, [c.participant_id for c in changes]),
        "timezone": event.timezone if event else None,
        "job": (jobs_service.get_readable_job(db, ctx, job_id=run.job_run_id)
                if run.job_run_id else None), "working": _working(run),
        "actions": [a.value for a in ChangeAction], "change_action": action.value if action else "",
        "changes_first_url": f"{changes_url}" if cursor else None,
        "changes_next_url": (f"{changes_url}{'&' if action else '?'}cursor="
                             f"{quote_plus(next_cursor)}" if next_cursor else None),
    }
    if run.status.is_waiting:
        context.update(_preview_context(db, ctx, run, request, url))
    target = request.headers.get("hx-target") if is_htmx(request) else None
    if target == "sync-changes":
        return render(request, db, ctx, "sync/_run_changes.html", **context)
    if target == "sync-preview":
        return render(request, db, ctx, "sync/_run_preview.html", **context)
    response = render(request, db, ctx, "sync/run.html", status_code=status_code,
                      can_start=ctx.can(Perm.SYNC_RUN_START), **context, **extra)
    if target == "run-facts" and not _working(run):
        response.headers["HX-Refresh"] = "true"  # it ended or waits: show all of it once
    return response


def _working(run: SyncRun) -> bool:
    return run.status.is_active and not run.status.is_waiting


def _preview_context(db: Session, ctx: TenantContext, run: SyncRun, request: Request,
                     url: str) -> dict[str, Any]:
    """A page of what applying a waiting run would do, filtered by action."""
    params = request.query_params
    action = _enum_param(PreviewAction, params.get("action"), "action")
    cursor = params.get("preview_cursor") or None
    items, next_cursor = preview.list_items(db, ctx, run_id=run.id, action=action,
                                            cursor=cursor, limit=PREVIEW_PAGE)
    kept = f"{url}?action={action.value}" if action else url
    return {
        "preview_items": items, "preview_counts": preview.counts(db, run.id),
        "preview_action": action.value if action else "",
        "preview_actions": [a.value for a in PreviewAction],
        "preview_first_url": kept if cursor else None,
        "preview_next_url": (f"{kept}{'&' if action else '?'}preview_cursor="
                             f"{quote_plus(next_cursor)}" if next_cursor else None),
    }


@router.post("/sync/runs/{sync_run_id}/apply")
def apply_run(sync_run_id: uuid.UUID, request: Request, db: DB, ctx: StartRuns,
              form: PostedForm) -> Response:
    """Apply (or, held by the breaker, confirm) a waiting run: all of it, or the
    registrations ticked in its preview."""
    chosen = [str(ref) for ref in form.getlist("source_ref")]
    everything = bool(form.get("all"))
    try:
        run = runs.get_run_or_raise(db, ctx, run_id=sync_run_id)
        if not everything and not chosen:
            raise Invalid("source_ref: tick the registrations to apply, or apply all "
                          "(discard applies none)", field="source_ref")
        decide = review.confirm_held if run.status == SyncStatus.HELD else review.apply_reviewed
        decide(db, ctx, run_id=run.id, source_refs=None if everything else chosen)
    except DomainError as exc:
        db.rollback()
        return _run_view(request, db, ctx, sync_run_id, status_code=exc.status_code,
                         **form_error(exc))
    db.commit()
    what = "all of it" if everything else f"{len(chosen)} registration(s)"
    return RedirectResponse(f"/sync/runs/{sync_run_id}?flash="
                            f"{quote_plus(f'Applying {what}')}", status_code=303)


@router.post("/sync/runs/{sync_run_id}/discard")
def discard_run(sync_run_id: uuid.UUID, request: Request, db: DB, ctx: StartRuns) -> Response:
    """Apply nothing of a waiting run; the next run reads the same changes again."""
    try:
        review.discard(db, ctx, run_id=sync_run_id)
    except DomainError as exc:
        db.rollback()
        return _run_view(request, db, ctx, sync_run_id, status_code=exc.status_code,
                         **form_error(exc))
    db.commit()
    return RedirectResponse(f"/sync/runs/{sync_run_id}?flash="
                            f"{quote_plus('Discarded: nothing was applied')}", status_code=303)
