"""When a timing link's results are pulled: every 30 minutes while its event is live, and
soon after a Copernico webhook delivery, within the connection's request budget.

Live: from the event's start until ``RACEHUB_TIMING_LIVE_HOURS`` (12) after its last
start (the event's or a later category's; racehub events have no end time); never once
the event is finished or cancelled. While live, a link is pulled every
``RACEHUB_SYNC_RESULTS_PULL_INTERVAL_MINUTES`` (30), stretched by the same rule as the
participant cadence when the connection's budget is short (``schedule.budget_per_hour``
and ``RACEHUB_SYNC_SCHEDULE_BUDGET_SHARE``). Before the start the next pull is the start;
after the window nothing is planned (pull on demand).

The link's ``next_run_at`` and ``schedule_plan`` hold the plan, as for participant syncs;
``schedule.plan_link`` hands timing links (connections of direction SCORING) to
``plan_pull``, so linking, the tick and a run's end plan them here. A scheduled kind,
``results_pull``, defers the due pulls each minute (``schedule_tick.tick``).

Webhooks (``debounce_webhook``, called for each stored delivery): the delivery names its
race by ``competitionId``, ASSUMED to be the Copernico race id, the part before ":" of the
link's ``raceId:eventId`` (PROVIDERS.md: M; no public document says more). Each linked,
auto-synced link of that race gets a pending pull at ``max(now, last pull + 60 s)``
(the 60 s stretched like the cadence when the budget is short): ``next_run_at`` moves
forward to it, never back, so several deliveries within a minute make one pull, taken by
the minute tick. A delivery without a ``competitionId``, or naming no linked race, pulls
nothing (it is stored all the same); a link is never guessed. The bookkeeping (when a
pull was last requested, whether a delivery waits) is ``state["results_pull"]`` on the
link.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.events.models import Category, Event
from racehub.providers.catalog import Direction, get_spec
from racehub.providers.copernico.mapping import CopernicoWebhook
from racehub.settings import Settings, get_settings
from racehub.sync import runs, schedule
from racehub.sync.cadence import stretch_factor
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    SyncRun,
    SyncStatus,
    SyncTrigger,
    SyncType,
)
from racehub.sync.results_read import EXTERNAL_ID_BY_ENTRY

log = structlog.get_logger(__name__)

RESULTS_PULL = SyncType.RESULTS_PULL.value
WEBHOOK_DEBOUNCE = timedelta(seconds=60)
STATE_KEY = "results_pull"
ACTOR = "schedule"
WEBHOOK_ACTOR = "webhook"


# --- the live window ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveWindow:
    start: datetime
    end: datetime
    over: str | None  # "finished" / "cancelled": over whatever the time

    def live_at(self, at: datetime) -> bool:
        return self.over is None and self.start <= at < self.end


def live_window(db: Session, event_id: uuid.UUID, *,
                settings: Settings | None = None) -> LiveWindow | None:
    settings = settings or get_settings()
    row = db.execute(select(Event.start_at, Event.status).where(Event.id == event_id)).first()
    if row is None:
        return None
    latest = db.scalar(select(func.max(Category.start_at)).where(Category.event_id == event_id))
    last_start = max(row[0], latest) if latest else row[0]
    status = str(getattr(row[1], "value", row[1]))
    return LiveWindow(start=row[0],
                      end=last_start + timedelta(hours=settings.timing_live_hours),
                      over=status if status in ("finished", "cancelled") else None)


# --- the budget -----------------------------------------------------------------------------


def calls_per_pull(db: Session, connection: ProviderConnection, link: EventLink) -> int:
    """Requests one pull of ``link`` costs, from what its last successful pull read: the
    result pages (ChronoTrack: and as many entry pages), or one (Copernico: one reply)."""
    spec = get_spec(connection.provider)
    if spec is None or connection.provider not in EXTERNAL_ID_BY_ENTRY:
        return 1
    rows = db.scalar(select(SyncRun.fetched).where(
        SyncRun.link_id == link.id, SyncRun.sync_type == RESULTS_PULL,
        SyncRun.status == SyncStatus.SUCCEEDED)
        .order_by(SyncRun.finished_at.desc().nulls_last(), SyncRun.id).limit(1)) or 0
    return 2 * spec.adapter_class().estimated_read_calls(connection.settings or {}, rows=rows)


def _timing_links(db: Session, connection: ProviderConnection) -> list[EventLink]:
    return list(db.scalars(select(EventLink).where(
        EventLink.connection_id == connection.id, EventLink.auto_sync.is_(True),
        EventLink.event_id.is_not(None))))


def hourly_pull_calls(db: Session, connection: ProviderConnection, at: datetime, *,
                      settings: Settings | None = None) -> float:
    """Requests an hour the connection's live timing links' pulls plan at ``at``."""
    if connection.direction != Direction.SCORING:
        return 0.0
    settings = settings or get_settings()
    per_hour = 60.0 / settings.sync_results_pull_interval_minutes
    total = 0.0
    for link in _timing_links(db, connection):
        assert link.event_id is not None
        window = live_window(db, link.event_id, settings=settings)
        if window is not None and window.live_at(at):
            total += calls_per_pull(db, connection, link) * per_hour
    return total


def stretch(db: Session, connection: ProviderConnection, at: datetime, *,
            settings: Settings | None = None) -> float:
    """How much pulls of the connection are spaced out to fit its budget (1: they fit)."""
    settings = settings or get_settings()
    demand = (hourly_pull_calls(db, connection, at, settings=settings)
              + schedule.other_hourly_calls(db, connection, at, exclude=RESULTS_PULL))
    return stretch_factor(demand, schedule.budget_per_hour(connection),
                          settings.sync_schedule_budget_share)


# --- planning a link -------------------------------------------------------------------------


def _state(link: EventLink) -> dict[str, Any]:
    return dict((link.state or {}).get(STATE_KEY) or {})


def _set_state(link: EventLink, **values: Any) -> None:
    link.state = {**(link.state or {}), STATE_KEY: {**_state(link), **values}}


def _utc(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def plan_pull(db: Session, link: EventLink, after: datetime, now: datetime, *,
              settings: Settings | None = None) -> datetime | None:
    """Set a timing link's next pull: while its event is live (at ``after``), one
    (stretched) interval after the last pull was asked for (none yet: ``after``); before,
    its start; nothing after. A pull a webhook delivery asked for is kept when sooner.
    (The ``schedule.LINK_PLANNERS`` entry of timing links.)"""
    settings = settings or get_settings()
    if not link.auto_sync or link.event_id is None:
        link.next_run_at = None
        link.schedule_plan = None
        return None
    connection = db.get(ProviderConnection, link.connection_id)
    assert connection is not None  # the foreign key cascades
    window = live_window(db, link.event_id, settings=settings)
    if window is None:  # its event is gone
        link.next_run_at = None
        link.schedule_plan = None
        return None
    factor = stretch(db, connection, now, settings=settings)
    base = timedelta(minutes=settings.sync_results_pull_interval_minutes)
    interval = base * factor
    minutes = f"{interval.total_seconds() / 60:g} min"
    span = f"live from {_utc(window.start)} until {_utc(window.end)}"
    at: datetime | None
    if window.over is not None or after >= window.end:
        at = None
        reason = (f"the event is {window.over}" if window.over else
                  f"the event was {span}") + ": results are pulled on demand only"
    elif after < window.start:
        at = window.start
        reason = f"results are pulled every {minutes} while the event is {span}"
    else:
        # One interval after the last pull asked for (the first one at once).
        last = _state(link).get("requested_at")
        at = datetime.fromisoformat(last) + interval if last else after
        reason = f"every {minutes} while the event is {span}"
        if at >= window.end:
            at = None
            reason += ": the window ends before the next pull; pull on demand after that"
    if factor > 1.0:
        reason += (f"; stretched x{factor:.2f} from {base.total_seconds() / 60:g} min to fit "
                   f"the connection's request budget")
    pending = _state(link).get("webhook_due")
    if pending is not None:
        due = datetime.fromisoformat(pending)
        if at is None or due < at:
            at = due
            reason = f"a webhook delivery asked for a pull at {_utc(due)}; then {reason}"
    link.next_run_at = at
    link.schedule_plan = {
        "planned_at": now.isoformat(), "phase": "live" if window.live_at(after) else (
            "before_start" if after < window.start else "over"),
        "interval_minutes": base.total_seconds() / 60,
        "planned_interval_minutes": interval.total_seconds() / 60,
        "stretched": factor > 1.0, "stretch": round(factor, 4),
        "estimated_calls_per_run": calls_per_pull(db, connection, link),
        "budget_per_hour": schedule.budget_per_hour(connection),
        "planned_calls_per_hour": round(hourly_pull_calls(db, connection, now,
                                                          settings=settings), 1),
        "event_end": window.end.isoformat(), "reason": reason,
    }
    return at


schedule.LINK_PLANNERS[Direction.SCORING] = plan_pull


# --- the tick ----------------------------------------------------------------------------------


def _scoring_auto() -> Any:
    return and_(EventLink.auto_sync.is_(True), EventLink.event_id.is_not(None),
                EventLink.connection_id.in_(select(ProviderConnection.id).where(
                    ProviderConnection.direction == Direction.SCORING)))


def defer_due_pulls(db: Session, now: datetime, limit: int = 50) -> int:
    """One batch of the ``results_pull`` kind (see ``schedule.ScheduledKind``): plan the
    timing links never planned, then request a pull for each due link whose event is live
    or a webhook delivery waits for (joining its active pull, if any), and plan its next."""
    unplanned = list(db.scalars(
        select(EventLink).where(_scoring_auto(), EventLink.next_run_at.is_(None),
                                EventLink.schedule_plan.is_(None))
        .order_by(EventLink.id).limit(limit).with_for_update(skip_locked=True)))
    for link in unplanned:
        plan_pull(db, link, now, now)
    db.flush()
    due = list(db.scalars(
        select(EventLink).where(_scoring_auto(), EventLink.next_run_at <= now)
        .order_by(EventLink.next_run_at, EventLink.id).limit(limit)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True)))
    for link in due:
        assert link.event_id is not None
        window = live_window(db, link.event_id)
        webhook = _state(link).get("webhook_due") is not None
        if webhook or (window is not None and window.live_at(now)):
            trigger = SyncTrigger.WEBHOOK if webhook else SyncTrigger.SCHEDULE
            ctx = TenantContext.system(link.tenant_id,
                                       label=WEBHOOK_ACTOR if webhook else ACTOR)
            try:
                with db.begin_nested():
                    requested = request_pull(db, ctx, link=link, trigger=trigger, now=now)
            except Exception:  # one link's failure must not stop the others'
                log.exception("sync.results_pull_request_failed", link_id=str(link.id),
                              tenant_id=str(link.tenant_id))
            else:
                log.info("sync.results_pull_scheduled", link_id=str(link.id),
                         sync_run_id=str(requested.run.id), joined=requested.joined,
                         trigger=trigger.value)
        _set_state(link, webhook_due=None)
        # Provisional: the pull's end plans the next one from when it ended.
        plan_pull(db, link, now, now)
    db.flush()
    return len(unplanned) + len(due)


def request_pull(db: Session, ctx: TenantContext, *, link: EventLink, trigger: SyncTrigger,
                 now: datetime) -> runs.RunRequest:
    """A results pull of ``link`` (or its active one, joined); remembers when, for the
    webhook debounce."""
    connection = db.get(ProviderConnection, link.connection_id)
    assert connection is not None
    requested = runs.request_link_sync(db, ctx, connection=connection, link=link,
                                       trigger=trigger, sync_type=SyncType.RESULTS_PULL)
    _set_state(link, requested_at=now.isoformat())
    return requested


schedule.register(schedule.ScheduledKind(name=RESULTS_PULL, defer_due=defer_due_pulls,
                                         hourly_calls=hourly_pull_calls))


# --- webhooks ----------------------------------------------------------------------------------


def race_of_ref(provider_event_ref: str) -> str:
    """The Copernico race id of a link's ``raceId:eventId``."""
    return provider_event_ref.strip().partition(":")[0]


