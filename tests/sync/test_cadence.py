"""The cadence of scheduled participant syncs, as a function of the time: 4 hours, every 15
minutes within 24 hours of the start, every 2 minutes from 4 hours before the start until
the event ends (the end of its last start's day in its own time zone), and back to 4 hours
after; a link's own intervals; the budget's stretch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from racehub.settings import Settings
from racehub.sync.cadence import (
    Cadence,
    Phase,
    hourly_calls,
    next_run,
    race_window,
    stretch_factor,
)

# 07:00 in Chicago (CDT, UTC-5): 12:00 UTC. Its day ends at midnight in Chicago: 05:00 UTC.
START = datetime(2026, 9, 12, 12, 0, tzinfo=UTC)
END = datetime(2026, 9, 13, 5, 0, tzinfo=UTC)
WINDOW = race_window(start_at=START, time_zone="America/Chicago")
CADENCE = Cadence.of(Settings())


def test_the_event_ends_at_the_end_of_its_day_in_its_own_time_zone() -> None:
    assert WINDOW.end == END
    assert "Sat 12 Sep 2026 in America/Chicago" in WINDOW.end_note
    # A category starting the next day (the marathon of a race weekend) moves the end.
    weekend = race_window(start_at=START, time_zone="America/Chicago",
                          category_starts=[START + timedelta(days=1)])
    assert weekend.end == END + timedelta(days=1)
    # The same instant in Tokyo is already 21:00 on the 12th: its day ends 3 hours later.
    tokyo = race_window(start_at=START, time_zone="Asia/Tokyo")
    assert tokyo.end == datetime(2026, 9, 12, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("before_start", "phase", "due_in"), [
    # 25 h before: the 4-hour cadence, but the next run is where the 15-minute one starts.
    (timedelta(hours=25), Phase.BASE, timedelta(hours=1)),
    (timedelta(hours=30), Phase.BASE, timedelta(hours=4)),
    (timedelta(hours=23), Phase.NEAR_START, timedelta(minutes=15)),
    # 4 h 10 min before: 15 minutes would pass the race-day start, 10 minutes away.
    (timedelta(hours=4, minutes=10), Phase.NEAR_START, timedelta(minutes=10)),
    (timedelta(hours=3), Phase.RACE_DAY, timedelta(minutes=2)),
    (timedelta(hours=4), Phase.RACE_DAY, timedelta(minutes=2)),  # the boundary itself
    (-timedelta(hours=6), Phase.RACE_DAY, timedelta(minutes=2)),  # during the race
])
def test_the_race_week_cadence_at_its_boundaries(before_start: timedelta, phase: Phase,
                                                 due_in: timedelta) -> None:
    after = START - before_start

    planned = next_run(after, WINDOW, CADENCE)

    assert (planned.phase, planned.at - after) == (phase, due_in)


def test_after_the_end_the_cadence_is_four_hours_again() -> None:
    just_before = next_run(END - timedelta(minutes=1), WINDOW, CADENCE)
    at_end = next_run(END, WINDOW, CADENCE)

    assert (just_before.phase, just_before.at) == (Phase.RACE_DAY,
                                                   END + timedelta(minutes=1))
    assert (at_end.phase, at_end.at) == (Phase.OVER, END + timedelta(hours=4))


def test_a_finished_or_cancelled_event_is_over_whatever_its_dates() -> None:
    finished = race_window(start_at=START, time_zone="America/Chicago", status="finished")

    planned = next_run(START - timedelta(hours=3), finished, CADENCE)

    assert (planned.phase, planned.interval) == (Phase.OVER, timedelta(hours=4))


def test_a_links_own_intervals_override_the_settings_phase_by_phase() -> None:
    cadence = Cadence.of(Settings(), {"race_day_interval_minutes": 5, "interval_minutes": 60})
    after = START - timedelta(hours=3)

    assert next_run(after, WINDOW, cadence).at - after == timedelta(minutes=5)
    assert next_run(START - timedelta(days=3), WINDOW, cadence).interval == timedelta(hours=1)
    assert next_run(START - timedelta(hours=20), WINDOW, cadence).interval == timedelta(
        minutes=15)  # not overridden: the setting
    assert cadence.overridden == ("interval_minutes", "race_day_interval_minutes")


def test_the_settings_change_the_cadence() -> None:
    settings = Settings(sync_schedule_race_day_hours=2, sync_schedule_race_day_interval_minutes=3)
    cadence = Cadence.of(settings)

    assert next_run(START - timedelta(hours=3), WINDOW, cadence).phase == Phase.NEAR_START
    assert next_run(START - timedelta(hours=1), WINDOW, cadence).interval == timedelta(minutes=3)


def test_a_stretched_interval_keeps_the_tightening_at_a_boundary() -> None:
    after = START - timedelta(hours=3)

    stretched = next_run(after, WINDOW, CADENCE, stretch=1.5)
    early = next_run(START - timedelta(hours=25), WINDOW, CADENCE, stretch=2.0)

    assert stretched.at - after == timedelta(minutes=3)
    assert (stretched.interval, stretched.planned) == (timedelta(minutes=2),
                                                       timedelta(minutes=3))
    assert early.at == START - timedelta(hours=24)


def test_the_stretch_fits_the_planned_requests_into_the_budget_share() -> None:
    # Six links at 3 requests a run every 2 minutes: 540 an hour; 80% of 500 is 400.
    demand = 6 * hourly_calls(3, timedelta(minutes=2))

    assert demand == pytest.approx(540)
    assert stretch_factor(demand, 500, 0.8) == pytest.approx(1.35)
    assert stretch_factor(100, 500, 0.8) == 1.0


@pytest.mark.parametrize("start", [datetime(9999, 12, 31, 20, tzinfo=UTC),
                                   datetime(1, 1, 1, 1, tzinfo=UTC)])
def test_an_event_at_the_calendars_edge_gets_a_plan_not_an_overflow(start: datetime) -> None:
    window = race_window(start_at=start, time_zone="Pacific/Kiritimati")
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)

    planned = next_run(now, window, CADENCE)

    assert planned.at > now
    assert planned.phase == (Phase.BASE if start.year > 1 else Phase.OVER)
