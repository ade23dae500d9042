"""The unified events view: each racehub event with every provider event feeding it, the
timing races it is linked to, and how many participants each source gave.

A reporting read over the events and sync tables (the seed's ``unified_events``): a page
costs a fixed number of queries whatever its size (the events, their links with their
counts and last runs, racehub's counts), each bounded by the page's ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Select, any_, bindparam, exists, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import any_of, scoped
from racehub.core.schemas import construct_trusted
from racehub.db.adapters import as_read
from racehub.events.models import Event, EventParticipant, EventStatus, ParticipantStatus
from racehub.monitoring.schemas import (
    ConnectionBrief,
    LastRun,
    UnifiedEventRead,
    UnifiedLinkRead,
)
from racehub.providers.catalog import PROVIDERS, Direction
from racehub.sync.models import EventLink, ProviderConnection, SyncedRecord, SyncRun, SyncStatus


@dataclass(frozen=True)
class UnifiedFilter:
    """``start_from`` inclusive, ``start_to`` exclusive (naive: UTC); ``provider``: events
    with a linked provider event (or timing race) of that provider."""

    start_from: datetime | None = None
    start_to: datetime | None = None
    provider: str | None = None
    status: EventStatus | None = None


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def list_unified_events(
    db: Session, ctx: TenantContext, *, flt: UnifiedFilter | None = None,
    cursor: str | None = None, limit: int = 50,
) -> tuple[list[UnifiedEventRead], str | None]:
    """A keyset page of the tenant's events, newest start first, each with its links."""
    check_limit(limit)
    flt = flt or UnifiedFilter()
    start_from, start_to = _utc(flt.start_from), _utc(flt.start_to)
    if start_from is not None and start_to is not None and start_to <= start_from:
        raise Invalid("startTo must be after startFrom", field="startTo")
    stmt: Select[Any] = scoped(ctx, Event)
    if start_from is not None:
        stmt = stmt.where(Event.start_at >= start_from)
    if start_to is not None:
        stmt = stmt.where(Event.start_at < start_to)
    if flt.status is not None:
        stmt = stmt.where(Event.status == flt.status)
    if flt.provider is not None:
        provider = flt.provider.upper()
        if provider not in PROVIDERS:
            raise Invalid(f"provider: '{flt.provider}' is not one of "
                          f"{', '.join(sorted(PROVIDERS))}", field="provider")
        stmt = stmt.where(exists().where(EventLink.tenant_id == ctx.tenant_id,
                                         EventLink.event_id == Event.id,
                                         EventLink.provider == provider))
    key = SortKey(columns=[as_read(Event.start_at), Event.id], descending=True)
    # Plain rows, not ORM objects: the page needs six columns of each event.
    columns = cast(Select[Any], stmt.with_only_columns(
        Event.id, Event.name, Event.start_at, Event.timezone, Event.location, Event.status))
    rows = db.execute(apply_keyset(columns, key, cursor, limit)).all()
    events, next_cursor = split_page(rows, limit, lambda e: [e.start_at.isoformat(), e.id])
    ids = [e.id for e in events]
    links = links_of_events(db, ctx, event_ids=ids)
    counts = active_entries(db, event_ids=ids)
    items = []
    for event_id, name, start_at, timezone, location, status in events:
        own = links.get(event_id, [])
        items.append(construct_trusted(UnifiedEventRead, {
            "id": event_id, "name": name, "start_at": start_at, "timezone": timezone,
            "location": location, "status": status, "participants": counts.get(event_id, 0),
            "links": [link for direction, link in own if direction == Direction.REGISTRATION],
            "timing_links": [link for direction, link in own
                             if direction == Direction.SCORING]}))
    return items, next_cursor