def debounce_webhook(db: Session, connection: ProviderConnection, hook: CopernicoWebhook, *,
                     now: datetime) -> list[EventLink]:
    """Ask for a pull of each linked race the delivery names, at most one a minute per
    link: returns the links whose pull was moved forward or already waits."""
    if hook.competition_id is None:
        log.info("webhook.no_competition", connection_id=str(connection.id))
        return []
    links = [link for link in db.scalars(
        select(EventLink).where(EventLink.connection_id == connection.id,
                                EventLink.event_id.is_not(None),
                                EventLink.auto_sync.is_(True))
        .order_by(EventLink.id).with_for_update())
        if race_of_ref(link.provider_event_ref) == hook.competition_id]
    if not links:
        log.info("webhook.no_linked_race", connection_id=str(connection.id),
                 competition_id=hook.competition_id)
        return []
    gap = WEBHOOK_DEBOUNCE * stretch(db, connection, now)
    for link in links:
        state = _state(link)
        last = state.get("requested_at")
        due = max(now, datetime.fromisoformat(last) + gap) if last else now
        pending = state.get("webhook_due")
        if pending is not None:
            due = min(due, datetime.fromisoformat(pending))
        _set_state(link, webhook_due=due.isoformat())
        if link.next_run_at is None or due < link.next_run_at:
            link.next_run_at = due
            plan = dict(link.schedule_plan or {})
            plan["reason"] = (f"a webhook delivery ({hook.type}) asked for a pull: at "
                              f"{_utc(due)}, at most one a "
                              f"{gap.total_seconds():g} s per link")
            link.schedule_plan = plan
    db.flush()
    return links


__all__ = ["LiveWindow", "debounce_webhook", "defer_due_pulls", "live_window", "plan_pull",
           "request_pull"]
