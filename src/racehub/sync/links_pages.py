"""HTML page of a connection's provider events: which racehub event each feeds, and a plain
form to link one to an event (EVENT_MANAGER and up) or unlink it. Part 2's Provider events
page (discovery, creating an event from a provider's) grows from this one."""

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
from racehub.core.pagination import MAX_PAGE_SIZE
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import Event
from racehub.providers.catalog import Direction
from racehub.sync import links, service
from racehub.sync.schemas import LinkCreate
from racehub.web.pages import PostedForm, form_error, render, validate_model

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadConnections = Annotated[TenantContext, Depends(require(Perm.SYNC_CONNECTION_READ))]
ManageLinks = Annotated[TenantContext, Depends(require(Perm.SYNC_LINK_MANAGE))]


def _redirect(connection_id: uuid.UUID, flash: str) -> Response:
    return RedirectResponse(f"/connections/{connection_id}/links?flash={quote_plus(flash)}",
                            status_code=303)


def links_context(db: Session, ctx: TenantContext, connection_id: uuid.UUID) -> dict[str, Any]:
    """What the links table needs (also shown on the connection's edit page)."""
    can_link = ctx.can(Perm.SYNC_LINK_MANAGE)
    events: list[Event] = []
    if can_link:  # the newest events first, as the events list shows them
        events, _ = events_service.list_events(db, ctx, limit=MAX_PAGE_SIZE)
    return {"links": links.list_connection_links(db, ctx, connection_id=connection_id),
            "can_link": can_link, "link_events": events}


def _page(request: Request, db: Session, ctx: TenantContext, connection_id: uuid.UUID,
          status_code: int = 200, **context: Any) -> Response:
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    return render(request, db, ctx, "sync/links.html", status_code=status_code,
                  connection=connection,
                  participant_source=connection.direction == Direction.REGISTRATION,
                  **links_context(db, ctx, connection_id), **context)


@router.get("/connections/{connection_id}/links")
def links_page(connection_id: uuid.UUID, request: Request, db: DB,
               ctx: ReadConnections) -> Response:
    return _page(request, db, ctx, connection_id)


def _form_uuid(value: object, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value or ""))
    except ValueError:
        raise Invalid(f"{field}: choose an event", field=field) from None


@router.post("/connections/{connection_id}/links")
def create_link(connection_id: uuid.UUID, request: Request, db: DB, ctx: ManageLinks,
                form: PostedForm) -> Response:
    try:
        service.get_connection_or_raise(db, ctx, connection_id=connection_id)
        data = validate_model(LinkCreate, {
            "connection_id": connection_id,
            "provider_event_ref": str(form.get("provider_event_ref") or ""),
            "provider_event_name": str(form.get("provider_event_name") or "").strip() or None})
        event_id = _form_uuid(form.get("event_id"), "event_id")
        link = links.create_link(db, ctx, event_id=event_id, data=data)
        event_name = events_service.get_event_or_raise(db, ctx, event_id=event_id).name
    except DomainError as exc:
        db.rollback()
        return _page(request, db, ctx, connection_id, status_code=exc.status_code,
                     **form_error(exc))
    db.commit()
    return _redirect(connection_id, f"Provider event {link.provider_event_ref} now feeds "
                                    f"{event_name}")


@router.post("/connections/{connection_id}/links/{link_id}/unlink")
def unlink(connection_id: uuid.UUID, link_id: uuid.UUID, request: Request, db: DB,
           ctx: ManageLinks) -> Response:
    link = links.get_link_or_raise(db, ctx, link_id=link_id, connection_id=connection_id)
    if link.event_id is None:
        return _redirect(connection_id, f"Provider event {link.provider_event_ref} was not "
                                        "linked")
    ref = link.provider_event_ref
    try:
        links.unlink(db, ctx, event_id=link.event_id, link_id=link.id)
    except DomainError as exc:
        db.rollback()
        return _page(request, db, ctx, connection_id, status_code=exc.status_code,
                     **form_error(exc))
    db.commit()
    return _redirect(connection_id, f"Provider event {ref} unlinked")
