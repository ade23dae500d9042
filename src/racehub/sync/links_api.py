"""JSON API of links: which racehub event each provider event feeds, and which category
each provider race maps to. Thin: sync/links.py holds the rules.

Reading follows what is read through: an event's links with the event (every role), a
connection's links with the connection (``sync:connection:read``). Linking, unlinking and
mapping categories is ``sync:link:manage`` (EVENT_MANAGER and up)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.sync import links, service
from racehub.sync.api import AppKeyring
from racehub.sync.schemas import (
    CategoryLinkRead,
    CategoryLinksUpdate,
    LinkCreate,
    LinkRead,
    LinkUpdate,
)

router = APIRouter(prefix="/api", tags=["links"])

ReadEvents = Annotated[TenantContext, Depends(require(Perm.EVENTS_EVENT_READ))]
ReadConnections = Annotated[TenantContext, Depends(require(Perm.SYNC_CONNECTION_READ))]
ManageLinks = Annotated[TenantContext, Depends(require(Perm.SYNC_LINK_MANAGE))]


@router.get("/events/{event_id}/links", response_model=list[LinkRead])
def list_event_links(event_id: uuid.UUID, db: DB, ctx: ReadEvents) -> list[LinkRead]:
    """The provider events feeding this event, with each stream's last success and cursor."""
    return links.list_event_links(db, ctx, event_id=event_id)


@router.post("/events/{event_id}/links", response_model=LinkRead, status_code=201)
def create_link(event_id: uuid.UUID, data: LinkCreate, db: DB, ctx: ManageLinks,
                keyring: AppKeyring) -> LinkRead:
    """Link a provider event of a registration connection to this event (409 naming the
    event it already feeds). With ``checkProvider`` the provider is asked for its events
    first (422 with its scrubbed answer when it cannot be reached)."""
    listed = None
    if data.check_provider:
        listed = {e.ref: e.name for e in service.list_provider_events(
            db, ctx, keyring=keyring, connection_id=data.connection_id)}
    link = links.create_link(db, ctx, event_id=event_id, data=data, listed=listed)
    db.commit()
    return links.read_link(db, ctx, link_id=link.id)


@router.patch("/events/{event_id}/links/{link_id}", response_model=LinkRead)
def update_link(event_id: uuid.UUID, link_id: uuid.UUID, data: LinkUpdate, db: DB,
                ctx: ManageLinks) -> LinkRead:
    links.update_link(db, ctx, event_id=event_id, link_id=link_id, data=data)
    db.commit()
    return links.read_link(db, ctx, link_id=link_id)


@router.delete("/events/{event_id}/links/{link_id}", status_code=204, response_class=Response)
def unlink(event_id: uuid.UUID, link_id: uuid.UUID, db: DB, ctx: ManageLinks) -> Response:
    """Unlink: the provider event stays chosen on its connection and feeds no event. 409
    while a run of the link is queued, running, retrying, held or awaiting review."""
    links.unlink(db, ctx, event_id=event_id, link_id=link_id)
    db.commit()
    return Response(status_code=204)


@router.get("/events/{event_id}/links/{link_id}/categories",
            response_model=list[CategoryLinkRead])
def list_category_links(event_id: uuid.UUID, link_id: uuid.UUID, db: DB,
                        ctx: ReadEvents) -> list[CategoryLinkRead]:
    """The provider races/distances seen for the link, each with its category or none."""
    return links.list_category_links(db, ctx, event_id=event_id, link_id=link_id)


@router.put("/events/{event_id}/links/{link_id}/categories",
            response_model=list[CategoryLinkRead])
def set_category_links(event_id: uuid.UUID, link_id: uuid.UUID, data: CategoryLinksUpdate,
                       db: DB, ctx: ManageLinks) -> list[CategoryLinkRead]:
    """Map the provider races sent to categories of this event (null: none); races not sent
    keep their mapping. Answers every race of the link."""
    result = links.set_category_links(db, ctx, event_id=event_id, link_id=link_id, data=data)
    db.commit()
    return result


@router.get("/connections/{connection_id}/links", response_model=list[LinkRead])
def list_connection_links(connection_id: uuid.UUID, db: DB,
                          ctx: ReadConnections) -> list[LinkRead]:
    """Every provider event chosen on the connection, linked or not, and the event each feeds."""
    return links.list_connection_links(db, ctx, connection_id=connection_id)
