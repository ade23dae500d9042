"""JSON API of discovered provider events (candidates): discover a connection's, list them,
link one to an event or create an event from it. Thin: discovery.py and candidates.py hold
the rules.

Discovering, linking and creating are ``sync:link:manage`` (EVENT_MANAGER and up); reading
candidates goes with reading connections (``sync:connection:read``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.events.schemas import EventRead
from racehub.sync import candidates, discovery, links
from racehub.sync.discovery_schemas import (
    CandidateEventCreate,
    CandidateEventRead,
    CandidateLink,
    CandidateRead,
    DiscoveryRead,
)
from racehub.sync.schemas import LinkRead

router = APIRouter(prefix="/api", tags=["provider events"])

ReadConnections = Annotated[TenantContext, Depends(require(Perm.SYNC_CONNECTION_READ))]
ManageLinks = Annotated[TenantContext, Depends(require(Perm.SYNC_LINK_MANAGE))]


@router.post("/connections/{connection_id}/discover", response_model=DiscoveryRead,
             status_code=202)
def discover(connection_id: uuid.UUID, db: DB, ctx: ManageLinks) -> DiscoveryRead:
    """Read the provider's event listing in the background (a job): each provider event
    becomes a candidate, one gone from a complete listing is marked. Joins a discovery of
    the connection already queued or running. 422 for a connection whose events are not
    discovered (not a registration connection, or its provider lists no events)."""
    asked = discovery.request_discovery(db, ctx, connection_id=connection_id)
    db.commit()
    return DiscoveryRead(job_id=asked.job.id, joined=asked.joined)


@router.get("/provider-events", response_model=list[CandidateRead])
def list_provider_events(
    db: DB, ctx: ReadConnections,
    connection_id: Annotated[uuid.UUID | None, Query(alias="connectionId")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    linked: bool | None = None,
    gone: bool | None = None,
    start_from: Annotated[datetime | None, Query(alias="startFrom")] = None,
    start_to: Annotated[datetime | None, Query(alias="startTo")] = None,
    near_event_id: Annotated[uuid.UUID | None, Query(
        alias="nearEventId", description="Unlinked provider events of registration "
        f"connections starting within {candidates.NEAR_DAYS} days of this event")] = None,
    limit: Annotated[int, Query(ge=1, le=candidates.LIST_LIMIT)] = candidates.LIST_LIMIT,
) -> list[CandidateRead]:
    """The provider events of the tenant's connections, discovered or chosen, soonest start
    first: which is linked to which event, which is gone from the provider's listing."""
    return candidates.list_candidates(
        db, ctx, connection_id=connection_id, q=q, linked=linked, gone=gone,
        start_from=start_from, start_to=start_to, near_event_id=near_event_id, limit=limit)


@router.post("/provider-events/{link_id}/link", response_model=list[LinkRead],
             status_code=201)
def link_provider_event(link_id: uuid.UUID, data: CandidateLink, db: DB,
                        ctx: ManageLinks) -> list[LinkRead]:
    """Link the provider event (with ``withRace`` the unlinked ones of its race too) to an
    existing event; 409 naming the event it already feeds."""
    made = candidates.link_candidate(db, ctx, link_id=link_id, event_id=data.event_id,
                                     with_race=data.with_race)
    db.commit()
    return [links.read_link(db, ctx, link_id=row.id) for row in made]


@router.post("/provider-events/{link_id}/create-event", response_model=CandidateEventRead,
             status_code=201)
def create_event(link_id: uuid.UUID, data: CandidateEventCreate, db: DB,
                 ctx: ManageLinks) -> CandidateEventRead:
    """A racehub event from the provider event: name, start, time zone and location are the
    provider's unless sent (422 naming startAt or timezone when the provider gave none);
    each provider event of its race becomes a category, linked and mapped to it."""
    event, made = candidates.create_event_from_candidate(db, ctx, link_id=link_id, data=data)
    db.commit()
    db.refresh(event)  # its start as stored (UTC), not as sent
    return CandidateEventRead(event=EventRead.model_validate(event),
                              links=[links.read_link(db, ctx, link_id=row.id) for row in made])
