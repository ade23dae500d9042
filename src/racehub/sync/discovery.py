"""Event discovery: a connection's provider events, kept as candidates to link.

A discovery reads the provider's whole event listing (``list_events``, every event the
account sees, not only the races of the events chosen on the connection) and upserts one
``EventLink`` row per provider event, by (connection, the provider's ref): a new one is a
candidate (not chosen, not linked); a known one gets what the listing says now. What the
Provider events page needs is kept on the row: the start, the time zone exactly as the
provider gave it (or none: never guessed), the location, the race it belongs to.

A provider event the listing no longer has is marked (``gone_at``), never deleted, and
only after a complete listing: when a row of the listing could not be read, no event is
marked gone (the unreadable row may be it). Running a discovery twice changes nothing but
``last_seen_at`` the second time.

It runs as a job (``sync.discover_events``, retried on provider outages like a sync run),
asked for on demand (``request_discovery``) or by the schedule: the tick calls
``defer_due_discoveries`` (daily per connection; it defers nothing twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, case, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring, get_keyring
from racehub.core.exceptions import Invalid
from racehub.core.rbac import Perm
from racehub.jobs import service as jobs_service
from racehub.jobs.handle import RunningJob
from racehub.jobs.models import JobRun, JobStatus
from racehub.providers.base import Capability, ProviderEvent, RowProblem
from racehub.providers.catalog import PROVIDERS
from racehub.providers.errors import ProviderError
from racehub.sync import schedule
from racehub.sync.links import UNIQUE_REF
from racehub.sync.models import EventLink, ProviderConnection, SyncTrigger
from racehub.sync.service import (
    AdapterFactory,
    get_connection_or_raise,
    read_credentials,
    redact,
    secret_variants,
)

log = structlog.get_logger(__name__)

DISCOVER_EVENTS_KIND = "sync.discover_events"
DISCOVERY_INTERVAL = timedelta(days=1)
# A worker takes the higher priority first: someone waits on a discovery asked for by hand.
PRIORITY_OF = {SyncTrigger.MANUAL: 100, SyncTrigger.SCHEDULE: 0}
BATCH = 500  # rows per upsert statement
PROBLEMS_LOGGED = 20
ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
# What ``EventLink.provider_details`` holds (JSON), besides the start and the zone columns.
DETAIL_KEYS = ("listed_name", "name", "parent_ref", "parent_name", "distance", "city",
               "region", "country", "end_at", "modified_at", "time_zone_source")

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def listed_name(event: ProviderEvent) -> str:
    """How a provider event is named on the page: "race · sub-event" when it has a race."""
    if event.parent_name and event.parent_name != event.name:
        return f"{event.parent_name} · {event.name}"
    return event.name


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def details_of(event: ProviderEvent) -> dict[str, Any]:
    return {"listed_name": listed_name(event)[:300], "name": event.name,
            "parent_ref": event.parent_ref, "parent_name": event.parent_name,
            "distance": event.distance, "city": event.city, "region": event.region,
            "country": event.country, "end_at": _iso(event.end_at),
            "modified_at": _iso(event.modified_at),
            "time_zone_source": event.time_zone_source if event.time_zone else None}


# --- who may be discovered -----------------------------------------------------------------


def check_discoverable(connection: ProviderConnection) -> None:
    """A connection whose provider lists its events is discovered: its candidates are what
    an operator links to racehub events (a registration platform's to feed participants, a
    timing system's, ChronoTrack's event:race, to receive start lists and give results)."""
    spec = PROVIDERS[connection.provider]
    if Capability.LIST_EVENTS not in spec.adapter_class().capabilities:
        raise Invalid(f"connectionId: {spec.label} does not list its events; choose them "
                      "on the connection by id", field="connectionId")


# --- asking for one --------------------------------------------------------------------------


@dataclass
class DiscoveryRequest:
    job: JobRun
    joined: bool  # a discovery of the connection was queued or running: this joined it


def active_discovery(db: Session, ctx: TenantContext, *,
                     connection_id: uuid.UUID) -> JobRun | None:
    return db.scalar(select(JobRun).where(
        JobRun.tenant_id == ctx.tenant_id, JobRun.kind == DISCOVER_EVENTS_KIND,
        JobRun.subject_id == connection_id, JobRun.status.in_(ACTIVE_JOB_STATUSES))
        .order_by(JobRun.created_at.desc()).limit(1))


def last_discovery(db: Session, ctx: TenantContext, *,
                   connection_id: uuid.UUID) -> JobRun | None:
    """The connection's newest discovery job, whatever its state (the page shows it)."""
    return db.scalar(select(JobRun).where(
        JobRun.tenant_id == ctx.tenant_id, JobRun.kind == DISCOVER_EVENTS_KIND,
        JobRun.subject_id == connection_id)
        .order_by(JobRun.created_at.desc(), JobRun.id).limit(1))


