"""When each linked provider event is synced next, within its connection's request budget.

A link's ``next_run_at`` is planned (``plan_link``) when it is linked or its schedule
settings change, when the tick defers its run (provisionally: the run may never end, the
link must not be forgotten), and when a run of it ends, whatever its trigger
(``run_ended``: succeeded, failed for good or cancelled). The plan, stored on the link as
``schedule_plan``, is what the status and links APIs show beside the next run.

The cadence (``cadence.py``) gives each link's interval at a time. The budget: a
connection's requests share one token bucket (``providers/ratelimit.py``, keyed by the
connection id) of ``rate_per_second`` (the connection's setting, else the adapter's
default: Haku about 500 requests an hour). A run's requests are estimated from what the
link's last run read (``ProviderAdapter.estimated_read_calls``: its pages, and Haku's one
detail call per registration), or, before a full read, from the registrations synced
through the link. When the connection's auto-synced links would need more than
``RACEHUB_SYNC_SCHEDULE_BUDGET_SHARE`` of the budget an hour at their cadence, every
interval of the connection is stretched by the same factor, and the plan says so and why.

The tick that defers due runs is in ``schedule_tick.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from racehub.events import service as events_service
from racehub.events.models import Category, Event
from racehub.providers.catalog import PROVIDERS, Direction, get_spec
from racehub.settings import Settings, get_settings
from racehub.sync.cadence import (
    OVERRIDE_OF,
    PHASE_LABELS,
    Cadence,
    NextRun,
    Phase,
    RaceWindow,
    hourly_calls,
    next_run,
    race_window,
    stretch_factor,
)
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    SyncedRecord,
    SyncRun,
    SyncStatus,
    SyncType,
)

FINISHED_STATUSES = (SyncStatus.SUCCEEDED, SyncStatus.FAILED, SyncStatus.CANCELLED,
                     SyncStatus.DISCARDED)
PARTICIPANTS = "participants"


# --- the kinds of scheduled work ------------------------------------------------------------


@dataclass(frozen=True)
class ScheduledKind:
    """One kind of work the tick defers when due (participant runs, later discovery).

    ``defer_due(db, now, limit)`` locks at most ``limit`` due rows with ``FOR UPDATE SKIP
    LOCKED`` (two ticks never take the same row), defers their work, moves their next run
    on, and returns how many it handled; it does not commit (the tick commits each batch).
    ``hourly_calls(db, connection, at)``, when given, is the requests an hour the kind plans
    on a connection: the participant cadence leaves that much of the budget to it."""

    name: str
    defer_due: Callable[[Session, datetime, int], int]
    hourly_calls: Callable[[Session, ProviderConnection, datetime], float] | None = None


SCHEDULED_KINDS: dict[str, ScheduledKind] = {}

# Links planned by another kind than the participant cadence, by their connection's
# direction: ``planner(db, link, after, now)`` sets the link's next run and plan the way
# ``plan_link`` does. A timing link's results pulls (sync/results_schedule.py) register
# theirs; ``plan_link`` (and so ``replan`` and ``run_ended``) hands such links to it.
LinkPlanner = Callable[[Session, EventLink, datetime, datetime], "datetime | None"]
# What the schedule runs on a link, by its connection's direction.
SCHEDULED_SYNC_TYPE: dict[Direction, str] = {Direction.REGISTRATION: SyncType.PARTICIPANTS.value,
                                             Direction.SCORING: SyncType.RESULTS_PULL.value}
LINK_PLANNERS: dict[Direction, LinkPlanner] = {}


def register(kind: ScheduledKind) -> None:
    """Add a kind to the tick (at import of its module; registering a name again replaces
    it). Discovery registers its own, keeping its next run on the connection."""
    SCHEDULED_KINDS[kind.name] = kind


def other_hourly_calls(db: Session, connection: ProviderConnection, at: datetime, *,
                       exclude: str) -> float:
    return sum(kind.hourly_calls(db, connection, at) for kind in SCHEDULED_KINDS.values()
               if kind.name != exclude and kind.hourly_calls is not None)


# --- what a run costs, and what a connection may spend ------------------------------------


@dataclass(frozen=True)
class LinkFacts:
    link_id: uuid.UUID
    window: RaceWindow
    cadence: Cadence
    calls_per_run: int


@dataclass(frozen=True)
class Budget:
    """A connection's request budget against what its auto-synced links' cadence needs."""

    provider_label: str
    per_hour: float
    share: float
    links: dict[uuid.UUID, LinkFacts]
    demand_per_hour: float  # at each link's cadence at ``at``
    other_per_hour: float  # other scheduled kinds' (discovery's) planned requests
    at: datetime

    @property
    def allowed_per_hour(self) -> float:
        return self.per_hour * self.share

    @property
    def stretch(self) -> float:
        return stretch_factor(self.demand_per_hour + self.other_per_hour, self.per_hour,
                              self.share)


def budget_per_hour(connection: ProviderConnection) -> float:
    """Requests an hour the connection's token bucket refills: its ``rate_per_second``
    setting, else its adapter's default."""
    spec = get_spec(connection.provider)
    rate = (connection.settings or {}).get("rate_per_second")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        return float(rate) * 3600.0
    if spec is None:
        return 0.0
    return spec.adapter_class().default_rate_limit.per_second * 3600.0