def links_of_events(
    db: Session, ctx: TenantContext, *, event_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[Direction, UnifiedLinkRead]]]:
    """Every link of the events, with its connection's direction, in one query: per link its
    registrations (counted over the records index), its newest run and its newest
    successful one (each read backwards off the link's runs index, stopping at the first)."""
    if not event_ids:
        return {}
    rows = db.execute(_links_statement(), {"tenant_id": ctx.tenant_id,
                                           "event_ids": list(event_ids)}    ).all()
    out: dict[uuid.UUID, list[tuple[Direction, UnifiedLinkRead]]] = {}
    # Read models built from the columns they mirror, without validation: validating the
    # ~130 links of a page cost a third of the request.
    for (link_id, event_id, provider, connection_id, connection_name, direction, ref, name,
         auto_sync, link_success, next_run_at, active, withdrawn, run_id, run_type,
         run_status, run_created, run_finished, ok_type, ok_finished) in rows:
        # The link records its participant pulls' successes itself; the newest successful
        # run covers every other sync type (start list pushes, results pulls).
        last_success, last_type = link_success, "participants" if link_success else None
        if ok_finished is not None and (last_success is None or ok_finished > last_success):
            last_success, last_type = ok_finished, ok_type
        registration = direction == Direction.REGISTRATION
        last_run = None if run_id is None else construct_trusted(LastRun, {
            "id": run_id, "sync_type": run_type, "status": run_status.value,
            "created_at": run_created, "finished_at": run_finished})
        out.setdefault(event_id, []).append((direction, construct_trusted(UnifiedLinkRead, {
            "id": link_id, "provider": provider, "connection_id": connection_id,
            "connection_name": connection_name, "provider_event_id": ref,
            "provider_event_name": name, "auto_sync": auto_sync,
            "last_success_at": last_success, "last_success_sync_type": last_type,
            "next_run_at": next_run_at, "last_run": last_run,
            "participants": active if registration else None,
            "withdrawn": withdrawn if registration else None})))
    return out


@lru_cache(maxsize=1)
def _links_statement() -> Select[Any]:
    """``links_of_events``' statement, built once with the tenant and the event ids as
    parameters (``tenant_id``, ``event_ids``): composing its four lateral reads and
    computing its cache key cost more CPU than running it."""
    link_id = EventLink.id
    # Each count is read from an index alone (the partial index of the records not
    # withdrawn, the link index for all): no tenant test on the records, whose link is the
    # tenant's already (the outer query is scoped).
    active = (select(func.count().label("n"))
              .where(SyncedRecord.link_id == link_id, SyncedRecord.withdrawn_at.is_(None))
              .lateral("active"))
    records = (select(func.count().label("n")).where(SyncedRecord.link_id == link_id)
               .lateral("records"))
    last_run = (
        select(SyncRun.id, SyncRun.sync_type, SyncRun.status, SyncRun.created_at,
               SyncRun.finished_at)
        .where(SyncRun.link_id == link_id)
        .order_by(SyncRun.created_at.desc()).limit(1)
        .lateral("last_run"))
    last_ok = (
        select(SyncRun.sync_type, SyncRun.finished_at)
        .where(SyncRun.link_id == link_id, SyncRun.status == SyncStatus.SUCCEEDED)
        .order_by(SyncRun.created_at.desc()).limit(1)
        .lateral("last_ok"))
    event_ids: Any = bindparam("event_ids", type_=ARRAY(EventLink.event_id.type))
    statement = (
        select(EventLink.id, EventLink.event_id, EventLink.provider, EventLink.connection_id,
               ProviderConnection.name, ProviderConnection.direction,
               EventLink.provider_event_ref, EventLink.provider_event_name,
               EventLink.auto_sync, EventLink.last_success_at, EventLink.next_run_at,
               active.c.n, records.c.n - active.c.n,
               last_run.c.id, last_run.c.sync_type, last_run.c.status,
               last_run.c.created_at, last_run.c.finished_at,
               last_ok.c.sync_type, last_ok.c.finished_at)
        .join(ProviderConnection, ProviderConnection.id == EventLink.connection_id)
        .outerjoin(active, true())
        .outerjoin(records, true())
        .outerjoin(last_run, true())
        .outerjoin(last_ok, true())
        .where(EventLink.tenant_id == bindparam("tenant_id"),
               EventLink.event_id == any_(event_ids))
        .order_by(EventLink.event_id, EventLink.provider, ProviderConnection.name,
                  EventLink.provider_event_ref))
    return cast(Select[Any], statement)


def active_entries(db: Session, *, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Active entries per event, counted from the partial index of active entries alone.
    ``event_ids`` must come from a tenant-scoped read: the index holds no tenant."""
    if not event_ids:
        return {}
    rows = db.execute(
        select(EventParticipant.event_id, func.count())
        .where(any_of(EventParticipant.event_id, event_ids),
               EventParticipant.status == ParticipantStatus.ACTIVE)
        .group_by(EventParticipant.event_id)).all()
    return {event_id: n for event_id, n in rows}


def list_connections(db: Session, ctx: TenantContext) -> list[ConnectionBrief]:
    rows = db.execute(
        select(ProviderConnection.id, ProviderConnection.name, ProviderConnection.provider,
               ProviderConnection.direction)
        .where(ProviderConnection.tenant_id == ctx.tenant_id)
        .order_by(ProviderConnection.name)).all()
    return [ConnectionBrief(id=i, name=n, provider=p, direction=d) for i, n, p, d in rows]
