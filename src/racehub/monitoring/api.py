"""JSON API of the unified views and sync monitoring. Thin: unified.py and service.py hold
the queries.

Permissions (existing ones, no new grant): the unified events are events
(``events:event:read``, any role) with the link facts every role already reads on an
event's Sync tab; the sync summary and runs per hour add up sync runs
(``sync:run:read``, any role, as the run history they sum) and name each connection
(name, provider, direction, credential check status), which the run history and Sync
tabs already show every role; the settings and credentials of a connection stay behind
``sync:connection:read``/``manage``. Participant tracking counts people and entries
(``events:participant:read``, any role), no personal data. Every tenant at once is for
platform admins only (``allTenants=true``), audit-logged."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import TypeAdapter

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.core.schemas import SaneDateTime
from racehub.events.models import EventStatus
from racehub.monitoring import service, unified
from racehub.monitoring.schemas import (
    HourBucket,
    ParticipantTrackingRead,
    SyncSummaryRead,
    UnifiedEventsPage,
)

router = APIRouter(prefix="/api", tags=["monitoring"])

ReadEvents = Annotated[TenantContext, Depends(require(Perm.EVENTS_EVENT_READ))]
ReadRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_READ))]
ReadParticipants = Annotated[TenantContext, Depends(require(Perm.EVENTS_PARTICIPANT_READ))]
Limit = Annotated[int, Query(ge=1, le=500)]


UNIFIED_PAGE = TypeAdapter(UnifiedEventsPage)


# Mounted before the events router: "/api/events/{event_id}" would otherwise read
# "unified" as an event id (a 422).
@router.get("/events/unified", response_model=UnifiedEventsPage)
def unified_events(
    db: DB,
    ctx: ReadEvents,
    start_from: Annotated[SaneDateTime | None, Query(
        alias="startFrom", description="Events starting at or after (ISO 8601; UTC without "
                                       "an offset)")] = None,
    start_to: Annotated[SaneDateTime | None, Query(
        alias="startTo", description="Events starting before (exclusive)")] = None,
    provider: Annotated[str | None, Query(
        description="Only events linked to a provider event (or timing race) of this "
                    "provider, e.g. RUNSIGNUP")] = None,
    status: EventStatus | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Response:
    """The tenant's events, newest start first, each with the provider events feeding it
    (provider, connection, provider event id, its registrations, its last successful
    sync), its timing links and racehub's participant count."""
    items, next_cursor = unified.list_unified_events(
        db, ctx, flt=unified.UnifiedFilter(start_from=start_from, start_to=start_to,
                                           provider=provider, status=status),
        cursor=cursor, limit=limit)
    page = UnifiedEventsPage.model_construct(items=items, next_cursor=next_cursor, total=None,
                                             connections=unified.list_connections(db, ctx))
    # Encoded once, as the participants page is: FastAPI would validate the returned page
    # again (every link of every event) before encoding it.
    return Response(UNIFIED_PAGE.dump_json(page, by_alias=True),
                    media_type="application/json")


@router.get("/monitoring/sync-summary", response_model=SyncSummaryRead)
def sync_summary(
    db: DB,
    ctx: ReadRuns,
    all_tenants: Annotated[bool, Query(
        alias="allTenants", description="Also one row per tenant (platform admins only; "
                                        "audit-logged)")] = False,
) -> SyncSummaryRead:
    summary = service.sync_summary(db, ctx, all_tenants=all_tenants)
    if all_tenants:
        db.commit()  # the audit entry of a cross-tenant read
    return summary


@router.get("/monitoring/runs-per-hour", response_model=list[HourBucket])
def runs_per_hour(
    db: DB,
    ctx: ReadRuns,
    connection_id: Annotated[uuid.UUID | None, Query(alias="connectionId")] = None,
    hours: Annotated[int, Query(ge=1, le=168)] = service.CHART_HOURS,
) -> list[HourBucket]:
    """Runs requested per hour (UTC, the current hour last) by outcome as they stand now."""
    if connection_id is not None:
        service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    return service.runs_per_hour(db, ctx, hours=hours, connection_id=connection_id)


@router.get("/monitoring/participant-tracking", response_model=ParticipantTrackingRead)
def participant_tracking(
    db: DB, ctx: ReadParticipants, cursor: str | None = None, limit: Limit = 50,
) -> ParticipantTrackingRead:
    """Unique people, events and providers per person; per event (a keyset page of those
    with a registration link) each provider's count against racehub's."""
    return service.participant_tracking(db, ctx, cursor=cursor, limit=limit)
