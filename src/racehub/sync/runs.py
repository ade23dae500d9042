"""Sync runs: asking for one, one active run per link, and reading their history.

A request makes a SyncRun (queued) and its JobRun in the caller's transaction; while a
run of the link is queued, running or retrying, another request joins it. The partial
unique index ``uq_sync_runs_link_id_active`` decides between two requests racing: the
loser's insert fails on it and the loser returns the winner's run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import scoped
from racehub.db.errors import violates
from racehub.jobs import service as jobs_service
from racehub.jobs.models import JobRun
from racehub.sync.exceptions import SyncRunNotFound
from racehub.sync.models import (
    ACTIVE_SYNC_STATUSES,
    ONE_ACTIVE_RUN_INDEX,
    EventLink,
    ProviderConnection,
    SyncChange,
    SyncRun,
    SyncStatus,
    SyncTrigger,
    SyncType,
)
from racehub.sync.service import get_connection_or_raise

SYNC_PARTICIPANTS_KIND = "sync.participants"
# A worker takes the higher priority first: someone is waiting on a manual run.
PRIORITY_OF = {SyncTrigger.MANUAL: 100, SyncTrigger.WEBHOOK: 50, SyncTrigger.RETRY: 10,
               SyncTrigger.SCHEDULE: 0}
RECENT_FAILURES = 5
# What the history shows of a change: the fields the participants page shows.
HISTORY_FIELDS = ("first_name", "last_name", "bib", "category_id", "registration_id", "team",
                  "status", "withdrawn_at", "withdrawn_reason", "transferred_from_id")


# --- requesting runs ---------------------------------------------------------------------


@dataclass
class RunRequest:
    run: SyncRun
    joined: bool  # an active run of the link existed: this request joined it


def linked_links(db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
                 event_id: uuid.UUID | None = None) -> list[EventLink]:
    """The connection's provider events linked to a racehub event (to ``event_id``)."""
    stmt = scoped(ctx, EventLink).where(EventLink.connection_id == connection_id,
                                        EventLink.event_id.is_not(None))
    if event_id is not None:
        stmt = stmt.where(EventLink.event_id == event_id)
    return list(db.scalars(stmt.order_by(EventLink.provider_event_ref, EventLink.id)))


def request_participant_sync(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
    event_id: uuid.UUID | None = None, full_refresh: bool = False,
    trigger: SyncTrigger = SyncTrigger.MANUAL,
) -> list[RunRequest]:
    """A run per linked provider event of the connection (of ``event_id``), each with its
    job; a link with an active run joins it instead."""
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    links = linked_links(db, ctx, connection_id=connection.id, event_id=event_id)
    if not links:
        if event_id is not None:
            raise Invalid("eventId: no provider event of this connection is linked to this "
                          "event; link one first", field="eventId")
        raise Invalid("connectionId: no provider event of this connection is linked to a "
                      "racehub event; link one first", field="connectionId")
    return [request_link_sync(db, ctx, connection=connection, link=link,
                              full_refresh=full_refresh, trigger=trigger) for link in links]


def active_run(db: Session, link_id: uuid.UUID,
               sync_type: SyncType = SyncType.PARTICIPANTS) -> SyncRun | None:
    return db.scalar(select(SyncRun).where(SyncRun.link_id == link_id,
                                           SyncRun.sync_type == sync_type.value,
                                           SyncRun.status.in_(ACTIVE_SYNC_STATUSES))
                     .execution_options(populate_existing=True))


def request_link_sync(
    db: Session, ctx: TenantContext, *, connection: ProviderConnection, link: EventLink,
    full_refresh: bool = False, trigger: SyncTrigger = SyncTrigger.MANUAL,
) -> RunRequest:
    """One link's run and job, or the link's active run (joined)."""
    current = active_run(db, link.id)
    if current is not None and _abandoned(db, current):
        current.status = SyncStatus.CANCELLED
        current.finished_at = func.now()
        current.error = "its job ended before the run did (cancelled from the jobs page?)"
        db.flush()  # frees the link for the run below
        current = None
    if current is not None:
        return RunRequest(current, joined=True)
    run = SyncRun(
        tenant_id=ctx.tenant_id, connection_id=connection.id, provider=connection.provider,
        link_id=link.id, event_id=link.event_id, sync_type=SyncType.PARTICIPANTS.value,
        trigger=trigger.value, status=SyncStatus.QUEUED, requested_by_user_id=ctx.user_id,
        requested_by_label=ctx.actor_label, full_refresh=full_refresh, attempts=0,
        cursor_before=link.cursor)
    try:
        # A savepoint: losing the race for the link rolls back this insert only.
        with db.begin_nested():
            db.add(run)
            db.flush()
    except IntegrityError as exc:
        if not violates(exc, ONE_ACTIVE_RUN_INDEX):
            raise
        # Another request inserted (and committed: the insert waited for it) first.
        current = active_run(db, link.id)
        if current is None:  # it finished meanwhile: ask again
            return request_link_sync(db, ctx, connection=connection, link=link,
                                     full_refresh=full_refresh, trigger=trigger)
        return RunRequest(current, joined=True)
    job = jobs_service.start_job(
        db, ctx, kind=SYNC_PARTICIPANTS_KIND,
        params={"sync_run_id": str(run.id), "link_id": str(link.id)}, subject_id=link.id,
        priority=PRIORITY_OF[trigger],
        message=f"{connection.name}: {link.provider_event_name or link.provider_event_ref}")
    run.job_run_id = job.id
    audit.record(db, ctx, action="sync.request", target_type="sync_run", target_id=run.id,
                 after={"connection": str(connection.id), "link": str(link.id),
                        "event": str(link.event_id), "trigger": trigger.value,
                        "fullRefresh": full_refresh})
    db.flush()
    return RunRequest(run, joined=False)


