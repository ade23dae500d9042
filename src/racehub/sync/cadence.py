"""How often a linked provider event is synced: the cadence, as pure functions of a time.

Participants are synced every ``RACEHUB_SYNC_SCHEDULE_INTERVAL_MINUTES`` (4 hours), more
often as the race comes: every ``..._NEAR_START_INTERVAL_MINUTES`` (15) within
``..._NEAR_START_HOURS`` (24) of the event's start, every ``..._RACE_DAY_INTERVAL_MINUTES``
(2) from ``..._RACE_DAY_HOURS`` (4) before the start until the event ends. A link's
``sync_settings`` may override each interval (``LinkSyncSettings``).

When an event ends: racehub events have a start and a time zone but no end time. The end
is taken as the end of the local day (in the event's own time zone) of its last start:
the event's, or a later category's (the marathon of a race weekend, a day after its 5K).
A finished or cancelled event is over whatever its dates say.

No database here: ``schedule.py`` reads the rows and stores the plan; the tests give the
times.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from racehub.settings import Settings


class Phase(enum.StrEnum):
    BASE = "base"  # before the near-start window
    NEAR_START = "near_start"  # within near_start_hours of the start
    RACE_DAY = "race_day"  # from race_day_hours before the start until the end
    OVER = "over"  # after the end, or the event is finished or cancelled


PHASE_LABELS = {
    Phase.BASE: "the usual cadence",
    Phase.NEAR_START: "the cadence near the start",
    Phase.RACE_DAY: "the race-day cadence",
    Phase.OVER: "the usual cadence (the event is over)",
}


@dataclass(frozen=True)
class Intervals:
    base: timedelta
    near_start: timedelta
    race_day: timedelta

    def of(self, phase: Phase) -> timedelta:
        return {Phase.BASE: self.base, Phase.NEAR_START: self.near_start,
                Phase.RACE_DAY: self.race_day, Phase.OVER: self.base}[phase]


# The override of each phase's interval, as stored in ``EventLink.sync_settings``.
OVERRIDE_OF = {Phase.BASE: "interval_minutes", Phase.NEAR_START: "near_start_interval_minutes",
               Phase.RACE_DAY: "race_day_interval_minutes", Phase.OVER: "interval_minutes"}

# A link's overrides as stored in ``EventLink.sync_settings`` (minutes) -> Intervals field.
OVERRIDE_KEYS = {"interval_minutes": "base", "near_start_interval_minutes": "near_start",
                 "race_day_interval_minutes": "race_day"}


@dataclass(frozen=True)
class Cadence:
    intervals: Intervals
    near_start_window: timedelta
    race_day_window: timedelta
    overridden: tuple[str, ...] = ()  # the intervals the link's settings set

    @classmethod
    def of(cls, settings: Settings, overrides: dict[str, object] | None = None) -> Cadence:
        """The settings' cadence with a link's ``sync_settings`` overrides."""
        minutes = {
            "base": settings.sync_schedule_interval_minutes,
            "near_start": settings.sync_schedule_near_start_interval_minutes,
            "race_day": settings.sync_schedule_race_day_interval_minutes,
        }
        overridden = []
        for key, field in OVERRIDE_KEYS.items():
            value = (overrides or {}).get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                minutes[field] = float(value)
                overridden.append(key)
        return cls(Intervals(**{k: timedelta(minutes=v) for k, v in minutes.items()}),
                   near_start_window=timedelta(hours=settings.sync_schedule_near_start_hours),
                   race_day_window=timedelta(hours=settings.sync_schedule_race_day_hours),
                   overridden=tuple(overridden))


LATEST = datetime.max.replace(tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)


def _before(t: datetime, span: timedelta) -> datetime:
    """``t - span``, or the calendar's first moment for a start at its edge."""
    try:
        return t - span
    except OverflowError:
        return EARLIEST


@dataclass(frozen=True)
class RaceWindow:
    """An event's dates as the cadence sees them."""

    start: datetime
    end: datetime
    time_zone: str
    over: str | None = None  # why the event is over whatever the time ("finished")
    end_note: str = ""  # how ``end`` was decided, for the status

    def phase_at(self, t: datetime, cadence: Cadence) -> Phase:
        if self.over is not None or t >= self.end:
            return Phase.OVER
        if t >= _before(self.start, cadence.race_day_window):
            return Phase.RACE_DAY
        if t >= _before(self.start, cadence.near_start_window):
            return Phase.NEAR_START
        return Phase.BASE

    def next_change(self, t: datetime, cadence: Cadence) -> datetime | None:
        """The first time after ``t`` at which the phase changes, if any."""
        if self.over is not None:
            return None
        later = [b for b in (_before(self.start, cadence.near_start_window),
                             _before(self.start, cadence.race_day_window), self.end) if b > t]
        return min(later, default=None)


def race_window(*, start_at: datetime, time_zone: str, category_starts: Iterable[datetime] = (),
                status: str | None = None) -> RaceWindow:
    """The event's window: from its start to the end of its last start's local day."""
    last = max([start_at, *[s for s in category_starts if s is not None]])
    try:
        zone = ZoneInfo(time_zone)
        zone_note = time_zone
    except (ZoneInfoNotFoundError, ValueError):
        # Events are validated on write; an unreadable name is said, never hidden.
        zone = ZoneInfo("UTC")
        zone_note = f"UTC (the event's time zone {time_zone!r} is unknown)"
    try:
        local_day = last.astimezone(zone).date()
        end = datetime.combine(local_day + timedelta(days=1), time(0),
                               tzinfo=zone).astimezone(UTC)
    except OverflowError:  # a start at the calendar's edge (year 1 or 9999)
        local_day = last.date()
        end = LATEST if last.year > 1 else last
    note = (f"the end of {local_day:%a %d %b %Y} in {zone_note}, the day of its last start "
            "(racehub events have no end time)")
    over = status if status in ("finished", "cancelled") else None
    return RaceWindow(start=start_at, end=end, time_zone=time_zone, over=over, end_note=note)


@dataclass(frozen=True)
class NextRun:
    at: datetime
    phase: Phase
    interval: timedelta  # the cadence's interval in this phase (before any stretching)
    planned: timedelta  # the interval planned: stretched to fit the budget
    tightened_at_boundary: bool  # moved forward to where a tighter cadence starts


def next_run(after: datetime, window: RaceWindow, cadence: Cadence, *,
             stretch: float = 1.0) -> NextRun:
    """When the run after one at ``after`` is due: one (stretched) interval later, or
    sooner where a tighter cadence starts before that (the first run of race day is not
    hours late because the previous one was planned on the 4-hour cadence)."""
    phase = window.phase_at(after, cadence)
    interval = cadence.intervals.of(phase)
    planned = interval * max(1.0, stretch)
    at = after + planned
    change = window.next_change(after, cadence)
    tightened = False
    if (change is not None and change < at
            and cadence.intervals.of(window.phase_at(change, cadence)) < interval):
        at, tightened = change, True
    return NextRun(at=at, phase=phase, interval=interval, planned=planned,
                   tightened_at_boundary=tightened)


def hourly_calls(calls_per_run: float, interval: timedelta) -> float:
    """Requests an hour a link run every ``interval`` costs."""
    return calls_per_run * 3600.0 / max(interval.total_seconds(), 1.0)


def stretch_factor(demand_per_hour: float, budget_per_hour: float, share: float) -> float:
    """How much every interval of a connection is multiplied by so that what its schedules
    plan fits ``share`` of its budget; 1 when it fits."""
    allowed = budget_per_hour * share
    if allowed <= 0:
        return 1.0
    return max(1.0, demand_per_hour / allowed)
