"""The sync schedule: the tick defers a due link's run once (a link with an active run
joins it; two ticks at once on two connections never both take a link), a run's end plans
the next one on the race-week cadence, a link's own intervals and auto-sync off through the
links API, and the request budget stretching Haku's cadence, said by the status API and the
pages. Every time is given (the tick's ``now``, the runs' clock): nothing waits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring, keyring_from_settings
from racehub.core.models import Role, Tenant
from racehub.db.session import lend
from racehub.events.models import Event
from racehub.jobs.models import JobRun
from racehub.providers.runsignup.simulator import RunSignUpSimulator
from racehub.settings import Settings
from racehub.sync import links, schedule, service
from racehub.sync.models import EventLink, ProviderConnection, SyncRun, SyncStatus
from racehub.sync.schedule_tick import defer_due_participants, tick
from racehub.sync.schemas import ConnectionCreate, LinkCreate, LinkUpdate
from tests.core.conftest import start_browser_session
from tests.factories import auth, make_event, make_tenant, make_user
from tests.sync.engine_helpers import Clock, attempt, connect, event_ref, simulator

T = datetime(2026, 9, 10, 12, 0, tzinfo=UTC)
NOWHERE = "http://127.0.0.1:9/Rest"  # never called: these runs are only requested


def _event(db: Session, tenant: Tenant, *, starts_in: timedelta) -> Event:
    return make_event(db, tenant, start_at=T + starts_in, timezone="America/Chicago")


def _link(db: Session, ctx: TenantContext, connection: ProviderConnection, event: Event,
          ref: str, *, now: datetime = T) -> EventLink:
    return links.create_link(db, ctx, event_id=event.id, now=now, data=LinkCreate(
        connection_id=connection.id, provider_event_ref=ref))


def _runs(db: Session, link: EventLink) -> list[SyncRun]:
    return list(db.scalars(select(SyncRun).where(SyncRun.link_id == link.id)
                           .order_by(SyncRun.created_at)))


def _haku(db: Session, ctx: TenantContext, keyring: Keyring) -> ProviderConnection:
    return service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="HAKU", name="Haku", credentials={"client_id": "client-1234567",
                                                   "client_secret": "secret-never-shown"}))


# --- the tick ----------------------------------------------------------------------------------


def test_a_due_link_is_deferred_once_and_a_link_whose_run_is_active_is_not_deferred_again(
    db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = connect(db, ctx, keyring, NOWHERE)
    event_link = _link(db, ctx, connection, _event(db, tenant, starts_in=timedelta(days=10)),
                       "1:2")
    off = _link(db, ctx, connection, _event(db, tenant, starts_in=timedelta(days=10)), "1:3")
    links.update_link(db, ctx, event_id=off.event_id, link_id=off.id,  # type: ignore[arg-type]
                      data=LinkUpdate(auto_sync=False), now=T)
    # Linked: first synced one interval later (the 4-hour cadence, the race 10 days away).
    due = T + timedelta(hours=4)
    assert event_link.next_run_at == due
    early = tick(lend(db), now=due - timedelta(minutes=1))

    handled = tick(lend(db), now=due)
    again = tick(lend(db), now=due + timedelta(seconds=30))  # a second tick, same minute

    [run] = _runs(db, event_link)
    assert (run.trigger, run.status, run.requested_by_label) == ("schedule", SyncStatus.QUEUED,
                                                                "schedule")
    job = db.get(JobRun, run.job_run_id)
    assert job is not None and job.priority == 0  # after manual runs
    assert db.scalar(text("SELECT count(*) FROM procrastinate_jobs WHERE id = :id"),
                     {"id": job.queue_job_id}) == 1
    assert early["participants"] == 0
    assert handled["participants"] == 1 and again["participants"] == 0
    assert _runs(db, off) == [] and off.next_run_at is None
    # Provisional, from the tick: the run's end plans it again.
    assert event_link.next_run_at == due + timedelta(hours=4)

    # Its time comes again while the run still waits for a worker: the link joins it.
    tick(lend(db), now=due + timedelta(hours=4))

    assert _runs(db, event_link) == [run]
    assert event_link.next_run_at == due + timedelta(hours=8)


def test_the_participant_schedule_never_takes_a_timing_link(
    db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    timer = service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="COPERNICO", name="Timer", credentials={"api_key": "copernico-key-1234"}))
    event = _event(db, tenant, starts_in=timedelta(days=10))
    timing = _link(db, ctx, timer, event, "R1:E1")
    timing.next_run_at = T  # due by the clock, but not a participant source
    db.flush()

    handled = tick(lend(db), now=T + timedelta(hours=1))

    assert handled["participants"] == 0 and _runs(db, timing) == []
    # Its own kind re-planned it: the first results pull at the event's start.
    assert handled["results_pull"] == 1 and timing.next_run_at == event.start_at


def test_moving_an_events_start_replans_its_links_at_once(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    now = datetime.now(UTC)  # the update re-plans on the real clock
    connection = connect(db, ctx, keyring, NOWHERE)
    event = make_event(db, tenant, start_at=now + timedelta(days=10), timezone="Europe/Paris")
    event_link = _link(db, ctx, connection, event, "1:2", now=now)
    assert event_link.next_run_at == now + timedelta(hours=4)  # the race is far off
    db.commit()

    moved = client.patch(f"/api/events/{event.id}", headers=auth(db, tenant, Role.EVENT_MANAGER),
                         json={"startAt": (now + timedelta(hours=12)).isoformat()})

    assert moved.status_code == 200, moved.text
    db.refresh(event_link)
    # Within 24 hours of the start: the 15-minute cadence, from when it was linked.
    assert event_link.next_run_at == now + timedelta(minutes=15)
    assert (event_link.schedule_plan or {})["interval_minutes"] == 15


def test_two_ticks_at_once_on_two_connections_defer_each_link_once(
    committed_db: sessionmaker[Session], database_url: str,
) -> None:
    keyring = keyring_from_settings(Settings(database_url=database_url))
    with committed_db() as db:
        tenant = make_tenant(db)
        ctx = TenantContext.system(tenant.id, label="test")
        connection = connect(db, ctx, keyring, NOWHERE)
        ids = [_link(db, ctx, connection, _event(db, tenant, starts_in=timedelta(days=3)),
                     f"1:{n}").id for n in range(3)]
        db.commit()

    first, second = committed_db(), committed_db()
    # Were the second to wait for the first's rows (no SKIP LOCKED), it would wait for ever
    # (the first commits after it): fail instead, naming the lock.
    second.execute(text("SET lock_timeout = '5s'"))
    try:
        due = T + timedelta(hours=4)
        taken_first = defer_due_participants(first, due)  # rows locked, not committed yet
        taken_meanwhile = defer_due_participants(second, due)  # skips them, waits for none
        second.commit()
        first.commit()
        taken_after = defer_due_participants(second, due)  # their next run has moved on
        second.commit()
    finally:
        first.close()
        second.close()

    assert (taken_first, taken_meanwhile, taken_after) == (3, 0, 0)
    with committed_db() as db:
        per_link = dict(db.execute(select(SyncRun.link_id, func.count())
                                   .group_by(SyncRun.link_id)).all())
        assert per_link == dict.fromkeys(ids, 1)
        assert db.scalar(text("SELECT count(*) FROM procrastinate_jobs")) == 3


def test_a_link_linked_without_a_plan_is_planned_and_run_by_the_tick(
    db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = connect(db, ctx, keyring, NOWHERE)
    event = _event(db, tenant, starts_in=timedelta(days=10))
    # Linked by another path (an older release, discovery) without a plan.
    row = EventLink(tenant_id=tenant.id, connection_id=connection.id,
                    provider=connection.provider, provider_event_ref="9:9", event_id=event.id,
                    linked_at=T, state={}, sync_settings={})
    db.add(row)
    db.flush()

    tick(lend(db), now=T + timedelta(hours=1))

    assert _runs(db, row) == [] and row.next_run_at == T + timedelta(hours=4)  # from linking

    tick(lend(db), now=T + timedelta(hours=5))  # overdue: run at once

    assert [r.trigger for r in _runs(db, row)] == ["schedule"]
    assert row.next_run_at == T + timedelta(hours=9)


# --- a run's end plans the next ------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[tuple[RunSignUpSimulator, str]]:
    with simulator(participants_per_event=5) as served:
        yield served


@pytest.mark.parametrize(("starts_in", "phase", "due_after_end"), [
    (timedelta(days=5), "base", timedelta(hours=4)),
    (timedelta(hours=23), "near_start", timedelta(minutes=15)),
    (timedelta(hours=3), "race_day", timedelta(minutes=2)),
])
def test_a_finished_run_plans_the_next_on_the_race_week_cadence(
    db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str], starts_in: timedelta, phase: str,
    due_after_end: timedelta,
) -> None:
    simulated, base = sim
    connection = connect(db, ctx, keyring, base)
    event_link = _link(db, ctx, connection, _event(db, tenant, starts_in=starts_in),
                       event_ref(simulated))
    due = event_link.next_run_at
    assert due is not None
    tick(lend(db), now=due)
    [run] = _runs(db, event_link)
    clock = Clock(now=due + timedelta(seconds=40))

    attempt(db, ctx, keyring, run, clock=clock)

    assert run.status == SyncStatus.SUCCEEDED and run.finished_at == clock.now
    assert event_link.next_run_at == clock.now + due_after_end
    assert event_link.schedule_plan is not None
    assert event_link.schedule_plan["phase"] == phase
    # Five registrations on one page, and a page of withdrawals: RunSignUp needs no token.
    assert event_link.schedule_plan["estimated_calls_per_run"] == 2


def test_a_run_that_failed_for_good_plans_the_next_too(
    db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
    sim: tuple[RunSignUpSimulator, str],
) -> None:
    simulated, base = sim
    connection = connect(db, ctx, keyring, base, credentials={"api_key": "wrong",
                                                             "api_secret": "wrong-too"})
    event_link = _link(db, ctx, connection, _event(db, tenant, starts_in=timedelta(days=5)),
                       event_ref(simulated))
    tick(lend(db), now=T + timedelta(hours=4))
    [run] = _runs(db, event_link)
    clock = Clock(now=T + timedelta(hours=4, minutes=1))

    with pytest.raises(Exception):  # noqa: B017 - the job fails as a worker would see it
        attempt(db, ctx, keyring, run, clock=clock)

    assert run.status == SyncStatus.FAILED and run.retryable is False
    assert event_link.next_run_at == clock.now + timedelta(hours=4)


# --- per-link settings through the links API -------------------------------------------------


def _finished_run(db: Session, event_link: EventLink, at: datetime) -> SyncRun:
    run = SyncRun(tenant_id=event_link.tenant_id, connection_id=event_link.connection_id,
                  provider=event_link.provider, link_id=event_link.id,
                  event_id=event_link.event_id, sync_type="participants", trigger="schedule",
                  status=SyncStatus.SUCCEEDED, finished_at=at)
    db.add(run)
    db.flush()
    return run


def test_a_links_own_interval_is_set_validated_and_shown_through_the_links_api(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    # The API plans with the real clock: every time here is relative to it.
    now = datetime.now(UTC).replace(microsecond=0)
    connection = connect(db, ctx, keyring, NOWHERE)
    event = make_event(db, tenant, start_at=now + timedelta(hours=2), timezone="Europe/Paris")
    event_link = _link(db, ctx, connection, event, "1:2", now=now)
    ended_at = now - timedelta(minutes=1)
    _finished_run(db, event_link, ended_at)
    db.commit()
    headers = auth(db, tenant, Role.EVENT_MANAGER)
    url = f"/api/events/{event.id}/links/{event_link.id}"

    patched = client.patch(url, headers=headers,
                           json={"syncSettings": {"raceDayIntervalMinutes": 5}})
    kept = client.patch(url, headers=headers, json={"syncSettings": {"intervalMinutes": 60}})
    refused = client.patch(url, headers=headers, json={"syncSettings": {"intervalMinutes": 0}})
    unknown = client.patch(url, headers=headers, json={"syncSettings": {"everyMinutes": 5}})

    assert patched.status_code == 200, patched.text
    body = kept.json()
    assert body["syncSettings"] == {"intervalMinutes": 60, "nearStartIntervalMinutes": None,
                                    "raceDayIntervalMinutes": 5,
                                    "resultsAutoApproveBelow": None}
    assert datetime.fromisoformat(body["nextRunAt"]) == ended_at + timedelta(minutes=5)
    assert body["schedule"]["phase"] == "race_day"
    assert body["schedule"]["intervalMinutes"] == 5
    assert "the link's own setting" in body["schedule"]["reason"]
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["syncSettings.intervalMinutes"]
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["syncSettings.everyMinutes"]

    cleared = client.patch(url, headers=headers, json={"syncSettings": None}).json()

    assert cleared["syncSettings"]["raceDayIntervalMinutes"] is None
    assert datetime.fromisoformat(cleared["nextRunAt"]) == ended_at + timedelta(minutes=2)


def test_auto_sync_off_clears_the_next_run_and_the_tick_leaves_the_link_alone(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = connect(db, ctx, keyring, NOWHERE)
    event = _event(db, tenant, starts_in=timedelta(hours=3))
    event_link = _link(db, ctx, connection, event, "1:2")
    db.commit()
    headers = auth(db, tenant, Role.EVENT_MANAGER)
    url = f"/api/events/{event.id}/links/{event_link.id}"

    off = client.patch(url, headers=headers, json={"autoSync": False}).json()
    db.refresh(event_link)
    tick(lend(db), now=T + timedelta(days=1))
    status = client.get(f"/api/sync/status/{connection.id}", headers=headers).json()

    assert (off["autoSync"], off["nextRunAt"], off["schedule"]) == (False, None, None)
    assert _runs(db, event_link) == []
    [shown] = status["links"]
    assert (shown["autoSync"], shown["nextRunAt"], shown["schedule"]) == (False, None, None)

    on = client.patch(url, headers=headers, json={"autoSync": True}).json()

    assert on["nextRunAt"] is not None and on["schedule"]["reason"]


# --- the request budget -----------------------------------------------------------------------


def test_hakus_budget_stretches_the_race_day_cadence_and_the_status_says_why(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = _haku(db, ctx, keyring)
    event = _event(db, tenant, starts_in=timedelta(hours=2))  # race day
    event_links = [_link(db, ctx, connection, event, str(100 + n)) for n in range(6)]

    # Linked one after another, each planned with the links there were: all due by then.
    now = max(link.next_run_at for link in event_links if link.next_run_at)
    tick(lend(db), now=now)
    status = client.get(f"/api/sync/status/{connection.id}",
                        headers=auth(db, tenant, Role.VIEWER))

    # Six links, each about 3 requests a run (a page of registrations, the same list for
    # withdrawals, a token) every 2 minutes: 540 an hour. Haku allows 500, schedules plan
    # with 80% of it (400): every interval x1.35, 2.7 minutes.
    assert {link.next_run_at for link in event_links} == {now + timedelta(minutes=2.7)}
    assert status.status_code == 200, status.text
    shown = status.json()["links"]
    assert len(shown) == 6
    plan = shown[0]["schedule"]
    assert shown[0]["autoSync"] is True
    assert datetime.fromisoformat(shown[0]["nextRunAt"]) == now + timedelta(minutes=2.7)
    assert plan["stretched"] is True and plan["stretch"] == pytest.approx(1.35)
    assert (plan["phase"], plan["intervalMinutes"], plan["budgetPerHour"]) == ("race_day", 2,
                                                                                500)
    assert plan["plannedIntervalMinutes"] == pytest.approx(2.7)
    assert plan["plannedCallsPerHour"] == pytest.approx(540)
    assert "stretched x1.35" in plan["reason"] and "Haku allows 500 an hour" in plan["reason"]
    assert "6 auto-synced link(s)" in plan["reason"]


def test_a_haku_run_costs_a_detail_call_per_registration_its_last_run_read(
    db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = _haku(db, ctx, keyring)
    event_link = _link(db, ctx, connection, _event(db, tenant, starts_in=timedelta(days=5)),
                       "100")
    event_link.cursor = T - timedelta(hours=1)  # the next run is incremental
    run = _finished_run(db, event_link, T)
    run.fetched, run.cursor_before = 40, T - timedelta(hours=5)
    full = _finished_run(db, event_link, T - timedelta(hours=4))
    full.fetched, full.full_refresh = 900, True  # an older full read does not count

    schedule.run_ended(db, run)

    plan: dict[str, Any] = event_link.schedule_plan or {}
    # One page of 100 per list (registrations, then withdrawals), a token, 40 details.
    assert plan["estimated_calls_per_run"] == 43
    # 43 requests every 4 hours fit easily.
    assert plan["stretched"] is False and event_link.next_run_at == T + timedelta(hours=4)


def test_a_connection_with_room_in_its_budget_is_not_stretched(
    db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = connect(db, ctx, keyring, NOWHERE)  # 1000 requests a second
    event = _event(db, tenant, starts_in=timedelta(hours=2))
    event_links = [_link(db, ctx, connection, event, f"1:{n}") for n in range(6)]

    assert {link.next_run_at for link in event_links} == {T + timedelta(minutes=2)}
    assert all((link.schedule_plan or {})["stretched"] is False for link in event_links)


def test_another_tenants_links_are_planned_and_run_with_their_own_tenant(
    db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    other = make_tenant(db)
    other_ctx = TenantContext.system(other.id, label="test")
    theirs = connect(db, other_ctx, keyring, NOWHERE)
    their_link = _link(db, other_ctx, theirs, _event(db, other, starts_in=timedelta(days=3)),
                       "1:2")

    tick(lend(db), now=T + timedelta(hours=4))

    [run] = _runs(db, their_link)
    job = db.get(JobRun, run.job_run_id)
    assert run.tenant_id == other.id and job is not None and job.tenant_id == other.id


def test_the_registry_lets_another_kind_spend_part_of_the_budget(
    db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[datetime] = []

    def defer_due(db: Session, now: datetime, limit: int) -> int:
        seen.append(now)
        return 0

    monkeypatch.setitem(schedule.SCHEDULED_KINDS, "discovery", schedule.ScheduledKind(
        name="discovery", defer_due=defer_due, hourly_calls=lambda db, c, at: 100.0))
    connection = _haku(db, ctx, keyring)
    event_link = _link(db, ctx, connection, _event(db, tenant, starts_in=timedelta(hours=2)),
                       "100")

    handled = tick(lend(db), now=T)

    assert seen == [T] and handled == {"participants": 0, "discovery": 0, "results_pull": 0}
    plan = event_link.schedule_plan or {}
    # 90 an hour for the link and 100 for discovery: within 400.
    assert plan["planned_calls_per_hour"] == pytest.approx(190) and not plan["stretched"]


# --- the pages ------------------------------------------------------------------------------


def test_the_pages_show_the_next_sync_and_why_hakus_cadence_was_stretched(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    connection = _haku(db, ctx, keyring)
    event = _event(db, tenant, starts_in=timedelta(hours=2))
    event_links = [_link(db, ctx, connection, event, str(100 + n)) for n in range(6)]
    links.update_link(db, ctx, event_id=event.id, link_id=event_links[0].id,
                      data=LinkUpdate(auto_sync=False), now=T)
    tick(lend(db), now=T + timedelta(minutes=3))  # all five planned with the same budget
    client.headers["X-CSRF-Token"] = start_browser_session(
        db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    db.commit()

    for url in (f"/connections/{connection.id}/sync", f"/events/{event.id}/sync",
                f"/events/{event.id}"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "Next sync" in page.text and "auto-sync off" in page.text
        # Five links on race day still need 450 requests an hour: more than 400.
        assert "stretched ×1.12" in page.text and "Haku allows 500 an hour" in page.text