def request_discovery(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
    trigger: SyncTrigger = SyncTrigger.MANUAL,
) -> DiscoveryRequest:
    """A discovery job of the connection, deferred in the caller's transaction; while one
    is queued or running, the request joins it. The connection row is locked while
    deciding, so two requests at once make one job."""
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id, for_update=True)
    check_discoverable(connection)
    current = active_discovery(db, ctx, connection_id=connection.id)
    if current is not None:
        return DiscoveryRequest(current, joined=True)
    job = jobs_service.start_job(
        db, ctx, kind=DISCOVER_EVENTS_KIND, params={"connection_id": str(connection.id)},
        subject_id=connection.id, priority=PRIORITY_OF.get(trigger, 0),
        message=f"{connection.name}: discover provider events ({trigger.value})")
    return DiscoveryRequest(job, joined=False)


def due_for_discovery(db: Session, *, now: datetime,
                      every: timedelta = DISCOVERY_INTERVAL) -> list[ProviderConnection]:
    """Every tenant's connections that list their events and have had no discovery job
    asked for within ``every`` (the schedule's daily discovery)."""
    listing = [key for key, spec in PROVIDERS.items()
               if Capability.LIST_EVENTS in spec.adapter_class().capabilities]
    recent = exists().where(JobRun.tenant_id == ProviderConnection.tenant_id,
                            JobRun.kind == DISCOVER_EVENTS_KIND,
                            JobRun.subject_id == ProviderConnection.id,
                            JobRun.created_at > now - every)
    return list(db.scalars(
        select(ProviderConnection)
        .where(ProviderConnection.provider.in_(listing), ~recent)
        .order_by(ProviderConnection.tenant_id, ProviderConnection.id)))


def defer_due_discoveries(db: Session, *, now: datetime,
                          every: timedelta = DISCOVERY_INTERVAL,
                          limit: int | None = None) -> list[JobRun]:
    """For the schedule's tick: defer a discovery of each connection due one (see
    ``due_for_discovery``; at most ``limit``), as the system, in the caller's transaction
    (commit it). A connection whose discovery is queued or running joins it: nothing is
    deferred twice. One connection's failure is logged and does not stop the others'."""
    jobs = []
    for connection in due_for_discovery(db, now=now, every=every)[:limit]:
        ctx = TenantContext(tenant_id=connection.tenant_id, permissions=frozenset(Perm),
                            actor_label="schedule")
        try:
            with db.begin_nested():
                jobs.append(request_discovery(db, ctx, connection_id=connection.id,
                                              trigger=SyncTrigger.SCHEDULE).job)
        except Exception:
            log.exception("sync.discovery_request_failed", connection_id=str(connection.id),
                          tenant_id=str(connection.tenant_id))
    return jobs


def _defer_due(db: Session, now: datetime, limit: int) -> int:
    # Fewer than ``limit`` (a failure included) ends the tick's batches for this kind.
    return len(defer_due_discoveries(db, now=now, limit=limit))


# The daily discovery is a kind of the schedule's tick (sync/schedule_tick.py).
schedule.register(schedule.ScheduledKind(name="discovery", defer_due=_defer_due))


# --- the discovery itself --------------------------------------------------------------------


@dataclass
class DiscoveryReport:
    listed: int = 0  # provider events in the listing
    new: int = 0  # first seen now
    changed: int = 0  # known, and the listing says something else of it now
    returned: int = 0  # marked gone before, listed again
    gone: int = 0  # marked gone now
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        return {"listed": self.listed, "new": self.new, "changed": self.changed,
                "returned": self.returned, "gone": self.gone, "problems": len(self.problems)}

    def message(self) -> str:
        text = (f"{self.listed} provider event(s) listed: {self.new} new, {self.changed} "
                f"changed, {self.returned} back, {self.gone} gone")
        if self.problems:
            text += (f"; {len(self.problems)} row(s) of the listing could not be read, so no "
                     "event was marked gone")
        return text


def _default_factory() -> AdapterFactory:
    from racehub.sync.adapters import build_listing_adapter

    return build_listing_adapter


def _row(ctx: TenantContext, connection: ProviderConnection, event: ProviderEvent,
         now: datetime) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "tenant_id": ctx.tenant_id, "connection_id": connection.id,
            "provider": connection.provider, "provider_event_ref": event.ref[:200],
            "provider_event_name": listed_name(event)[:300], "state": {}, "auto_sync": True,
            "sync_settings": {}, "chosen": False, "discovered_at": now, "last_seen_at": now,
            "provider_start_at": event.start_at,
            "provider_time_zone": event.time_zone[:64] if event.time_zone else None,
            "provider_details": details_of(event)}


def _seen(row: EventLink) -> tuple[Any, ...]:
    return (row.provider_start_at, row.provider_time_zone, row.provider_details)