def _abandoned(db: Session, run: SyncRun) -> bool:
    """An active run whose job is gone or over (cancelled from the jobs page while
    queued, say) would hold its link forever."""
    job = db.get(JobRun, run.job_run_id) if run.job_run_id else None
    return job is None or job.status.is_terminal


# --- reading -------------------------------------------------------------------------------


def get_run_or_raise(db: Session, ctx: TenantContext, *, run_id: uuid.UUID) -> SyncRun:
    run = db.scalar(scoped(ctx, SyncRun).where(SyncRun.id == run_id))
    if run is None:
        raise SyncRunNotFound()
    return run


@dataclass(frozen=True)
class RunFilter:
    connection_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None
    link_id: uuid.UUID | None = None
    status: SyncStatus | None = None
    trigger: SyncTrigger | None = None


def list_runs(
    db: Session, ctx: TenantContext, *, filters: RunFilter = RunFilter(),
    cursor: str | None = None, limit: int = 50,
) -> tuple[list[SyncRun], str | None]:
    """The tenant's runs, newest first."""
    check_limit(limit)
    stmt = runs_query(ctx, filters)
    key = SortKey(columns=[SyncRun.created_at, SyncRun.id], descending=True)
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    return split_page(rows, limit, lambda r: [r.created_at.isoformat(), r.id])


def runs_query(ctx: TenantContext, filters: RunFilter) -> Select[SyncRun]:
    """The tenant's runs that ``filters`` keep, unordered: the list above and the sync
    runs export (exports/views/sync_runs.py) filter alike."""
    stmt = scoped(ctx, SyncRun)
    if filters.connection_id is not None:
        stmt = stmt.where(SyncRun.connection_id == filters.connection_id)
    if filters.event_id is not None:
        stmt = stmt.where(SyncRun.event_id == filters.event_id)
    if filters.link_id is not None:
        stmt = stmt.where(SyncRun.link_id == filters.link_id)
    if filters.status is not None:
        stmt = stmt.where(SyncRun.status == filters.status)
    if filters.trigger is not None:
        stmt = stmt.where(SyncRun.trigger == filters.trigger.value)
    return stmt


def list_changes(
    db: Session, ctx: TenantContext, *, run_id: uuid.UUID, cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[SyncChange], str | None]:
    """A run's changes in the order they were made."""
    check_limit(limit)
    run = get_run_or_raise(db, ctx, run_id=run_id)
    stmt = scoped(ctx, SyncChange).where(SyncChange.run_id == run.id)
    key = SortKey(columns=[SyncChange.at, SyncChange.id])
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    return split_page(rows, limit, lambda c: [c.at.isoformat(), c.id])


def shown_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """What the history shows of a change: no contact data, birth date or payload."""
    return {k: v for k, v in (changes or {}).items() if k in HISTORY_FIELDS}


@dataclass
class LinkStatus:
    link: EventLink
    running: SyncRun | None = None
    last_success: SyncRun | None = None
    recent_failures: list[SyncRun] = field(default_factory=list)


def connection_status(db: Session, ctx: TenantContext, *,
                      connection_id: uuid.UUID) -> list[LinkStatus]:
    """Per linked provider event: its active run, its last success, its recent failures."""
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    links = linked_links(db, ctx, connection_id=connection.id)
    if not links:
        return []
    ids = [link.id for link in links]
    statuses = {link.id: LinkStatus(link) for link in links}
    for run in db.scalars(scoped(ctx, SyncRun).where(SyncRun.link_id.in_(ids),
                                                     SyncRun.status.in_(ACTIVE_SYNC_STATUSES))):
        statuses[run.link_id].running = run  # type: ignore[index]
    newest = (select(SyncRun.link_id, func.max(SyncRun.finished_at).label("at"))
              .where(SyncRun.tenant_id == ctx.tenant_id, SyncRun.link_id.in_(ids),
                     SyncRun.status == SyncStatus.SUCCEEDED)
              .group_by(SyncRun.link_id).subquery())
    for run in db.scalars(scoped(ctx, SyncRun).join(newest, and_(
            SyncRun.link_id == newest.c.link_id, SyncRun.finished_at == newest.c.at))
            .where(SyncRun.status == SyncStatus.SUCCEEDED)):
        statuses[run.link_id].last_success = run  # type: ignore[index]
    ranked = (select(SyncRun.id, func.row_number().over(
        partition_by=SyncRun.link_id,
        order_by=(SyncRun.created_at.desc(), SyncRun.id.desc())).label("n"))
        .where(SyncRun.tenant_id == ctx.tenant_id, SyncRun.link_id.in_(ids),
               SyncRun.status == SyncStatus.FAILED).subquery())
    for run in db.scalars(scoped(ctx, SyncRun).join(ranked, SyncRun.id == ranked.c.id)
                          .where(ranked.c.n <= RECENT_FAILURES)
                          .order_by(SyncRun.created_at.desc(), SyncRun.id.desc())):
        statuses[run.link_id].recent_failures.append(run)  # type: ignore[index]
    return list(statuses.values())
