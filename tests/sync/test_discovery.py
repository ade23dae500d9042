"""Event discovery against the simulators over real HTTP: a connection's provider events
become candidates (not chosen, not linked) with their start, time zone as given, location
and race; a second discovery changes nothing; a provider event gone from a complete listing
is marked, never deleted, and none is marked after an incomplete one; a discovery is a job
(joined while one waits, deferred daily by the schedule's function)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.exceptions import Invalid
from racehub.db.session import lend
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.retry import PROVIDER_OUTAGES, RetryScheduled
from racehub.jobs.runner import run_job
from racehub.providers.raceroster.simulator import DEMO_CREDENTIALS as ROSTER_CREDENTIALS
from racehub.providers.raceroster.simulator import RaceRosterSimulator
from racehub.providers.raceroster.simulator import make_app as roster_app
from racehub.providers.simulator import serve_in_thread
from racehub.sync import discovery, service
from racehub.sync.models import EventLink, ProviderConnection, SyncTrigger
from racehub.sync.schemas import ConnectionCreate, ConnectionUpdate
from tests.sync.engine_helpers import T0, Clock, connect, simulator

FAST = {"rate_per_second": 1000, "rate_burst": 1000, "backoff_base": 0.001,
        "backoff_max": 0.01, "max_retry_after": 0.05, "read_timeout": 2.0}


def rows_of(db: Session, connection: ProviderConnection) -> dict[str, EventLink]:
    db.expire_all()
    return {row.provider_event_ref: row for row in db.scalars(
        select(EventLink).where(EventLink.connection_id == connection.id))}


def discover(db: Session, ctx: TenantContext, keyring: Keyring, connection: ProviderConnection,
             clock: Clock | None = None) -> discovery.DiscoveryReport:
    return discovery.discover_events(db, ctx, connection_id=connection.id, keyring=keyring,
                                     clock=clock or Clock())


@contextmanager
def roster(**kwargs: Any) -> Iterator[tuple[RaceRosterSimulator, str]]:
    sim = RaceRosterSimulator(**{"events": 2, "sub_events_per_event": 2,
                                 "participants_per_event": 4, **kwargs})
    with serve_in_thread(roster_app(simulator=sim)) as server:
        yield sim, server + "/api/v1"


def roster_connection(db: Session, ctx: TenantContext, keyring: Keyring,
                      base_url: str) -> ProviderConnection:
    connection = service.create_connection(
        db, replace(ctx, is_platform_admin=True), keyring=keyring,
        data=ConnectionCreate(provider="RACE_ROSTER", name="Race Roster", base_url=base_url,
                              credentials=dict(ROSTER_CREDENTIALS)))
    connection.settings = {**connection.settings, **FAST}
    db.flush()
    return connection


# --- RunSignUp ------------------------------------------------------------------------------


def test_runsignup_events_become_candidates_and_a_second_discovery_changes_nothing(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    # Real shapes: the first race's /races row lacks its events, the second race gives no
    # time zone (and the connection has no time_zone setting).
    with simulator(races=2, events_per_race=2, participants_per_event=3,
                   real_shapes=True) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        first = discover(db, ctx, keyring, connection)
        rows = rows_of(db, connection)
        check_first_discovery(sim, connection, first, rows)
        before = {ref: (r.id, r.provider_event_name, r.provider_start_at, r.provider_details,
                        r.discovered_at) for ref, r in rows.items()}
        second = discover(db, ctx, keyring, connection, Clock(T0 + timedelta(hours=1)))

    assert second.counts() == {"listed": 4, "new": 0, "changed": 0, "returned": 0,
                               "gone": 0, "problems": 0}
    again = rows_of(db, connection)
    assert {ref: (r.id, r.provider_event_name, r.provider_start_at, r.provider_details,
                  r.discovered_at) for ref, r in again.items()} == before
    assert {r.last_seen_at for r in again.values()} == {T0 + timedelta(hours=1)}


def check_first_discovery(sim: Any, connection: ProviderConnection,
                          first: discovery.DiscoveryReport, rows: dict[str, EventLink]) -> None:
    boston, denver = sorted(sim.races)
    assert first.counts() == {"listed": 4, "new": 4, "changed": 0, "returned": 0,
                              "gone": 0, "problems": 0}
    assert sorted(rows) == [f"{boston}:660000", f"{boston}:660001", f"{denver}:660100",
                            f"{denver}:660101"]
    five_k = rows[f"{boston}:660000"]
    assert five_k.provider_event_name == "Boston City Run 2026 · 5K"
    assert not five_k.chosen and five_k.event_id is None
    assert five_k.discovered_at == five_k.last_seen_at == T0 and five_k.gone_at is None
    assert five_k.provider_time_zone == "America/New_York"
    # 7:30 in Boston on the race day (EDT, UTC-4).
    assert five_k.provider_start_at == datetime(2026, 10, 1, 11, 30, tzinfo=UTC)
    assert five_k.provider_details["time_zone_source"] == "provider"
    assert five_k.provider_details["parent_ref"] == str(boston)
    assert five_k.provider_details["parent_name"] == "Boston City Run 2026"
    assert (five_k.provider_details["city"], five_k.provider_details["country"]) == (
        "Boston", "US")
    # No zone given: neither a zone nor a start is made up.
    unzoned = rows[f"{denver}:660100"]
    assert unzoned.provider_time_zone is None and unzoned.provider_start_at is None
    assert unzoned.provider_details["time_zone_source"] is None
    # The candidates are not the connection's chosen events (the adapters' eventIds).
    assert service.chosen_events(connection) == []


def test_the_connection_time_zone_setting_is_said_to_be_the_settings_not_the_providers(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with simulator(races=2, events_per_race=1, participants_per_event=3,
                   real_shapes=True) as (sim, url):
        connection = connect(db, ctx, keyring, url, time_zone="America/Denver")
        discover(db, ctx, keyring, connection)
    denver = max(sim.races)
    row = rows_of(db, connection)[f"{denver}:660100"]
    assert row.provider_time_zone == "America/Denver"
    assert row.provider_details["time_zone_source"] == "setting"
    assert row.provider_start_at is not None


def test_an_event_gone_from_the_listing_is_marked_and_unmarked_when_it_is_back(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with simulator(races=1, events_per_race=2, participants_per_event=3) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        discover(db, ctx, keyring, connection)
        race = next(iter(sim.races.values()))
        with sim.lock:
            dropped = race["events"].pop()
        gone = discover(db, ctx, keyring, connection, Clock(T0 + timedelta(days=1)))
        ref = f"{race['race_id']}:{dropped['event_id']}"
        marked = rows_of(db, connection)[ref]
        assert (marked.gone_at, marked.last_seen_at) == (T0 + timedelta(days=1), T0)
        with sim.lock:
            race["events"].append(dropped)
        back = discover(db, ctx, keyring, connection, Clock(T0 + timedelta(days=2)))

    assert gone.gone == 1 and gone.listed == 1
    assert back.returned == 1 and back.gone == 0
    assert rows_of(db, connection)[ref].gone_at is None


def test_an_incomplete_listing_marks_no_event_gone(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with simulator(races=2, events_per_race=1, participants_per_event=3) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        discover(db, ctx, keyring, connection)
        first, second = (sim.races[k] for k in sorted(sim.races))
        with sim.lock:
            first["events"][0]["event_id"] = None  # the whole race cannot be read
        report = discover(db, ctx, keyring, connection, Clock(T0 + timedelta(days=1)))

    assert report.listed == 1 and report.gone == 0 and not report.complete
    assert "could not be read, so no event was marked gone" in report.message()
    [problem] = report.problems
    assert problem.ref == str(first["race_id"]) and problem.field is not None
    assert all(row.gone_at is None for row in rows_of(db, connection).values())


def test_a_chosen_candidate_left_out_of_eventids_stays_a_candidate(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with simulator(races=1, events_per_race=2, participants_per_event=3) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        discover(db, ctx, keyring, connection)
    refs = sorted(rows_of(db, connection))
    service.update_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                              data=ConnectionUpdate(event_ids=[refs[0], "999:1"]))
    assert service.chosen_events(connection) == [refs[0], "999:1"]
    service.update_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                              data=ConnectionUpdate(event_ids=[]))
    rows = rows_of(db, connection)
    # The discovered one is a candidate again; the one only typed in is gone.
    assert sorted(rows) == refs and not rows[refs[0]].chosen
    assert service.chosen_events(connection) == []


def test_a_named_provider_event_keeps_the_operators_name(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with simulator(races=1, events_per_race=1, participants_per_event=3) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        discover(db, ctx, keyring, connection)
        [row] = rows_of(db, connection).values()
        row.provider_event_name = "Our 5K"
        db.flush()
        discover(db, ctx, keyring, connection, Clock(T0 + timedelta(days=1)))
    assert rows_of(db, connection)[row.provider_event_ref].provider_event_name == "Our 5K"


# --- another provider ----------------------------------------------------------------------


def test_race_roster_sub_events_become_candidates_of_their_event(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with roster() as (sim, url):
        connection = roster_connection(db, ctx, keyring, url)
        report = discover(db, ctx, keyring, connection)
        again = discover(db, ctx, keyring, connection, Clock(T0 + timedelta(hours=2)))
    rows = rows_of(db, connection)
    event_id = min(sim.events)
    event = sim.events[event_id]
    subs = event["subEvents"]["data"]
    assert report.listed == 4 and report.new == 4 and again.new == again.changed == 0
    row = rows[f"{event_id}:{subs[0]['subEventId']}"]
    assert row.provider_event_name == f"{event['name']} · {subs[0]['name']}"
    assert row.provider_time_zone == event["timeZone"]
    assert row.provider_details["parent_ref"] == str(event_id)
    assert row.provider_details["distance"] == subs[0]["subEventDistance"]["label"]
    assert row.provider_start_at is not None and not row.chosen


def test_a_connection_whose_provider_lists_no_events_is_not_discovered(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    # Copernico lists no races: a timing link to it is made by its 'raceId:eventId'.
    connection = service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="COPERNICO", name="Timer", credentials={"api_key": "copernico-key-1234"}))
    with pytest.raises(Invalid, match="Copernico \\(Timingsense\\) does not list its events"):
        discovery.request_discovery(db, ctx, connection_id=connection.id)
    # ChronoTrack does: its event:race list is what a timing link is chosen from.
    timer = service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="CHRONOTRACK", name="CT", credentials={
            "client_id": "c", "user_id": "u", "user_pass": "p"}))
    assert discovery.request_discovery(db, ctx, connection_id=timer.id).job is not None


# --- the job ---------------------------------------------------------------------------------


def run(db: Session, keyring: Keyring, job: JobRun, clock: Clock | None = None) -> JobRun:
    body = partial(discovery.run_discovery, keyring=keyring, clock=clock or Clock())
    run_job(None, str(job.id), body, factory=lend(db),  # type: ignore[arg-type]
            retry=PROVIDER_OUTAGES, clock=clock or Clock())
    db.refresh(job)
    return job


def test_a_discovery_is_a_job_joined_while_it_waits(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with simulator(races=1, events_per_race=2, participants_per_event=3) as (sim, url):
        connection = connect(db, ctx, keyring, url)
        asked = discovery.request_discovery(db, ctx, connection_id=connection.id)
        joined = discovery.request_discovery(db, ctx, connection_id=connection.id)
        assert not asked.joined and joined.joined and joined.job.id == asked.job.id
        job = run(db, keyring, asked.job)

    assert job.status == JobStatus.COMPLETED, job.message
    assert job.counts["new"] == 2 and job.subject_id == connection.id
    assert job.message.startswith("2 provider event(s) listed: 2 new")
    db.refresh(connection)
    assert connection.events_discovered_at == T0
    assert discovery.last_discovery(db, ctx, connection_id=connection.id).id == job.id
    # Done: the next request makes a new job.
    assert not discovery.request_discovery(db, ctx, connection_id=connection.id).joined


def test_a_provider_outage_is_retried_and_writes_nothing(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with simulator(races=1, events_per_race=1, participants_per_event=3) as (sim, url):
        connection = connect(db, ctx, keyring, url, max_attempts=1)
        sim.faults.arm("http_500", -1)
        job = discovery.request_discovery(db, ctx, connection_id=connection.id).job
        with pytest.raises(RetryScheduled):
            run(db, keyring, job)
    db.refresh(job)
    assert job.status == JobStatus.QUEUED and job.retries == 1 and job.retry_at is not None
    assert rows_of(db, connection) == {}


def test_the_schedule_defers_one_discovery_a_day_per_connection(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with simulator(races=1, events_per_race=1, participants_per_event=3) as (sim, url):
        connection = connect(db, ctx, keyring, url)
    service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="COPERNICO", name="Timer", credentials={"api_key": "copernico-key-1234"}))
    now = datetime.now(UTC)

    [job] = discovery.defer_due_discoveries(db, now=now)
    assert job.subject_id == connection.id and job.requested_by_label == "schedule"
    assert job.priority == discovery.PRIORITY_OF[SyncTrigger.SCHEDULE]
    # Asked for today: not due again until a day has passed.
    assert discovery.defer_due_discoveries(db, now=now + timedelta(hours=23)) == []
    job.status = JobStatus.COMPLETED
    db.flush()
    [next_day] = discovery.defer_due_discoveries(db, now=now + timedelta(days=1, minutes=1))
    assert next_day.id != job.id


def test_another_tenants_connection_is_not_found(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    from racehub.sync.exceptions import ConnectionNotFound
    from tests.factories import make_tenant, system_ctx

    with simulator(races=1, events_per_race=1, participants_per_event=3) as (sim, url):
        connection = connect(db, ctx, keyring, url)
    other = system_ctx(make_tenant(db))
    with pytest.raises(ConnectionNotFound):
        discovery.request_discovery(db, other, connection_id=connection.id)
    assert uuid.UUID(str(connection.id))


def test_the_minute_tick_defers_the_daily_discovery_once(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    from racehub.db.session import lend
    from racehub.sync.schedule_tick import tick

    with simulator(races=1, events_per_race=1, participants_per_event=3) as (sim, url):
        connection = connect(db, ctx, keyring, url)
    now = datetime.now(UTC)

    first = tick(lend(db), now=now)
    second = tick(lend(db), now=now + timedelta(minutes=1))

    assert first["discovery"] == 1 and second["discovery"] == 0
    [job] = db.scalars(select(JobRun).where(
        JobRun.kind == discovery.DISCOVER_EVENTS_KIND,
        JobRun.subject_id == connection.id)).all()
    assert job.requested_by_label == "schedule"