def discover_events(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
    keyring: Keyring | None = None, adapter_factory: AdapterFactory | None = None,
    clock: Clock = _now, handle: RunningJob | None = None,
) -> DiscoveryReport:
    """Read the connection's event listing and keep each provider event as a row (see the
    module's docstring). Raises ProviderError (scrubbed of the connection's secrets) when
    the listing cannot be read to its end: nothing is written then."""
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    check_discoverable(connection)
    credentials = read_credentials(keyring or get_keyring(), connection)
    secrets = secret_variants(credentials)
    report = DiscoveryReport()
    listed: dict[str, ProviderEvent] = {}
    factory = adapter_factory or _default_factory()
    try:
        with factory(connection, credentials) as adapter:
            for page in adapter.list_events():
                for event in page.items:
                    listed.pop(event.ref, None)  # listed twice: as last listed
                    listed[event.ref] = event
                report.problems += page.problems
                if handle is not None:
                    handle.set_progress(stage="Listing provider events", done=len(listed),
                                        message=f"page {page.number}: {len(listed)} event(s)")
    except ProviderError as exc:
        exc.message = redact(exc.message, secrets)
        exc.args = (exc.message,)
        raise
    now = clock()
    report.listed = len(listed)
    known = {row.provider_event_ref: row for row in db.scalars(
        select(EventLink).where(EventLink.tenant_id == ctx.tenant_id,
                                EventLink.connection_id == connection.id))}
    rows = [_row(ctx, connection, event, now) for event in listed.values()]
    for data in rows:
        before = known.get(data["provider_event_ref"])
        if before is None:
            report.new += 1
            continue
        if before.gone_at is not None:
            report.returned += 1
        if _seen(before) != (data["provider_start_at"], data["provider_time_zone"],
                             data["provider_details"]):
            report.changed += 1
    for start in range(0, len(rows), BATCH):
        _upsert(db, rows[start:start + BATCH])
    if report.complete:
        gone = db.execute(
            update(EventLink)
            .where(EventLink.tenant_id == ctx.tenant_id,
                   EventLink.connection_id == connection.id,
                   EventLink.discovered_at.is_not(None), EventLink.gone_at.is_(None),
                   EventLink.last_seen_at.is_distinct_from(now))
            .values(gone_at=now).execution_options(synchronize_session=False))
        report.gone = gone.rowcount  # type: ignore[attr-defined]
    connection.events_discovered_at = now
    db.flush()
    db.expire_all()  # the rows above were written by statements: read them again
    audit.record(db, ctx, action="connection.discover_events",
                 target_type="provider_connection", target_id=connection.id,
                 after=report.counts())
    db.flush()
    log.info("sync.discovered", connection_id=str(connection.id), **report.counts())
    return report


def _upsert(db: Session, rows: list[dict[str, Any]]) -> None:
    """Insert new provider events as candidates; update known ones with what the listing
    says now. A name an operator gave (one that is not the last listed name) is kept."""
    if not rows:
        return
    stmt = pg_insert(EventLink).values(rows)
    new = stmt.excluded
    operator_named = and_(
        EventLink.provider_event_name.is_not(None),
        EventLink.provider_event_name.is_distinct_from(
            EventLink.provider_details["listed_name"].astext))
    db.execute(stmt.on_conflict_do_update(constraint=UNIQUE_REF, set_={
        "provider_event_name": case((operator_named, EventLink.provider_event_name),
                                    else_=new.provider_event_name),
        "provider_start_at": new.provider_start_at,
        "provider_time_zone": new.provider_time_zone,
        "provider_details": new.provider_details,
        "discovered_at": case((EventLink.discovered_at.is_(None), new.discovered_at),
                              else_=EventLink.discovered_at),
        "last_seen_at": new.last_seen_at,
        "gone_at": None,
    }))


def run_discovery(
    handle: RunningJob, db: Session, ctx: TenantContext, *, connection_id: str,
    keyring: Keyring | None = None, adapter_factory: AdapterFactory | None = None,
    clock: Clock = _now,
) -> None:
    """The body of a "sync.discover_events" job: the runner commits it, and retries it
    (PROVIDER_OUTAGES) when the provider is down or throttles."""
    handle.set_progress(stage="Listing provider events")
    report = discover_events(db, ctx, connection_id=uuid.UUID(connection_id), keyring=keyring,
                             adapter_factory=adapter_factory, clock=clock, handle=handle)
    for problem in report.problems[:PROBLEMS_LOGGED]:
        handle.log(f"unreadable row of the listing: {problem}")
    if len(report.problems) > PROBLEMS_LOGGED:
        handle.log(f"and {len(report.problems) - PROBLEMS_LOGGED} more unreadable row(s)")
    handle.set_progress(stage="Done", done=report.listed, total=report.listed,
                        message=report.message(), counts=report.counts(), commit=False)
