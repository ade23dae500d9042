"""Sync runs: asking for one, one active run per link, and reading their history.

A request makes a SyncRun (queued) and its JobRun in the caller's transaction; while a
run of the link is queued, running or retrying, another request joins it. The partial
unique index ``uq_sync_runs_link_id_active`` decides between two requests racing: the
loser's insert fails on it and the loser returns the winner's run.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Forbidden, Invalid
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import scoped
from racehub.core.rbac import Perm
from racehub.db.errors import violates
from racehub.events import service as events_service
from racehub.events.models import EventParticipant, Person
from racehub.jobs import service as jobs_service
from racehub.jobs.models import JobRun
from racehub.providers.catalog import Direction
from racehub.sync.exceptions import SyncRunNotFound
from racehub.sync.models import (
    ACTIVE_SYNC_STATUSES,
    ONE_ACTIVE_RUN_INDEX,
    ChangeAction,
    EventLink,
    ProviderConnection,
    StagedRow,
    SyncChange,
    SyncPreviewItem,
    SyncRun,
    SyncStatus,
    SyncTrigger,
    SyncType,
)
from racehub.sync.results_changes import RESULT_FIELDS
from racehub.sync.service import get_connection_or_raise

SYNC_PARTICIPANTS_KIND = "sync.participants"
SYNC_RESULTS_PULL_KIND = "sync.results_pull"
RESULTS_PUBLISH_PREPARE_KIND = "sync.results_publish_prepare"
# The job kind running each type of run (sync/tasks.py declares them; a start list push
# names its own, sync/timing_push.py).
KIND_OF = {SyncType.PARTICIPANTS: SYNC_PARTICIPANTS_KIND,
           SyncType.RESULTS_PULL: SYNC_RESULTS_PULL_KIND,
           SyncType.RESULTS_PUBLISH_PREPARE: RESULTS_PUBLISH_PREPARE_KIND}
# A worker takes the higher priority first: someone is waiting on a manual run.
PRIORITY_OF = {SyncTrigger.MANUAL: 100, SyncTrigger.WEBHOOK: 50, SyncTrigger.AFTER_SYNC: 50,
               SyncTrigger.SCHEDULE: 0}
RECENT_FAILURES = 5
# What the history shows of a change: the fields the participants page shows.
HISTORY_FIELDS = ("first_name", "last_name", "bib", "category_id", "registration_id", "team",
                  "status", "withdrawn_at", "withdrawn_reason", "transferred_from_id",
                  # A results pull's changes: what the results page shows of a result.
                  *RESULT_FIELDS)


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


def require_permission(ctx: TenantContext, perm: Perm) -> None:
    """The permission a type of run needs (the manual API asks for any type)."""
    if not ctx.can(perm):
        raise Forbidden(f"Your role ({ctx.role.value if ctx.role else 'none'}) lacks the "
                        f"'{perm.value}' permission.")


def request_participant_sync(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
    event_id: uuid.UUID | None = None, full_refresh: bool = False,
    trigger: SyncTrigger = SyncTrigger.MANUAL, preview: bool = False,
) -> list[RunRequest]:
    """A run per linked provider event of the connection (of ``event_id``), each with its
    job; a link with an active run joins it instead. ``preview``: each run stops once
    staged, for someone to review and apply it (sync/review.py)."""
    require_permission(ctx, Perm.SYNC_RUN_START)
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    if connection.direction != Direction.REGISTRATION:
        raise Invalid(f"connectionId: {connection.name!r} is a {connection.direction.value} "
                      "connection: it does not feed participants (its links receive start "
                      "lists and give results)", field="connectionId")
    links = linked_links(db, ctx, connection_id=connection.id, event_id=event_id)
    if not links:
        if event_id is not None:
            raise Invalid("eventId: no provider event of this connection is linked to this "
                          "event; link one first", field="eventId")
        raise Invalid("connectionId: no provider event of this connection is linked to a "
                      "racehub event; link one first", field="connectionId")
    return [request_link_sync(db, ctx, connection=connection, link=link,
                              full_refresh=full_refresh, trigger=trigger, preview=preview)
            for link in links]


def active_run(db: Session, link_id: uuid.UUID,
               sync_type: SyncType = SyncType.PARTICIPANTS) -> SyncRun | None:
    return db.scalar(select(SyncRun).where(SyncRun.link_id == link_id,
                                           SyncRun.sync_type == sync_type.value,
                                           SyncRun.status.in_(ACTIVE_SYNC_STATUSES))
                     .execution_options(populate_existing=True))


def request_link_sync(
    db: Session, ctx: TenantContext, *, connection: ProviderConnection, link: EventLink,
    full_refresh: bool = False, trigger: SyncTrigger = SyncTrigger.MANUAL,
    preview: bool = False, sync_type: SyncType = SyncType.PARTICIPANTS,
) -> RunRequest:
    """One link's run of ``sync_type`` and its job, or the link's active run of that type
    (joined, as it was asked: a run waiting for review or held by the circuit breaker
    included)."""
    return request_run(db, ctx, connection=connection, link=link, sync_type=sync_type,
                       kind=KIND_OF[sync_type], full_refresh=full_refresh, trigger=trigger,
                       preview=preview)


def request_run(
    db: Session, ctx: TenantContext, *, connection: ProviderConnection, link: EventLink,
    sync_type: SyncType, kind: str, full_refresh: bool = False,
    trigger: SyncTrigger = SyncTrigger.MANUAL, preview: bool = False,
    params: dict[str, Any] | None = None,
) -> RunRequest:
    """One link's run of ``sync_type`` and its job of ``kind`` (with ``params`` beside the
    run's and the link's ids), or the link's active run of that type (joined)."""
    current = active_run(db, link.id, sync_type)
    if current is not None and _abandoned(db, current):
        current.status = SyncStatus.CANCELLED
        current.finished_at = func.now()
        current.error = "its job ended before the run did (cancelled from the jobs page?)"
        # A reviewed run whose applying job was cancelled kept its read: it goes.
        for table in (StagedRow, SyncPreviewItem):
            db.execute(delete(table).where(table.run_id == current.id))
        db.flush()  # frees the link for the run below
        current = None
    if current is not None:
        return RunRequest(current, joined=True)
    run = SyncRun(
        tenant_id=ctx.tenant_id, connection_id=connection.id, provider=connection.provider,
        link_id=link.id, event_id=link.event_id, sync_type=sync_type.value,
        trigger=trigger.value, status=SyncStatus.QUEUED, requested_by_user_id=ctx.user_id,
        requested_by_label=ctx.actor_label, full_refresh=full_refresh, attempts=0,
        cursor_before=link.cursor, preview=preview)
    try:
        # A savepoint: losing the race for the link rolls back this insert only.
        with db.begin_nested():
            db.add(run)
            db.flush()
    except IntegrityError as exc:
        if not violates(exc, ONE_ACTIVE_RUN_INDEX):
            raise
        # Another request inserted (and committed: the insert waited for it) first.
        current = active_run(db, link.id, sync_type)
        if current is None:  # it finished meanwhile: ask again
            return request_run(db, ctx, connection=connection, link=link,
                               sync_type=sync_type, kind=kind, full_refresh=full_refresh,
                               trigger=trigger, preview=preview, params=params)
        return RunRequest(current, joined=True)
    job = jobs_service.start_job(
        db, ctx, kind=kind,
        params={**(params or {}), "sync_run_id": str(run.id), "link_id": str(link.id)},
        subject_id=link.id, priority=PRIORITY_OF[trigger],
        message=f"{connection.name}: {link.provider_event_name or link.provider_event_ref}")
    run.job_run_id = job.id
    after: dict[str, Any] = {"connection": str(connection.id), "link": str(link.id),
                             "event": str(link.event_id), "trigger": trigger.value,
                             "fullRefresh": full_refresh, "preview": preview}
    if sync_type is not SyncType.PARTICIPANTS:
        after |= {"syncType": sync_type.value, **(params or {})}
    audit.record(db, ctx, action="sync.request", target_type="sync_run", target_id=run.id,
                 after=after)
    db.flush()
    return RunRequest(run, joined=False)


