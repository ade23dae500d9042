"""Background jobs of the sync domain."""

from __future__ import annotations

from typing import Any

from procrastinate import Blueprint
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.jobs.registry import Subject
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

blueprint = Blueprint()
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
)
def results_publish(handle: JobHandle, db: Session, ctx: TenantContext, **params: Any) -> None:
    publish.run_publish(handle, db, ctx, **params)