def estimated_calls(connection: ProviderConnection, rows: int) -> int:
    spec = get_spec(connection.provider)
    if spec is None:
        return 1
    return spec.adapter_class().estimated_read_calls(connection.settings or {}, rows=rows)


def _rows_to_read(db: Session, links: Sequence[EventLink]) -> dict[uuid.UUID, int]:
    """Registrations the next run of each link is expected to read: what its last
    incremental run read (else its last run) when the next run is incremental; before a
    full read (no cursor), the registrations synced through it."""
    ids = [link.id for link in links]
    if not ids:
        return {}
    incremental = and_(SyncRun.cursor_before.is_not(None), SyncRun.full_refresh.is_(False))
    last = dict(db.execute(
        select(SyncRun.link_id, SyncRun.fetched).ext(distinct_on(SyncRun.link_id))
        .where(SyncRun.link_id.in_(ids), SyncRun.status == SyncStatus.SUCCEEDED)
        .order_by(SyncRun.link_id, incremental.desc(), SyncRun.finished_at.desc().nulls_last(),
                  SyncRun.id)).all())
    synced = dict(db.execute(
        select(SyncedRecord.link_id, func.count()).where(SyncedRecord.link_id.in_(ids))
        .group_by(SyncedRecord.link_id)).all())
    return {link.id: (last[link.id] if link.cursor is not None and link.id in last
                      else synced.get(link.id, 0)) for link in links}


def _windows(db: Session, event_ids: set[uuid.UUID]) -> dict[uuid.UUID, RaceWindow]:
    if not event_ids:
        return {}
    latest = dict(db.execute(
        select(Category.event_id, func.max(Category.start_at))
        .where(Category.event_id.in_(event_ids)).group_by(Category.event_id)).all())
    return {event_id: race_window(start_at=start_at, time_zone=zone,
                                  category_starts=[c for c in [latest.get(event_id)] if c],
                                  status=str(getattr(status, "value", status)))
            for event_id, start_at, zone, status in db.execute(
                select(Event.id, Event.start_at, Event.timezone, Event.status)
                .where(Event.id.in_(event_ids)))}


def _auto_links(db: Session, connection: ProviderConnection) -> list[EventLink]:
    return list(db.scalars(select(EventLink).where(
        EventLink.connection_id == connection.id, EventLink.auto_sync.is_(True),
        EventLink.event_id.is_not(None))))


def connection_budget(db: Session, connection: ProviderConnection, *, at: datetime,
                      include: Sequence[EventLink] = (),
                      settings: Settings | None = None) -> Budget:
    """The connection's budget and what its auto-synced links (and ``include``, a link being
    planned) need at ``at``."""
    settings = settings or get_settings()
    links = {link.id: link for link in [*_auto_links(db, connection), *include]
             if link.event_id is not None}
    windows = _windows(db, {link.event_id for link in links.values() if link.event_id})
    rows = _rows_to_read(db, list(links.values()))
    facts: dict[uuid.UUID, LinkFacts] = {}
    demand = 0.0
    for link in links.values():
        assert link.event_id is not None
        window = windows.get(link.event_id)
        if window is None:
            continue
        cadence = Cadence.of(settings, link.sync_settings)
        fact = LinkFacts(link.id, window, cadence, estimated_calls(connection, rows[link.id]))
        facts[link.id] = fact
        if link.auto_sync:
            demand += hourly_calls(fact.calls_per_run,
                                   cadence.intervals.of(window.phase_at(at, cadence)))
    spec = PROVIDERS.get(connection.provider)
    return Budget(provider_label=spec.label if spec else connection.provider,
                  per_hour=budget_per_hour(connection),
                  share=settings.sync_schedule_budget_share, links=facts,
                  demand_per_hour=demand,
                  other_per_hour=other_hourly_calls(db, connection, at, exclude=PARTICIPANTS),
                  at=at)


# --- planning a link ---------------------------------------------------------------------