def _abandoned(db: Session, run: SyncRun) -> bool:
    """An active run whose job is gone or over (cancelled from the jobs page while
    queued, say) would hold its link forever. A run waiting for a person has no job
    running by design (its staging job ended): it ends by their decision."""
    if run.status.is_waiting:
        return False
    job = db.get(JobRun, run.job_run_id) if run.job_run_id else None
    return job is None or job.status.is_terminal


# --- reading -------------------------------------------------------------------------------


def connections_feeding(db: Session, ctx: TenantContext, *,
                        event_id: uuid.UUID) -> list[uuid.UUID]:
    """The registration connections with a provider event linked to ``event_id``."""
    events_service.get_event_or_raise(db, ctx, event_id=event_id)
    return list(db.scalars(
        scoped(ctx, EventLink).with_only_columns(EventLink.connection_id).distinct()
        .join(ProviderConnection, ProviderConnection.id == EventLink.connection_id)
        .where(EventLink.event_id == event_id,
               ProviderConnection.direction == Direction.REGISTRATION)
        .order_by(EventLink.connection_id)))


# The order a link's active runs are shown in when several types run at once (a timing
# link may push its start list while its results are pulled).
TYPE_ORDER = {t.value: n for n, t in enumerate(SyncType)}
# How pages name each type of run.
TYPE_LABELS = {SyncType.PARTICIPANTS.value: "registrations sync",
               SyncType.RESULTS_PULL.value: "results pull",
               SyncType.START_LIST_PUSH.value: "start list push",
               SyncType.RESULTS_PUBLISH_PREPARE.value: "publication prepare"}


