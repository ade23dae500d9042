"""Background jobs of the sync domain."""

from __future__ import annotations

import uuid
from typing import Any

from procrastinate import Blueprint
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.query import scoped
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.jobs.models import JobRun
from racehub.jobs.registry import Owner, Subject, owner_of
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.jobs.runner import JobHandle, job_task
from racehub.sync import discovery, engine, retention, runs, schedule_tick
from racehub.sync import service as sync_service
from racehub.sync.models import EventLink

blueprint = Blueprint()


def _connection_owner(db: Session, ctx: TenantContext, connection_id: Any) -> list[Owner]:
    def lookup() -> Owner:
        connection = sync_service.get_connection_or_raise(
            db, ctx, connection_id=uuid.UUID(str(connection_id)))
        return Owner("Connection", connection.name, f"/connections/{connection.id}/sync")
    return owner_of(lookup)


def _sync_belongs_to(db: Session, ctx: TenantContext, run: JobRun) -> list[Owner]:
    """A participant sync: the event its provider event feeds, the connection, its run."""
    link = db.scalar(scoped(ctx, EventLink).where(EventLink.id == run.subject_id))
    if link is None:
        return []
    owners = events_service.event_owner(db, ctx, link.event_id) if link.event_id else []
    owners += _connection_owner(db, ctx, link.connection_id)
    if run.params.get("sync_run_id"):
        owners.append(Owner("Sync run", link.provider_event_name or link.provider_event_ref,
                            f"/sync/runs/{run.params['sync_run_id']}"))
    return owners


def _sync_of_event(ctx: TenantContext, event_id: uuid.UUID) -> ColumnElement[bool]:
    return JobRun.subject_id.in_(select(EventLink.id).where(
        EventLink.tenant_id == ctx.tenant_id, EventLink.event_id == event_id))


def _discovery_belongs_to(db: Session, ctx: TenantContext, run: JobRun) -> list[Owner]:
    return _connection_owner(db, ctx, run.params.get("connection_id"))
# The daily purge of raw payloads (sync:retention:purge_payloads), declared in its module.
blueprint.add_tasks_from(retention.blueprint, namespace="retention")
# The minute tick deferring scheduled runs (sync:schedule:tick), declared in its module.
blueprint.add_tasks_from(schedule_tick.blueprint, namespace="schedule")


@job_task(
    blueprint,
    kind=runs.SYNC_PARTICIPANTS_KIND,
    label="Sync participants",
    permission=Perm.SYNC_RUN_START,
    read_permission=Perm.SYNC_RUN_READ,
    subject=Subject("event_link"),  # no rule: the permissions above are the tenant's
    # One run per link at a time: the partial unique index keeps one SyncRun active, and
    # this keeps procrastinate from starting two attempts of it at once.
    lock="sync-link:{link_id}",
    # A provider down, timing out or throttling: retried after 2, 4 and 8 minutes; bad
    # credentials, an unknown event or unreadable data fail at once.
    retry=PROVIDER_OUTAGES,
    belongs_to=_sync_belongs_to,
    of_event=_sync_of_event,
)
def sync_participants(handle: JobHandle, db: Session, ctx: TenantContext, **params: Any) -> None:
    engine.run_participant_sync(handle, db, ctx, **params)


@job_task(
    blueprint,
    kind=discovery.DISCOVER_EVENTS_KIND,
    label="Discover provider events",
    permission=Perm.SYNC_LINK_MANAGE,
    read_permission=Perm.SYNC_CONNECTION_READ,
    subject=Subject("provider_connection"),  # no rule: the permissions above are the tenant's
    # One discovery of a connection at a time (a second one waits, then finds nothing new).
    lock="sync-discover:{connection_id}",
    retry=PROVIDER_OUTAGES,
    belongs_to=_discovery_belongs_to,
)
def discover_events(handle: JobHandle, db: Session, ctx: TenantContext, **params: Any) -> None:
    discovery.run_discovery(handle, db, ctx, **params)
