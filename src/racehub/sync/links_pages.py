"""The Provider events page of a connection: its provider events, discovered (candidates)
or chosen, with what the provider said of each (start, time zone as given, location, race)
and which racehub event each feeds; for EVENT_MANAGER and up, "Discover events now", a form
to link one to an existing event (or unlink it) and one to create a racehub event from it.
The event page links candidates near its date through the same link form."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

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
from racehub.sync import candidates, discovery, links, service
from racehub.sync.discovery_schemas import CandidateEventCreate, CandidateRead
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


def _local_input(at: datetime | None, zone: str | None) -> str:
    """``at`` as a datetime-local input shows it: in the provider's zone (blank without)."""
    if at is None or not zone:
        return ""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


def _create_values(rows: list[CandidateRead]) -> dict[uuid.UUID, dict[str, str]]:
    """What each candidate's "Create event" form is prefilled with: the provider's name,
    start (its race's first), time zone and location; blank what it did not give."""
    first_start: dict[tuple[uuid.UUID, str], datetime] = {}
    for c in rows:
        if c.parent_ref and c.start_at and c.event_id is None and c.gone_at is None:
            key = (c.connection_id, c.parent_ref)
            first_start[key] = min(first_start.get(key, c.start_at), c.start_at)
    out = {}
    for c in rows:
        start = first_start.get((c.connection_id, c.parent_ref or ""), c.start_at)
        out[c.id] = {"name": (c.parent_name or c.race_name or c.name)[:200],
                     "start_at": _local_input(start or c.start_at, c.time_zone),
                     "timezone": c.time_zone or "", "location": c.location[:300]}
    return out


def _page(request: Request, db: Session, ctx: TenantContext, connection_id: uuid.UUID,
          status_code: int = 200, **context: Any) -> Response:
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    participant_source = connection.direction == Direction.REGISTRATION
    try:
        discovery.check_discoverable(connection)
        discoverable = True
    except DomainError:
        discoverable = False
    rows = candidates.list_candidates(db, ctx, connection_id=connection_id)
    return render(request, db, ctx, "sync/links.html", status_code=status_code,
                  connection=connection, participant_source=participant_source,
                  candidates=rows, create_values=_create_values(rows),
                  discoverable=discoverable,
                  last_discovery=discovery.last_discovery(db, ctx, connection_id=connection_id),
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
        connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
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
    flash = (f"Provider event {link.provider_event_ref} now feeds {event_name}"
             if connection.direction == Direction.REGISTRATION else
             f"{event_name}'s start list now goes to {link.provider_event_ref}, and its results "
             "come from there")
    if form.get("return_to") == "event":  # linked from the event page: back there
        return RedirectResponse(f"/events/{event_id}?flash={quote_plus(flash)}",
                                status_code=303)
    return _redirect(connection_id, flash)


@router.post("/connections/{connection_id}/discover")
def discover(connection_id: uuid.UUID, request: Request, db: DB, ctx: ManageLinks) -> Response:
    try:
        asked = discovery.request_discovery(db, ctx, connection_id=connection_id)
    except DomainError as exc:
        db.rollback()
        return _page(request, db, ctx, connection_id, status_code=exc.status_code,
                     **form_error(exc))
    db.commit()
    return _redirect(connection_id, "A discovery is already under way: reload to see it"
                     if asked.joined else "Discovering the provider's events: reload in a "
                     "moment to see them")


@router.post("/connections/{connection_id}/provider-events/{link_id}/create-event")
def create_event(connection_id: uuid.UUID, link_id: uuid.UUID, request: Request, db: DB,
                 ctx: ManageLinks, form: PostedForm) -> Response:
    links.get_link_or_raise(db, ctx, link_id=link_id, connection_id=connection_id)
    try:
        data = validate_model(CandidateEventCreate, {
            "name": str(form.get("name") or ""), "timezone": str(form.get("timezone") or ""),
            "location": str(form.get("location") or ""),
            "start_at": str(form.get("start_at") or "") or None,
            "with_race": form.get("with_race") == "on"})
        event, made = candidates.create_event_from_candidate(db, ctx, link_id=link_id,
                                                             data=data)
    except DomainError as exc:
        db.rollback()
        return _page(request, db, ctx, connection_id, status_code=exc.status_code,
                     create_error_for=link_id, **form_error(exc))
    db.commit()
    flash = (f"Event {event.name} created from {len(made)} provider event(s), each a "
             "category")
    return RedirectResponse(f"/events/{event.id}?flash={quote_plus(flash)}", status_code=303)


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
