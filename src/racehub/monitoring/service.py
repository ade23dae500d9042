"""Sync monitoring: per connection (or, for a platform admin, per tenant) what is linked,
how the last 24 h of runs went, what runs now and what is next; runs per hour by outcome;
and participant tracking (people across events and providers, and each event's drift
between what its providers sent and what racehub holds).

Reads over the sync and events tables, a few grouped queries each, whose cost follows
the links and the runs of the window asked for (every runs query starts from an index on
(tenant or connection, created_at), or from the partial index of active runs), never the
whole history. Runs are counted generically by ``sync_type``: participant pulls, start
list pushes and results pulls alike."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, func, select, true
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Forbidden
from racehub.core.models import Tenant
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import any_of, scoped
from racehub.db.adapters import as_read
from racehub.events.models import Event, EventParticipant, ParticipantStatus
from racehub.monitoring import unified
from racehub.monitoring.schemas import (
    ConnectionSummary,
    EventDrift,
    HourBucket,
    LinkDrift,
    ParticipantTrackingRead,
    ProvidersPerPerson,
    SyncSummaryRead,
    SyncSummaryRow,
    SyncTypeCounts,
    TenantSummary,
)
from racehub.providers.catalog import Direction
from racehub.sync import service as connections_service
from racehub.sync.models import (
    ACTIVE_SYNC_STATUSES,
    EventLink,
    ProviderConnection,
    SyncedRecord,
    SyncRun,
    SyncStatus,
)

WINDOW = timedelta(hours=24)
CHART_HOURS = 48
# Outcomes of the chart: finished well, finished badly, finished otherwise, not finished.
OTHER_STATUSES = (SyncStatus.CANCELLED, SyncStatus.DISCARDED)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


@dataclass
class _Tally:
    """What one group (a connection, a tenant) adds up to, filled by several queries."""

    linked: int = 0
    active: int = 0
    last_success_at: datetime | None = None
    next_run_at: datetime | None = None
    running: int = 0
    queued: int = 0
    waiting: int = 0
    by_type: dict[str, list[int]] = field(default_factory=dict)  # type -> [runs, ok, failed]

    def success(self, at: datetime | None) -> None:
        if at is not None and (self.last_success_at is None or at > self.last_success_at):
            self.last_success_at = at

    def row(self) -> dict[str, Any]:
        runs = sum(c[0] for c in self.by_type.values())
        ok = sum(c[1] for c in self.by_type.values())
        failed = sum(c[2] for c in self.by_type.values())
        return {
            "linked_links": self.linked, "active_links": self.active, "syncs_24h": runs,
            "succeeded_24h": ok, "failed_24h": failed,
            "success_rate": round(ok / (ok + failed), 4) if ok + failed else None,
            "last_success_at": self.last_success_at, "next_run_at": self.next_run_at,
            "running_now": self.running, "queued_now": self.queued,
            "waiting_now": self.waiting,
            "by_sync_type": [SyncTypeCounts(sync_type=t, runs=c[0], succeeded=c[1],
                                            failed=c[2])
                             for t, c in sorted(self.by_type.items())],
        }

    def add(self, other: _Tally) -> None:
        self.linked += other.linked
        self.active += other.active
        self.success(other.last_success_at)
        if other.next_run_at is not None and (self.next_run_at is None
                                              or other.next_run_at < self.next_run_at):
            self.next_run_at = other.next_run_at
        self.running += other.running
        self.queued += other.queued
        self.waiting += other.waiting
        for sync_type, counts in other.by_type.items():
            mine = self.by_type.setdefault(sync_type, [0, 0, 0])
            for i, n in enumerate(counts):
                mine[i] += n


def _run_counts() -> tuple[Any, ...]:
    return (func.count().label("runs"),
            func.count().filter(SyncRun.status == SyncStatus.SUCCEEDED).label("ok"),
            func.count().filter(SyncRun.status == SyncStatus.FAILED).label("failed"))


def _tally_links(db: Session, tallies: dict[Any, _Tally], group: Any,
                 where: Any) -> None:
    linked = EventLink.event_id.is_not(None)
    scheduled = and_(linked, EventLink.auto_sync)
    for key, n_linked, n_active, last_ok, next_run in db.execute(
        select(group, func.count().filter(linked), func.count().filter(scheduled),
               func.max(EventLink.last_success_at),
               func.min(EventLink.next_run_at).filter(scheduled))
        .where(where).group_by(group)
    ).all():
        tally = tallies.setdefault(key, _Tally())
        tally.linked, tally.active, tally.next_run_at = n_linked, n_active, next_run
        tally.success(last_ok)


def _tally_active(db: Session, tallies: dict[Any, _Tally], group: Any, where: Any) -> None:
    """Runs not finished: read off the partial index of active runs (the statuses here
    are exactly its predicate's), small whatever the history."""
    for key, status, n in db.execute(
        select(group, SyncRun.status, func.count())
        .where(SyncRun.status.in_(ACTIVE_SYNC_STATUSES), where)
        .group_by(group, SyncRun.status)
    ).all():
        tally = tallies.setdefault(key, _Tally())
        if status == SyncStatus.RUNNING:
            tally.running += n
        elif status.is_waiting:
            tally.waiting += n
        else:
            tally.queued += n


def sync_summary(db: Session, ctx: TenantContext, *, now: datetime | None = None,
                 all_tenants: bool = False) -> SyncSummaryRead:
    """Per connection of the tenant, and its total; with ``all_tenants`` (platform admins
    only, audit-logged) also one row per tenant."""
    now = _now(now)
    since = now - WINDOW
    tallies = connection_tallies(db, ctx, since=since)
    connections = db.execute(
        select(ProviderConnection.id, ProviderConnection.name, ProviderConnection.provider,
               ProviderConnection.direction, ProviderConnection.status)
        .where(ProviderConnection.tenant_id == ctx.tenant_id)
        .order_by(ProviderConnection.name, ProviderConnection.id)).all()
    total = _Tally()
    rows = []
    for connection_id, name, provider, direction, status in connections:
        tally = tallies.get(connection_id, _Tally())
        total.add(tally)
        rows.append(ConnectionSummary(connection_id=connection_id, name=name,
                                      provider=provider, direction=direction,
                                      status=status.value, **tally.row()))
    tenants = None
    if all_tenants:
        tenants = tenant_summaries(db, ctx, since=since)
    return SyncSummaryRead(since=since, connections=rows, total=SyncSummaryRow(**total.row()),
                           tenants=tenants)


def connection_tallies(db: Session, ctx: TenantContext, *, since: datetime,
                       connection_id: uuid.UUID | None = None) -> dict[Any, _Tally]:
    tallies: dict[Any, _Tally] = {}
    link_where = EventLink.tenant_id == ctx.tenant_id
    run_where = SyncRun.tenant_id == ctx.tenant_id
    if connection_id is not None:
        link_where = and_(link_where, EventLink.connection_id == connection_id)
        run_where = and_(run_where, SyncRun.connection_id == connection_id)
    _tally_links(db, tallies, EventLink.connection_id, link_where)
    _tally_active(db, tallies, SyncRun.connection_id, run_where)
    for key, sync_type, runs, ok, failed in db.execute(
        select(SyncRun.connection_id, SyncRun.sync_type, *_run_counts())
        .where(run_where, SyncRun.created_at >= since)
        .group_by(SyncRun.connection_id, SyncRun.sync_type)
    ).all():
        tallies.setdefault(key, _Tally()).by_type[sync_type] = [runs, ok, failed]
    # The newest successful run of each connection (of any sync type), read backwards off
    # its (connection, created_at) index: the links only record participant pulls.
    connections = select(ProviderConnection.id).where(
        ProviderConnection.tenant_id == ctx.tenant_id)
    if connection_id is not None:
        connections = connections.where(ProviderConnection.id == connection_id)
    conn = connections.subquery("c")
    last_ok = (select(SyncRun.finished_at)
               .where(SyncRun.connection_id == conn.c.id,
                      SyncRun.status == SyncStatus.SUCCEEDED)
               .order_by(SyncRun.created_at.desc()).limit(1).lateral("last_ok"))
    for key, finished in db.execute(
            select(conn.c.id, last_ok.c.finished_at).join(last_ok, true())).all():
        tallies.setdefault(key, _Tally()).success(finished)
    return tallies


def tenant_summaries(db: Session, ctx: TenantContext, *, since: datetime) -> list[TenantSummary]:
    """One row per tenant, for a platform admin: the same figures as a connection's,
    summed over the tenant's connections. Each runs query walks one tenant's index range
    (a lateral join per tenant), not the whole runs table."""
    if not ctx.is_platform_admin:
        raise Forbidden("Only a platform admin sees every tenant's sync summary.")
    tallies: dict[Any, _Tally] = {}
    _tally_links(db, tallies, EventLink.tenant_id, true())
    _tally_active(db, tallies, SyncRun.tenant_id, true())
    runs = (select(SyncRun.sync_type, *_run_counts())
            .where(SyncRun.tenant_id == Tenant.id, SyncRun.created_at >= since)
            .group_by(SyncRun.sync_type).lateral("runs"))
    for key, sync_type, n, ok, failed in db.execute(
            select(Tenant.id, runs.c.sync_type, runs.c.runs, runs.c.ok, runs.c.failed)
            .join(runs, true())).all():
        tallies.setdefault(key, _Tally()).by_type[sync_type] = [n, ok, failed]
    last_ok = (select(SyncRun.finished_at)
               .where(SyncRun.tenant_id == Tenant.id, SyncRun.status == SyncStatus.SUCCEEDED)
               .order_by(SyncRun.created_at.desc()).limit(1).lateral("last_ok"))
    connections = (select(func.count()).where(ProviderConnection.tenant_id == Tenant.id)
                   .scalar_subquery())
    rows = []
    for tenant_id, name, n_connections, finished in db.execute(
            select(Tenant.id, Tenant.name, connections, last_ok.c.finished_at)
            .outerjoin(last_ok, true()).order_by(Tenant.name, Tenant.id)).all():
        tally = tallies.get(tenant_id, _Tally())
        tally.success(finished)
        rows.append(TenantSummary(tenant_id=tenant_id, tenant_name=name,
                                  connections=n_connections, **tally.row()))
    # Reading every tenant is a cross-tenant act: it leaves a trace (the route commits).
    audit.record(db, ctx, action="platform.monitoring.all_tenants", target_type="route",
                 target_id="sync-summary", after={"tenants": len(rows)})
    return rows


# The connection's own lookup (404 for another tenant's), as the connection pages use it.
get_connection_or_raise = connections_service.get_connection_or_raise


def connection_summary(db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
                       now: datetime | None = None) -> ConnectionSummary:
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    tally = connection_tallies(db, ctx, since=_now(now) - WINDOW,
                               connection_id=connection.id).get(connection.id, _Tally())
    return ConnectionSummary(connection_id=connection.id, name=connection.name,
                             provider=connection.provider, direction=connection.direction,
                             status=connection.status.value, **tally.row())


@dataclass(frozen=True)
class LinkHealth:
    """One link of a connection on its drill-down: its event, schedule and last 24 h."""

    link: EventLink
    event_name: str | None
    runs: int
    succeeded: int
    failed: int
    active_status: str | None


def connection_links(db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
                     now: datetime | None = None) -> list[LinkHealth]:
    """The connection's linked provider events, each with its last 24 h of runs and the
    run active on it now (if any)."""
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    since = _now(now) - WINDOW
    runs = (select(*_run_counts()).where(SyncRun.link_id == EventLink.id,
                                         SyncRun.created_at >= since)
            .lateral("runs"))
    active = (select(SyncRun.status)
              .where(SyncRun.link_id == EventLink.id,
                     SyncRun.status.in_(ACTIVE_SYNC_STATUSES))
              .order_by(SyncRun.created_at.desc()).limit(1).lateral("active"))
    rows = db.execute(
        select(EventLink, Event.name, runs.c.runs, runs.c.ok, runs.c.failed, active.c.status)
        .outerjoin(Event, Event.id == EventLink.event_id)
        .join(runs, true()).outerjoin(active, true())
        .where(EventLink.tenant_id == ctx.tenant_id, EventLink.connection_id == connection.id,
               EventLink.event_id.is_not(None))
        .order_by(EventLink.next_run_at.asc().nulls_last(), EventLink.provider_event_ref)
    ).all()
    return [LinkHealth(link=link, event_name=name, runs=n, succeeded=ok, failed=failed,
                       active_status=status.value if status is not None else None)
            for link, name, n, ok, failed, status in rows]


def runs_per_hour(db: Session, ctx: TenantContext, *, now: datetime | None = None,
                  hours: int = CHART_HOURS,
                  connection_id: uuid.UUID | None = None) -> list[HourBucket]:
    """Runs requested in each of the last ``hours`` hours (the current one last, UTC), by
    outcome as they stand now. Every hour has its bucket, empty ones included."""
    now = _now(now).astimezone(UTC)
    last = now.replace(minute=0, second=0, microsecond=0)
    first = last - timedelta(hours=hours - 1)
    hour = func.date_trunc("hour", func.timezone("UTC", SyncRun.created_at))
    stmt = (select(hour.label("hour"), SyncRun.status, func.count())
            .where(SyncRun.tenant_id == ctx.tenant_id, SyncRun.created_at >= first)
            .group_by(hour, SyncRun.status))
    if connection_id is not None:
        stmt = stmt.where(SyncRun.connection_id == connection_id)
    buckets = {first + timedelta(hours=i): {"succeeded": 0, "failed": 0, "other": 0,
                                            "active": 0}
               for i in range(hours)}
    for at, status, n in db.execute(stmt).all():
        bucket = buckets.get(at.replace(tzinfo=UTC))
        if bucket is None:
            continue  # a run created after ``now`` (a clock ahead of ours): not charted
        if status == SyncStatus.SUCCEEDED:
            bucket["succeeded"] += n
        elif status == SyncStatus.FAILED:
            bucket["failed"] += n
        elif status in OTHER_STATUSES:
            bucket["other"] += n
        else:
            bucket["active"] += n
    return [HourBucket(hour=at, **counts) for at, counts in buckets.items()]


# --- participant tracking -----------------------------------------------------------------


def participant_tracking(db: Session, ctx: TenantContext, *, cursor: str | None = None,
                         limit: int = 50) -> ParticipantTrackingRead:
    """People across events and providers, and a keyset page of the events fed by a
    registration link with each provider's count against racehub's."""
    check_limit(limit)
    tenant = ctx.tenant_id
    # Per person: the events entered and the distinct providers their entries came from.
    per_person = (
        select(EventParticipant.person_id,
               func.count(EventParticipant.event_id.distinct()).label("events"),
               func.count(SyncedRecord.provider.distinct()).label("providers"))
        .outerjoin(SyncedRecord, and_(SyncedRecord.participant_id == EventParticipant.id,
                                      SyncedRecord.tenant_id == tenant))
        .where(EventParticipant.tenant_id == tenant)
        .group_by(EventParticipant.person_id).subquery("per_person"))
    spread = db.execute(
        select(per_person.c.providers, func.count(), func.sum(per_person.c.events))
        .group_by(per_person.c.providers).order_by(per_person.c.providers)).all()
    people = sum(n for _, n, _ in spread)
    entries = sum(int(e) for _, _, e in spread)
    provider_total = sum(p * n for p, n, _ in spread)
    events, next_cursor = event_drift(db, ctx, cursor=cursor, limit=limit)
    return ParticipantTrackingRead(
        unique_people=people, entries=entries,
        avg_events_per_person=round(entries / people, 3) if people else None,
        avg_providers_per_person=round(provider_total / people, 3) if people else None,
        providers_per_person=[ProvidersPerPerson(providers=p, people=n)
                              for p, n, _ in spread],
        events=events, next_cursor=next_cursor)


def event_drift(db: Session, ctx: TenantContext, *, cursor: str | None = None,
                limit: int = 50) -> tuple[list[EventDrift], str | None]:
    registration = and_(ProviderConnection.id == EventLink.connection_id,
                        ProviderConnection.direction == Direction.REGISTRATION)
    stmt: Select[Any] = scoped(ctx, Event).where(exists().where(
        EventLink.tenant_id == ctx.tenant_id, EventLink.event_id == Event.id, registration))
    key = SortKey(columns=[as_read(Event.start_at), Event.id], descending=True)
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    events, next_cursor = split_page(rows, limit, lambda e: [e.start_at.isoformat(), e.id])
    ids = [e.id for e in events]
    if not ids:
        return [], next_cursor
    active_ep = EventParticipant.status == ParticipantStatus.ACTIVE
    link_rows = db.execute(
        select(EventLink.id, EventLink.event_id, EventLink.provider, EventLink.connection_id,
               ProviderConnection.name, EventLink.provider_event_ref,
               func.count(SyncedRecord.id).filter(SyncedRecord.withdrawn_at.is_(None)),
               func.count(EventParticipant.id.distinct()).filter(active_ep))
        .join(ProviderConnection, registration)
        .outerjoin(SyncedRecord, and_(SyncedRecord.link_id == EventLink.id,
                                      SyncedRecord.tenant_id == ctx.tenant_id))
        .outerjoin(EventParticipant, and_(EventParticipant.id == SyncedRecord.participant_id,
                                          EventParticipant.event_id == EventLink.event_id))
        .where(EventLink.tenant_id == ctx.tenant_id, any_of(EventLink.event_id, ids))
        .group_by(EventLink.id, ProviderConnection.name)
        .order_by(EventLink.provider, ProviderConnection.name, EventLink.provider_event_ref)
    ).all()
    totals = unified.active_entries(db, event_ids=ids)  # ids of the tenant-scoped page
    links: dict[uuid.UUID | None, list[LinkDrift]] = defaultdict(list)
    for link_id, event_id, provider, connection_id, name, ref, theirs, ours in link_rows:
        links[event_id].append(LinkDrift(
            link_id=link_id, provider=provider, connection_id=connection_id,
            connection_name=name, provider_event_id=ref, provider_count=theirs,
            racehub_count=ours, drift=ours - theirs))
    out = []
    for event in events:
        racehub = totals.get(event.id, 0)
        theirs = sum(link.provider_count for link in links[event.id])
        out.append(EventDrift(event_id=event.id, name=event.name, start_at=event.start_at,
                              racehub_count=racehub, provider_count=theirs,
                              drift=racehub - theirs, links=links[event.id]))
    return out, next_cursor
