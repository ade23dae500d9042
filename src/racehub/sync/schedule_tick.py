"""The schedule's tick: every minute, defer the runs whose time has come.

A procrastinate periodic task (``sync:schedule:tick``, declared on this module's
``blueprint`` and added by the sync domain's tasks module) goes through every registered
``schedule.ScheduledKind``. For participants: the linked, auto-synced links whose
``next_run_at`` has come are locked ``FOR UPDATE SKIP LOCKED``, each gets a run through
``runs.request_link_sync`` with trigger ``schedule`` (a link whose run is active joins it:
never two runs of a link), and its ``next_run_at`` moves on by one planned interval (the
run's end plans it again). Two ticks at once (two workers, a tick deferred by hand) never
take the same link: the second skips the rows the first holds, and once the first commits
their ``next_run_at`` is in the future. Links linked but never planned (made by any path)
are planned here first.

Each batch is committed with its jobs (they are deferred on the tick's own connection), so
a run is queued exactly when its link's next run has moved on.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import structlog
from procrastinate import Blueprint
from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.jobs.runner import worker_sessionmaker
from racehub.providers.catalog import Direction
from racehub.sync import runs, schedule
from racehub.sync.models import EventLink, ProviderConnection, SyncTrigger

log = structlog.get_logger(__name__)

blueprint = Blueprint()

ACTOR = "schedule"
BATCH = 50
MAX_BATCHES = 200  # 10,000 links a minute: a bound on the loop, far above any tenant's
RETRY_AFTER_ERROR = timedelta(minutes=15)


def _linked_auto() -> ColumnElement[bool]:
    """Links whose participants the schedule pulls: linked, auto-synced, of a registration
    connection (a timing link's schedule is its results pulls, another kind)."""
    registration = select(ProviderConnection.id).where(
        ProviderConnection.direction == Direction.REGISTRATION)
    return and_(EventLink.auto_sync.is_(True), EventLink.event_id.is_not(None),
                EventLink.connection_id.in_(registration))


def defer_due_participants(db: Session, now: datetime, limit: int = BATCH) -> int:
    """One batch of the participants kind (see ``schedule.ScheduledKind``)."""
    unplanned = list(db.scalars(
        select(EventLink).where(_linked_auto(), EventLink.next_run_at.is_(None))
        .order_by(EventLink.id).limit(limit).with_for_update(skip_locked=True)))
    for link in unplanned:
        schedule.replan(db, link, now=now)
    db.flush()
    due = list(db.scalars(
        select(EventLink).where(_linked_auto(), EventLink.next_run_at <= now)
        .order_by(EventLink.next_run_at, EventLink.id).limit(limit)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True)))
    budgets: dict[object, schedule.Budget] = {}
    for link in due:
        connection = db.get(ProviderConnection, link.connection_id)
        assert connection is not None  # the foreign key cascades
        if connection.id not in budgets:
            budgets[connection.id] = schedule.connection_budget(db, connection, at=now)
        ctx = TenantContext.system(link.tenant_id, label=ACTOR)
        try:
            with db.begin_nested():
                requested = runs.request_link_sync(db, ctx, connection=connection, link=link,
                                                   trigger=SyncTrigger.SCHEDULE)
        except Exception as exc:  # one link's failure must not stop the others'
            log.exception("sync.schedule_request_failed", link_id=str(link.id),
                          tenant_id=str(link.tenant_id))
            schedule.plan_link(db, link, after=now, now=now, budget=budgets[connection.id])
            link.next_run_at = now + RETRY_AFTER_ERROR
            plan = dict(link.schedule_plan or {})
            plan["reason"] = (f"the scheduled run could not be requested ({type(exc).__name__}: "
                              f"{str(exc)[:300]}); tried again at "
                              f"{link.next_run_at:%Y-%m-%d %H:%M} UTC")
            link.schedule_plan = plan
            continue
        # Provisional: the run's end plans the next one from when it ended.
        schedule.plan_link(db, link, after=now, now=now, budget=budgets[connection.id])
        log.info("sync.scheduled", link_id=str(link.id), tenant_id=str(link.tenant_id),
                 sync_run_id=str(requested.run.id), joined=requested.joined)
    db.flush()
    return len(unplanned) + len(due)


schedule.register(schedule.ScheduledKind(name=schedule.PARTICIPANTS,
                                         defer_due=defer_due_participants))


def tick(factory: Callable[[], AbstractContextManager[Session]], *, now: datetime,
         batch: int = BATCH) -> dict[str, int]:
    """Every kind's due work at ``now``, batch by batch, each committed. Returns how many
    rows each kind handled."""
    handled: dict[str, int] = {}
    with factory() as db:
        for kind in list(schedule.SCHEDULED_KINDS.values()):
            total = 0
            for _ in range(MAX_BATCHES):
                count = kind.defer_due(db, now, batch)
                db.commit()
                total += count
                if count < batch:
                    break
            handled[kind.name] = total
    return handled


@blueprint.periodic(cron="* * * * *")  # every minute
@blueprint.task(name="tick", queueing_lock="sync_schedule_tick")
def tick_task(timestamp: int) -> int:
    """Defer the scheduled runs whose time has come."""
    handled = tick(worker_sessionmaker(), now=datetime.now(UTC))
    if any(handled.values()):
        log.info("sync.schedule_tick", **handled)
    return sum(handled.values())
