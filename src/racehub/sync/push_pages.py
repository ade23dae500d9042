"""The start list push from the event's Sync tab: "Push start list" on a timing link shows
what would be sent (counts and rows), then the operator confirms it. Thin: timing_push.py
holds the rules; the permissions are the API's (sync:timing:run to push, sync:link:manage
to confirm a live change)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.exceptions import DomainError
from racehub.core.rbac import Perm
from racehub.sync import timing_push
from racehub.sync.exceptions import LinkNotFound
from racehub.sync.push_plan import PushAction
from racehub.web.pages import PostedForm, form_error, render

router = APIRouter(tags=["pages"], include_in_schema=False)

PushTiming = Annotated[TenantContext, Depends(require(Perm.SYNC_TIMING_RUN))]

ROWS_SHOWN = 500  # the counts cover every row; the page lists this many


def _preview(db: Session, ctx: TenantContext, event_id: uuid.UUID,
             link_id: uuid.UUID) -> timing_push.PushPreview:
    preview = timing_push.preview_push(db, ctx, link_id=link_id)
    if preview.target.event.id != event_id:
        raise LinkNotFound()
    return preview


def _page(request: Request, db: Session, ctx: TenantContext, event_id: uuid.UUID,
          link_id: uuid.UUID, *, status_code: int = 200, **extra: Any) -> Response:
    preview = _preview(db, ctx, event_id, link_id)
    plan = preview.plan
    order = (PushAction.PROBLEM, PushAction.WITHDRAWN, PushAction.CHANGED, PushAction.NEW)
    rows = [r for action in order for r in plan.of(action)]
    return render(request, db, ctx, "sync/push_preview.html", status_code=status_code,
                  preview=preview, target=preview.target, plan=plan, event=preview.target.event,
                  rows=rows[:ROWS_SHOWN], more_rows=max(0, len(rows) - ROWS_SHOWN),
                  can_confirm=ctx.can(Perm.SYNC_LINK_MANAGE),
                  live_until=timing_push.live_until(preview.target.event), **extra)


@router.get("/events/{event_id}/sync/push/{link_id}")
def push_preview_page(event_id: uuid.UUID, link_id: uuid.UUID, request: Request, db: DB,
                      ctx: PushTiming) -> Response:
    """What "Push start list" would send to this timing event, to confirm."""
    return _page(request, db, ctx, event_id, link_id)


@router.post("/events/{event_id}/sync/push/{link_id}")
def push_start_list(event_id: uuid.UUID, link_id: uuid.UUID, request: Request, db: DB,
                    ctx: PushTiming, form: PostedForm) -> Response:
    """Push what the preview showed (refused when the plan changed since: its fingerprint)."""
    try:
        target = _preview(db, ctx, event_id, link_id).target
        requested = timing_push.request_push(
            db, ctx, target=target, confirm_live=bool(form.get("confirm_live")),
            plan_fingerprint=str(form.get("plan_fingerprint") or "") or None)
    except DomainError as exc:
        db.rollback()
        return _page(request, db, ctx, event_id, link_id, status_code=exc.status_code,
                     **form_error(exc))
    db.commit()
    flash = ("A push of this timing event was already under way: this is it" if requested.joined
             else "Start list push started")
    return RedirectResponse(f"/sync/runs/{requested.run.id}?flash={quote_plus(flash)}",
                            status_code=303)