def _span(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    if minutes >= 120 and minutes % 60 == 0:
        return f"{minutes / 60:g} h"
    if minutes >= 120:
        return f"{minutes / 60:.1f} h"
    return f"{minutes:g} min" if minutes == int(minutes) else f"{minutes:.1f} min"


def _utc(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _reason(plan: NextRun, fact: LinkFacts, budget: Budget, *, links: int) -> str:
    cadence, window = fact.cadence, fact.window
    own = " (the link's own setting)" if OVERRIDE_OF[plan.phase] in cadence.overridden else ""
    parts = [f"every {_span(plan.interval)}{own}: {PHASE_LABELS[plan.phase]}"]
    if window.over:
        parts.append(f"the event is {window.over}")
    else:
        parts.append(f"the event starts {_utc(window.start)} and is taken to end "
                     f"{_utc(window.end)}, {window.end_note}")
    if plan.tightened_at_boundary:
        parts.append(f"moved forward to {_utc(plan.at)}, where a tighter cadence starts")
    needed = budget.demand_per_hour + budget.other_per_hour
    if budget.stretch > 1.0:
        parts.append(
            f"stretched x{budget.stretch:.2f} to {_span(plan.planned)}: the {links} "
            f"auto-synced link(s) of this connection would need about {needed:.0f} requests "
            f"an hour (about {fact.calls_per_run} per run of this one); "
            f"{budget.provider_label} allows {budget.per_hour:.0f} an hour and schedules "
            f"plan with {budget.share:.0%} of it ({budget.allowed_per_hour:.0f})")
    else:
        parts.append(f"within the request budget: about {needed:.0f} of "
                     f"{budget.allowed_per_hour:.0f} requests an hour planned")
    return "; ".join(parts)


def plan_link(db: Session, link: EventLink, *, after: datetime, now: datetime,
              budget: Budget | None = None, settings: Settings | None = None,
              ) -> datetime | None:
    """Set the link's ``next_run_at`` (and its plan): one interval of its cadence after
    ``after``, stretched to the connection's budget as it stands at ``now``. None, and no
    plan, when auto-sync is off or the link is not linked."""
    if not link.auto_sync or link.event_id is None:
        link.next_run_at = None
        link.schedule_plan = None
        return None
    connection = db.get(ProviderConnection, link.connection_id)
    assert connection is not None  # the foreign key cascades
    if (planner := LINK_PLANNERS.get(connection.direction)) is not None:
        return planner(db, link, after, now)
    if budget is None or link.id not in budget.links:
        budget = connection_budget(db, connection, at=now, include=[link], settings=settings)
    fact = budget.links.get(link.id)
    if fact is None:  # its event is gone: nothing to plan with
        link.next_run_at = None
        link.schedule_plan = None
        return None
    plan = next_run(after, fact.window, fact.cadence, stretch=budget.stretch)
    reason = _reason(plan, fact, budget, links=len(budget.links))
    link.next_run_at = at = plan.at
    link.schedule_plan = {
        "planned_at": now.isoformat(), "phase": plan.phase.value,
        "interval_minutes": plan.interval.total_seconds() / 60,
        "planned_interval_minutes": plan.planned.total_seconds() / 60,
        "stretched": budget.stretch > 1.0, "stretch": round(budget.stretch, 4),
        "estimated_calls_per_run": fact.calls_per_run, "budget_per_hour": budget.per_hour,
        "planned_calls_per_hour": round(budget.demand_per_hour + budget.other_per_hour, 1),
        "event_end": fact.window.end.isoformat(), "reason": reason,
    }
    return at


def last_run_end(db: Session, link: EventLink) -> datetime | None:
    return db.scalar(select(func.max(SyncRun.finished_at)).where(
        SyncRun.link_id == link.id, SyncRun.status.in_(FINISHED_STATUSES)))


def replan(db: Session, link: EventLink, *, now: datetime, linked: bool = False) -> None:
    """After the link was linked (``linked``: one interval from now; "Sync now" is there
    for a first read at once) or its schedule settings changed, or found unplanned by the
    tick: one interval after its last run ended, else after it was linked. Overdue: the
    next tick runs it."""
    last = None if linked else (last_run_end(db, link) or link.linked_at)
    plan_link(db, link, after=last or now, now=now)


def replan_event_links(db: Session, event: Event) -> None:
    """The event's start moved: re-plan its planned links now (their cadence, and a timing
    link's results pulls, follow the start), each from its last run's end as the tick
    would."""
    now = datetime.now(UTC)
    for link in db.scalars(select(EventLink).where(EventLink.event_id == event.id,
                                                   EventLink.next_run_at.is_not(None))):
        replan(db, link, now=now)


events_service.START_MOVED.append(replan_event_links)


def run_ended(db: Session, run: SyncRun) -> None:
    """A run of the link ended (succeeded, failed for good, cancelled or discarded): plan its next
    one from its end, when it was of the type the link's schedule runs (participants on a
    registration link, results pulls on a timing link: a start-list push ending does not
    move the next pull). Called in the transaction that records the end."""
    if run.link_id is None or run.finished_at is None:
        return
    link = db.get(EventLink, run.link_id)
    connection = db.get(ProviderConnection, link.connection_id) if link is not None else None
    if (link is not None and connection is not None
            and run.sync_type == SCHEDULED_SYNC_TYPE.get(connection.direction)):
        plan_link(db, link, after=run.finished_at, now=run.finished_at)


def read_plan(link: EventLink) -> dict[str, Any] | None:
    """The stored plan, for the APIs (None when auto-sync is off or nothing is planned)."""
    return link.schedule_plan if link.auto_sync and link.next_run_at is not None else None


__all__ = ["Budget", "Phase", "ScheduledKind", "connection_budget", "plan_link", "read_plan",
           "register", "replan", "run_ended"]
