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
from racehub.sync import (
    discovery,
    engine,
    publications,
    publish,
    results_pull,
    retention,
    runs,
    schedule_tick,
    timing_push,
)
from racehub.sync import service as sync_service
from racehub.sync.models import EventLink, ResultPublication

blueprint = Blueprint()


def _connection_owner(db: Session, ctx: TenantContext, connection_id: Any) -> list[Owner]:
    def lookup() -> Owner:
        connection = sync_service.get_connection_or_raise(
            db, ctx, connection_id=uuid.UUID(str(connection_id)))
        return Owner("Connection", connection.name, f"/connections/{connection.id}/sync")
    return owner_of(lookup)


def _sync_belongs_to(db: Session, ctx: TenantContext, run: JobRun) -> list[Owner]:
    """A run on a link (a participant sync, a start list push, a results pull, a
    publication's prepare): the link's event, the connection, its run."""
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


def _publication_belongs_to(db: Session, ctx: TenantContext, run: JobRun) -> list[Owner]:
    """A publish: the version it sends (on its event's page) and the event."""
    version = db.scalar(scoped(ctx, ResultPublication)
                        .where(ResultPublication.id == run.subject_id))
    if version is None:
        return []
    return [*events_service.event_owner(db, ctx, version.event_id),
            Owner("Results version", f"version {version.version}",
                  f"/events/{version.event_id}/publications/{version.version}")]


def _publication_of_event(ctx: TenantContext, event_id: uuid.UUID) -> ColumnElement[bool]:
    return JobRun.subject_id.in_(select(ResultPublication.id).where(
        ResultPublication.tenant_id == ctx.tenant_id, ResultPublication.event_id == event_id))


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
    kind=runs.SYNC_RESULTS_PULL_KIND,
    label="Pull results",
    permission=Perm.SYNC_TIMING_RUN,
    read_permission=Perm.SYNC_RUN_READ,
    subject=Subject("event_link"),  # no rule: the permissions above are the tenant's
    # One pull of a link at a time (the partial unique index keeps one active per type);
    # a push of the same link (another type) may run beside it.
    lock="sync-results-pull:{link_id}",
    # Like a participant sync: outages and throttling retried after 2, 4 and 8 minutes.
    retry=PROVIDER_OUTAGES,
    belongs_to=_sync_belongs_to,
    of_event=_sync_of_event,
)
def sync_results_pull(handle: JobHandle, db: Session, ctx: TenantContext,
                      **params: Any) -> None:
    results_pull.run_results_pull(handle, db, ctx, **params)


@job_task(
    blueprint,
    kind=timing_push.SYNC_START_LIST_PUSH_KIND,
    label="Push start list",
    permission=Perm.SYNC_TIMING_RUN,
    read_permission=Perm.SYNC_RUN_READ,
    subject=Subject("event_link"),  # no rule: the permissions above are the tenant's
    # One attempt of a link's push at a time (the partial unique index keeps one push
    # active per link); its own key, so a push and a pull of one link do not wait on
    # each other.
    lock="sync-push:{link_id}",
    # Retried like a participant sync: a provider down or throttling after 2, 4 and 8
    # minutes (what was accepted is kept: the retry sends the rest); bad credentials or
    # an unknown race fail at once.
    retry=PROVIDER_OUTAGES,
    belongs_to=_sync_belongs_to,
    of_event=_sync_of_event,
)
def sync_start_list_push(handle: JobHandle, db: Session, ctx: TenantContext,
                         **params: Any) -> None:
    timing_push.run_start_list_push(handle, db, ctx, **params)


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


@job_task(
    blueprint,
    kind=runs.RESULTS_PUBLISH_PREPARE_KIND,
    label="Prepare results publication",
    permission=Perm.SYNC_RUN_START,
    read_permission=Perm.SYNC_RUN_READ,
    subject=Subject("event_link"),  # no rule: the permissions above are the tenant's
    # A link's versions are prepared and published one at a time, in order.
    lock="sync-publish:{link_id}",
    belongs_to=_sync_belongs_to,
    of_event=_sync_of_event,
)
def results_publish_prepare(handle: JobHandle, db: Session, ctx: TenantContext,
                            **params: Any) -> None:
    publications.run_prepare(handle, db, ctx, **params)


@job_task(
    blueprint,
    kind=publications.PUBLISH_KIND,
    label="Publish results",
    permission=Perm.SYNC_RESULTS_PUBLISH,
    read_permission=Perm.SYNC_RUN_READ,
    subject=Subject("result_publication"),  # no rule: the permissions above are the tenant's
    lock="sync-publish:{link_id}",
    # The platform down, timing out or throttling (an HTTP 500 mid-batch included): retried
    # after 2, 4 and 8 minutes; the publish is idempotent (sync/publish.py).
    retry=PROVIDER_OUTAGES,
    belongs_to=_publication_belongs_to,
    of_event=_publication_of_event,
)
def results_publish(handle: JobHandle, db: Session, ctx: TenantContext, **params: Any) -> None:
    publish.run_publish(handle, db, ctx, **params)
