"""Each alert rule raised by a crafted situation, told once, repeated only after its
interval, resolved with a notice, silenced by an acknowledgement."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.alerts.conftest import Evaluator, alerts_of, deliveries_of
from tests.factories import make_event, make_tenant, make_user
from tests.sync.engine_helpers import T0, Clock, attempt, connect, link, simulator, sync

from racehub.alerts import service
from racehub.alerts.models import AlertStatus, CredentialKey
from racehub.alerts.schemas import AlertSettingsUpdate, RuleSetting
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring, generate_key
from racehub.jobs.retry import RetryScheduled
from racehub.providers.errors import ProviderError
from racehub.providers.runsignup.simulator import RunSignUpSimulator
from racehub.settings import Settings
from racehub.sync import runs, schedule
from racehub.sync import service as sync_service
from racehub.sync.models import (
    ConnectionStatus,
    EventLink,
    ProviderConnection,
    SyncRun,
    SyncStatus,
)
from racehub.sync.schemas import ConnectionCreate, ConnectionUpdate

WEBHOOK = "http://127.0.0.1:9/hook"  # never called here: these tests look at the notices


def _notify_by_mail_and_webhook(db: Session, ctx: TenantContext, keyring: Keyring,
                                settings: Settings, **rules: RuleSetting) -> None:
    service.update_settings(db, ctx, keyring=keyring, settings=settings, data=AlertSettingsUpdate(
        email_recipients=["ops@example.test"], webhook_url=WEBHOOK, rules=rules or None))


def _race_refs(sim: RunSignUpSimulator) -> list[str]:
    race = next(iter(sim.races.values()))
    return [f"{race['race_id']}:{e['event_id']}" for e in race["events"]]


def _fail_once(db: Session, ctx: TenantContext, keyring: Keyring,
               connection: ProviderConnection, event_link: EventLink, clock: Clock) -> SyncRun:
    requested = runs.request_link_sync(db, ctx, connection=connection, link=event_link,
                                       trigger=runs.SyncTrigger.SCHEDULE)
    with pytest.raises(RetryScheduled):
        attempt(db, ctx, keyring, requested.run, clock=clock)
    return requested.run


def _until_done(db: Session, ctx: TenantContext, keyring: Keyring, run: SyncRun,
                clock: Clock) -> SyncRun:
    """Attempt ``run`` at each retry time until it ends (succeeds, or fails for good)."""
    for _ in range(6):
        assert run.next_attempt_at is not None
        clock.now = max(clock.now, run.next_attempt_at)
        try:
            attempt(db, ctx, keyring, run, clock=clock)
        except RetryScheduled:
            continue
        except ProviderError:
            pass
        if run.status in (SyncStatus.SUCCEEDED, SyncStatus.FAILED):
            return run
    raise AssertionError(f"the run did not end: {run.status}")


def test_sync_failures_fire_once_repeat_after_the_interval_and_resolve_with_a_notice(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator,
) -> None:
    with simulator(races=1, events_per_race=3, participants_per_event=5) as (sim, url):
        tenant = make_tenant(db)
        ctx = TenantContext.system(tenant.id, label="test")
        _notify_by_mail_and_webhook(db, ctx, keyring, settings)
        connection = connect(db, ctx, keyring, url)
        links = [link(db, connection, make_event(db, tenant), ref) for ref in _race_refs(sim)]
        sim.faults.arm("http_500", -1)  # the provider is down
        clock = Clock()
        failing = [_fail_once(db, ctx, keyring, connection, each, clock) for each in links[:2]]
        assert evaluate(T0 + timedelta(minutes=1)).fired == 0  # 2 < the threshold of 3
        failing.append(_fail_once(db, ctx, keyring, connection, links[2], clock))

        first = evaluate(T0 + timedelta(minutes=2))
        [alert] = alerts_of(db, "sync_failures")
        assert first.fired == 1 and alert.status == AlertStatus.FIRING
        assert alert.tenant_id == tenant.id and alert.subject_id == str(connection.id)
        assert alert.fingerprint == f"sync_failures:connection:{connection.id}"
        assert alert.evidence["failures"] == 3 and alert.evidence["retrying"] == 3
        assert set(alert.evidence["runIds"]) == {str(r.id) for r in failing}
        assert any("500" in e for e in alert.evidence["errors"])
        assert deliveries_of(db, alert) == [("email", "firing"), ("webhook", "firing")]

        # Still failing: told once, not every minute...
        for minutes in (3, 60, 24 * 60 + 1):
            assert evaluate(T0 + timedelta(minutes=minutes)).repeated == 0
        assert len(deliveries_of(db, alert)) == 2
        # ...again after the repeat interval (24 h from the first notice).
        assert evaluate(T0 + timedelta(minutes=2, hours=24)).repeated == 1
        assert deliveries_of(db, alert)[2:] == [("email", "repeat"), ("webhook", "repeat")]

        # The provider is back: the runs succeed at their retry, the alert resolves.
        sim.faults.clear()
        for run in failing:
            assert _until_done(db, ctx, keyring, run, clock).status == SyncStatus.SUCCEEDED
        resolved = evaluate(T0 + timedelta(hours=25))
        assert resolved.resolved == 1
        [alert] = alerts_of(db, "sync_failures")
        assert alert.status == AlertStatus.RESOLVED and alert.resolved_at is not None
        assert deliveries_of(db, alert)[4:] == [("email", "resolved"), ("webhook", "resolved")]
        # Resolved stays resolved: no notice more.
        assert evaluate(T0 + timedelta(hours=26)).deliveries == 0


def test_a_tenant_threshold_and_a_rule_turned_off_apply_to_that_tenant_only(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator,
) -> None:
    with simulator(races=1, events_per_race=1, participants_per_event=5) as (sim, url):
        strict, relaxed = make_tenant(db), make_tenant(db)
        found = {}
        for tenant, rule in ((strict, RuleSetting(params={"threshold": 1})),
                             (relaxed, RuleSetting(enabled=False))):
            ctx = TenantContext.system(tenant.id, label="test")
            _notify_by_mail_and_webhook(db, ctx, keyring, settings, sync_failures=rule)
            connection = connect(db, ctx, keyring, url)
            event_link = link(db, connection, make_event(db, tenant), _race_refs(sim)[0])
            sim.faults.arm("http_500", -1)
            _fail_once(db, ctx, keyring, connection, event_link, Clock())
            found[tenant.id] = connection.id
        evaluate(T0 + timedelta(minutes=1))
        [alert] = alerts_of(db, "sync_failures")
        assert alert.tenant_id == strict.id and alert.evidence["threshold"] == 1
        assert alert.subject_id == str(found[strict.id])


def test_a_stale_link_fires_after_twice_its_cadence_and_an_acknowledgement_silences_it(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator,
) -> None:
    with simulator(races=1, events_per_race=1, participants_per_event=5) as (sim, url):
        tenant = make_tenant(db)
        ctx = TenantContext.system(tenant.id, label="test")
        _notify_by_mail_and_webhook(db, ctx, keyring, settings)
        connection = connect(db, ctx, keyring, url)
        event_link = link(db, connection, make_event(db, tenant, start_at=T0 + timedelta(
            days=30)), _race_refs(sim)[0])
        clock = Clock()
        assert sync(db, ctx, keyring, connection, event_link, clock=clock).status == \
            SyncStatus.SUCCEEDED
        db.refresh(event_link)
        assert event_link.last_success_at == T0 and event_link.schedule_plan is not None
        cadence = timedelta(minutes=event_link.schedule_plan["planned_interval_minutes"])

        # Nothing succeeds after that (the clock only moves on).
        assert evaluate(T0 + 2 * cadence).fired == 0
        assert evaluate(T0 + 2 * cadence + timedelta(minutes=1)).fired == 1
        [alert] = alerts_of(db, "stale_link")
        assert alert.subject_id == str(event_link.id)
        assert alert.evidence["lastSuccessAt"] == T0.isoformat()
        assert alert.evidence["intervalMinutes"] == cadence.total_seconds() / 60
        assert deliveries_of(db, alert) == [("email", "firing"), ("webhook", "firing")]

        # Someone takes it: no repeat while it stays open, however long.
        member = make_user(db, tenant)
        person = replace(ctx, user_id=member.id, actor_label=member.email)
        read = service.acknowledge(db, person, alert_id=alert.id, comment="looking into it")
        assert read.acknowledged_by == member.email
        assert evaluate(T0 + 2 * cadence + timedelta(days=3)).repeated == 0
        assert len(deliveries_of(db, alert)) == 2
        assert service.open_count(db, ctx) == 0  # the badge counts what nobody took

        # A sync succeeds again: resolved, and that is still told.
        clock.now = T0 + 2 * cadence + timedelta(days=3, minutes=5)
        assert sync(db, ctx, keyring, connection, event_link, clock=clock).status == \
            SyncStatus.SUCCEEDED
        assert evaluate(clock.now + timedelta(minutes=1)).resolved == 1
        assert deliveries_of(db, alert)[2:] == [("email", "resolved"), ("webhook", "resolved")]


def test_a_permanent_failure_fires_until_a_later_run_succeeds(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator,
) -> None:
    with simulator(races=1, events_per_race=1, participants_per_event=5) as (sim, url):
        tenant = make_tenant(db)
        ctx = TenantContext.system(tenant.id, label="test")
        connection = connect(db, ctx, keyring, url)
        event_link = link(db, connection, make_event(db, tenant), _race_refs(sim)[0])
        sim.faults.arm("http_500", -1)
        clock = Clock()
        run = _until_done(db, ctx, keyring,
                          _fail_once(db, ctx, keyring, connection, event_link, clock), clock)
        assert run.status == SyncStatus.FAILED and run.retryable  # retries exhausted

        assert evaluate(clock.now + timedelta(minutes=1)).fired == 1
        [alert] = alerts_of(db, "permanent_failure")
        assert alert.fingerprint == f"permanent_failure:link:{event_link.id}:participants"
        assert alert.evidence["runId"] == str(run.id)
        assert alert.evidence["attempts"] == run.attempts and run.attempts > 1
        assert "retries exhausted" in alert.summary
        assert alert.subject_url == f"/sync/runs/{run.id}"

        sim.faults.clear()
        clock.advance(minutes=5)
        assert sync(db, ctx, keyring, connection, event_link, clock=clock).status == \
            SyncStatus.SUCCEEDED
        assert evaluate(clock.now + timedelta(minutes=1)).resolved == 1
        assert alerts_of(db, "permanent_failure")[0].status == AlertStatus.RESOLVED


def test_refused_credentials_fire_and_resolve_when_new_ones_are_accepted(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator,
) -> None:
    with simulator(races=1, events_per_race=1, participants_per_event=5) as (sim, url):
        tenant = make_tenant(db)
        ctx = TenantContext.system(tenant.id, label="test")
        connection = connect(db, ctx, keyring, url, credentials={
            "api_key": "wrong-key-12345", "api_secret": "wrong-secret-12345"})
        check = sync_service.check_connection(db, ctx, keyring=keyring,
                                              connection_id=connection.id)
        assert not check.ok and connection.status == ConnectionStatus.FAILED
        assert evaluate(T0).fired == 1
        [alert] = alerts_of(db, "credentials_refused")
        assert alert.evidence["message"] == connection.last_check_message
        assert "RUNSIGNUP refused the credentials" in alert.summary

        from racehub.providers.runsignup.simulator import DEMO_CREDENTIALS
        sync_service.update_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                                       data=ConnectionUpdate(credentials=DEMO_CREDENTIALS))
        assert sync_service.check_connection(db, ctx, keyring=keyring,
                                             connection_id=connection.id).ok
        assert evaluate(T0 + timedelta(minutes=1)).resolved == 1


def test_an_exhausted_request_budget_fires_only_after_its_minutes(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator,
) -> None:
    tenant = make_tenant(db)
    ctx = TenantContext.system(tenant.id, label="test")
    _notify_by_mail_and_webhook(db, ctx, keyring, settings)
    connection = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest",
                         rate_per_second=0.00001)  # about one request a day
    event_link = link(db, connection, make_event(db, tenant, start_at=T0 + timedelta(days=3)),
                      "1:1")
    schedule.plan_link(db, event_link, after=T0, now=T0)
    assert event_link.schedule_plan is not None and event_link.schedule_plan["stretched"]

    assert evaluate(T0).pending == 1
    [alert] = alerts_of(db, "budget_exhausted")
    assert alert.status == AlertStatus.PENDING and deliveries_of(db, alert) == []
    assert evaluate(T0 + timedelta(minutes=29)).fired == 0
    assert evaluate(T0 + timedelta(minutes=30)).fired == 1
    [alert] = alerts_of(db, "budget_exhausted")
    assert alert.status == AlertStatus.FIRING and alert.active_since == T0
    assert alert.evidence["stretchedLinks"] == 1 and alert.evidence["stretch"] > 1
    assert deliveries_of(db, alert) == [("email", "firing"), ("webhook", "firing")]

    # The budget raised: nothing stretched any more, resolved.
    connection.settings = {**connection.settings, "rate_per_second": 1000}
    schedule.plan_link(db, event_link, after=T0, now=T0 + timedelta(minutes=40))
    assert not event_link.schedule_plan["stretched"]
    assert evaluate(T0 + timedelta(minutes=41)).resolved == 1


def test_a_condition_that_clears_while_pending_never_fires(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator,
) -> None:
    tenant = make_tenant(db)
    ctx = TenantContext.system(tenant.id, label="test")
    connection = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest", rate_per_second=0.00001)
    event_link = link(db, connection, make_event(db, tenant, start_at=T0 + timedelta(days=3)),
                      "1:1")
    schedule.plan_link(db, event_link, after=T0, now=T0)
    assert evaluate(T0).pending == 1
    event_link.auto_sync = False
    report = evaluate(T0 + timedelta(minutes=10))
    assert report.resolved == 0 and alerts_of(db, "budget_exhausted") == []


def test_results_not_pulled_for_a_live_event_fire_after_twice_the_results_cadence(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator,
) -> None:
    tenant = make_tenant(db)
    ctx = TenantContext.system(tenant.id, label="test")
    timing = sync_service.create_connection(
        db, replace(ctx, is_platform_admin=True), keyring=keyring, data=ConnectionCreate(
            provider="COPERNICO", name="Copernico", base_url="http://127.0.0.1:9",
            credentials={}))
    event = make_event(db, tenant, start_at=T0)
    timing_link = link(db, timing, event, "race-1:event-1")
    cadence = settings.sync_results_pull_interval_minutes  # 30

    assert evaluate(T0 - timedelta(minutes=5)).fired == 0  # not live yet
    assert evaluate(T0 + timedelta(minutes=2 * cadence)).fired == 0
    assert evaluate(T0 + timedelta(minutes=2 * cadence + 1)).fired == 1
    [alert] = alerts_of(db, "results_stale")
    assert alert.subject_id == str(timing_link.id) and alert.evidence["lastPulledAt"] is None
    assert "never pulled since it started" in alert.summary

    # A pull succeeds: resolved.
    pulled_at = T0 + timedelta(minutes=2 * cadence + 5)
    db.add(SyncRun(tenant_id=tenant.id, connection_id=timing.id, provider="COPERNICO",
                   link_id=timing_link.id, event_id=event.id, sync_type="results_pull",
                   trigger="schedule", status=SyncStatus.SUCCEEDED, started_at=pulled_at,
                   finished_at=pulled_at))
    db.flush()
    assert evaluate(pulled_at + timedelta(minutes=1)).resolved == 1
    # After the live window nothing is expected any more.
    live_end = T0 + timedelta(hours=settings.timing_live_hours)
    assert evaluate(live_end + timedelta(minutes=1)).fired == 0


def test_an_old_key_alerts_platform_admins_only_and_resolves_after_a_rotation(
    db: Session, settings: Settings, evaluate: Evaluator,
) -> None:
    old = Keyring([generate_key().encode()])
    db.add(CredentialKey(key_id=old.primary_id, first_seen_at=T0 - timedelta(days=91)))
    admin = make_user(db, platform_admin=True, email="root@example.test")
    tenant = make_tenant(db)
    make_user(db, tenant)
    db.flush()
    at_90 = service.evaluate(db, now=T0 - timedelta(days=1), settings=settings, keyring=old)
    assert at_90 is not None and at_90.fired == 0
    report = service.evaluate(db, now=T0, settings=settings, keyring=old)
    assert report is not None and report.fired == 1
    [alert] = alerts_of(db, "key_age")
    assert alert.tenant_id is None and alert.evidence["ageDays"] == 91
    assert deliveries_of(db, alert) == [("email", "firing")]  # to the platform admins
    [delivery] = alert_deliveries(db, alert)
    assert delivery.payload["recipients"] == [admin.email]

    member_ctx = TenantContext.system(tenant.id, label="test")
    assert service.list_alerts(db, member_ctx, open_=True)[0] == []
    admin_ctx = replace(member_ctx, is_platform_admin=True)
    assert [a.id for a in service.list_alerts(db, admin_ctx, open_=True)[0]] == [alert.id]

    # Rotated: the new key is first seen now; the old one stays recorded.
    rotated = old.with_new_primary(generate_key().encode())
    later = service.evaluate(db, now=T0 + timedelta(minutes=1), settings=settings,
                             keyring=rotated)
    assert later is not None and later.resolved == 1
    seen = dict(db.execute(select(CredentialKey.key_id, CredentialKey.first_seen_at)).all())
    assert seen[rotated.primary_id] == T0 + timedelta(minutes=1)
    assert seen[old.primary_id] == T0 - timedelta(days=91)


def alert_deliveries(db: Session, alert):  # type: ignore[no-untyped-def]
    from racehub.alerts.models import AlertDelivery

    return list(db.scalars(select(AlertDelivery).where(AlertDelivery.alert_id == alert.id)))


def test_a_resolved_alert_that_comes_back_is_a_new_alert_told_again(
    db: Session, settings: Settings, keyring: Keyring, evaluate: Evaluator,
) -> None:
    tenant = make_tenant(db)
    ctx = TenantContext.system(tenant.id, label="test")
    _notify_by_mail_and_webhook(db, ctx, keyring, settings)
    connection = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest")
    connection.status = ConnectionStatus.FAILED
    evaluate(T0)
    connection.status = ConnectionStatus.OK
    evaluate(T0 + timedelta(minutes=1))
    connection.status = ConnectionStatus.FAILED
    assert evaluate(T0 + timedelta(minutes=2)).fired == 1
    first, second = alerts_of(db, "credentials_refused")
    assert first.status == AlertStatus.RESOLVED and second.status == AlertStatus.FIRING
    assert first.fingerprint == second.fingerprint
    assert deliveries_of(db, second) == [("email", "firing"), ("webhook", "firing")]