def active_runs_of(db: Session, ctx: TenantContext, *,
                   link_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[SyncRun]]:
    """The runs queued, running, retrying or waiting for a person of each of these links:
    at most one per sync type (a timing link may push and pull at once), in type order."""
    if not link_ids:
        return {}
    found: dict[uuid.UUID, list[SyncRun]] = {}
    for run in db.scalars(scoped(ctx, SyncRun).where(
            SyncRun.link_id.in_(link_ids), SyncRun.status.in_(ACTIVE_SYNC_STATUSES))):
        if run.link_id is not None:
            found.setdefault(run.link_id, []).append(run)
    for active in found.values():
        active.sort(key=lambda r: (TYPE_ORDER.get(r.sync_type, len(TYPE_ORDER)), r.created_at))
    return found


def participant_labels(db: Session, ctx: TenantContext,
                       ids: list[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """How pages name the EPs a run or a conflict points at: "Last, First (#bib)"."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = db.execute(
        select(EventParticipant.id, Person.last_name, Person.first_name, EventParticipant.bib)
        .join(Person, Person.id == EventParticipant.person_id)
        .where(EventParticipant.tenant_id == ctx.tenant_id,
               EventParticipant.id.in_(wanted)))
    return {ep_id: ", ".join(n for n in (last, first) if n) + (f" (#{bib})" if bib else "")
            for ep_id, last, first, bib in rows}


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
    retried: bool | None = None  # more than one attempt (a retried run keeps its trigger)


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
    if filters.retried is not None:
        stmt = stmt.where(SyncRun.attempts > 1 if filters.retried else SyncRun.attempts <= 1)
    return stmt


def list_changes(
    db: Session, ctx: TenantContext, *, run_id: uuid.UUID,
    actions: Collection[ChangeAction] | None = None, cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[SyncChange], str | None]:
    """A run's changes in the order they were made; only those of ``actions`` when given
    (the cursor of a filtered page pages on through the same filter)."""
    check_limit(limit)
    run = get_run_or_raise(db, ctx, run_id=run_id)
    stmt = scoped(ctx, SyncChange).where(SyncChange.run_id == run.id)
    if actions:
        stmt = stmt.where(SyncChange.action.in_(sorted(set(actions))))
    key = SortKey(columns=[SyncChange.at, SyncChange.id])
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    return split_page(rows, limit, lambda c: [c.at.isoformat(), c.id])


def shown_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """What the history shows of a change: no contact data, birth date or payload."""
    return {k: v for k, v in (changes or {}).items() if k in HISTORY_FIELDS}


@dataclass
class LinkStatus:
    link: EventLink
    # The link's active runs, one per sync type, in type order (one waiting for a person
    # included): a timing link may push its start list while its results are pulled.
    active: list[SyncRun] = field(default_factory=list)
    last_success: SyncRun | None = None
    recent_failures: list[SyncRun] = field(default_factory=list)

    @property
    def running(self) -> SyncRun | None:
        """The first of the active runs (see ``active`` for all of them)."""
        return self.active[0] if self.active else None

    @property
    def waiting(self) -> SyncRun | None:
        """The link's run held by the circuit breaker or awaiting review, if any."""
        return next((run for run in self.active if run.status.is_waiting), None)


def connection_status(db: Session, ctx: TenantContext, *,
                      connection_id: uuid.UUID) -> list[LinkStatus]:
    """Per linked provider event: its active run, its last success, its recent failures."""
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    links = linked_links(db, ctx, connection_id=connection.id)
    if not links:
        return []
    ids = [link.id for link in links]
    statuses = {link.id: LinkStatus(link) for link in links}
    for link_id, active in active_runs_of(db, ctx, link_ids=ids).items():
        statuses[link_id].active = active
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
