"""The monitoring reads over crafted links and runs: what each figure counts, the 24 h and
48 h windows (an injected clock), and that another tenant's rows never count."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.exceptions import Forbidden
from racehub.core.models import AuditEntry, Tenant
from racehub.events import service as events_service
from racehub.events.models import ParticipantStatus
from racehub.events.schemas import ParticipantCreate
from racehub.monitoring import chart, service
from racehub.monitoring.schemas import HourBucket
from racehub.sync.models import SyncStatus
from tests.factories import (
    make_event,
    make_participant,
    make_synced_record,
    make_tenant,
    system_ctx,
)
from tests.monitoring.conftest import NOW, connection, link, run

H = timedelta(hours=1)


@pytest.fixture
def other(db: Session) -> Tenant:
    """Another tenant with a busy connection: none of it may show in ``tenant``'s figures."""
    tenant = make_tenant(db)
    conn = connection(db, tenant, "Theirs")
    theirs = link(db, conn, make_event(db, tenant), next_run_at=NOW + 2 * H / 60)
    for _ in range(4):
        run(db, theirs, SyncStatus.FAILED, ago=H)
    run(db, theirs, SyncStatus.SUCCEEDED, ago=H / 2)
    run(db, theirs, SyncStatus.RUNNING, ago=H / 6)
    return tenant


def test_sync_summary_counts_each_connections_links_runs_and_schedule(
    db: Session, tenant: Tenant, ctx: TenantContext, other: Tenant
) -> None:
    rsu = connection(db, tenant, "A RunSignUp")
    event, second = make_event(db, tenant), make_event(db, tenant)
    scheduled = link(db, rsu, event, next_run_at=NOW + 10 * H / 60,
                     last_success_at=NOW - 5 * H)
    manual = link(db, rsu, second, auto_sync=False, next_run_at=NOW + H / 60)
    link(db, rsu, None)  # a candidate, not linked: counts nowhere
    for ago in (2 * H, 3 * H, 23 * H):
        run(db, scheduled, SyncStatus.SUCCEEDED, ago=ago)
    run(db, manual, SyncStatus.FAILED, ago=4 * H)
    run(db, manual, SyncStatus.CANCELLED, ago=5 * H)
    run(db, scheduled, SyncStatus.FAILED, ago=25 * H)  # outside the 24 h
    run(db, scheduled, SyncStatus.RUNNING, ago=H / 6)
    run(db, manual, SyncStatus.RETRYING, ago=H / 3)
    timing = connection(db, tenant, "B ChronoTrack", provider="CHRONOTRACK")
    race = link(db, timing, event, "ev:race")
    run(db, race, SyncStatus.SUCCEEDED, ago=H, sync_type="start_list_push")
    run(db, race, SyncStatus.HELD, ago=H / 2, sync_type="results_pull")

    summary = service.sync_summary(db, ctx, now=NOW)

    assert summary.since == NOW - 24 * H
    a, b = summary.connections
    assert (a.name, a.linked_links, a.active_links) == ("A RunSignUp", 2, 1)
    # Requested in the window: 3 succeeded, 1 failed, 1 cancelled, 1 running, 1 retrying.
    assert (a.syncs_24h, a.succeeded_24h, a.failed_24h) == (7, 3, 1)
    assert a.success_rate == 0.75
    # The newest successful run ended a minute after it was requested, 2 h ago; newer
    # than the link's own record of its last success.
    assert a.last_success_at == NOW - 2 * H + timedelta(minutes=1)
    assert a.next_run_at == NOW + 10 * H / 60  # the auto-synced link's; not the manual one
    assert (a.running_now, a.queued_now, a.waiting_now) == (1, 1, 0)
    assert [(t.sync_type, t.runs, t.succeeded, t.failed) for t in a.by_sync_type] == [
        ("participants", 7, 3, 1)]
    assert (b.name, b.direction.value, b.linked_links) == ("B ChronoTrack", "scoring", 1)
    assert [(t.sync_type, t.runs, t.succeeded) for t in b.by_sync_type] == [
        ("results_pull", 1, 0), ("start_list_push", 1, 1)]
    assert b.success_rate == 1.0
    assert (b.running_now, b.waiting_now) == (0, 1)
    total = summary.total
    assert (total.linked_links, total.syncs_24h, total.succeeded_24h, total.failed_24h) == (
        3, 9, 4, 1)
    assert (total.running_now, total.queued_now, total.waiting_now) == (1, 1, 1)
    assert total.last_success_at == NOW - H + timedelta(minutes=1)
    assert summary.tenants is None


def test_a_connection_without_finished_runs_has_no_success_rate(
    db: Session, tenant: Tenant, ctx: TenantContext
) -> None:
    conn = connection(db, tenant)
    run(db, link(db, conn, make_event(db, tenant)), SyncStatus.QUEUED, ago=H)
    [row] = service.sync_summary(db, ctx, now=NOW).connections
    assert (row.syncs_24h, row.success_rate, row.last_success_at) == (1, None, None)
    assert row.queued_now == 1


def test_every_tenant_summary_is_for_platform_admins_and_audit_logged(
    db: Session, tenant: Tenant, ctx: TenantContext, other: Tenant
) -> None:
    mine = link(db, connection(db, tenant), make_event(db, tenant))
    run(db, mine, SyncStatus.SUCCEEDED, ago=H)
    with pytest.raises(Forbidden):
        service.sync_summary(db, ctx, now=NOW, all_tenants=True)

    platform = dataclasses.replace(ctx, is_platform_admin=True)
    summary = service.sync_summary(db, platform, now=NOW, all_tenants=True)

    assert summary.tenants is not None
    rows = {t.tenant_id: t for t in summary.tenants}
    assert (rows[tenant.id].connections, rows[tenant.id].syncs_24h,
            rows[tenant.id].succeeded_24h, rows[tenant.id].running_now) == (1, 1, 1, 0)
    theirs = rows[other.id]
    assert (theirs.tenant_name, theirs.connections, theirs.syncs_24h, theirs.failed_24h,
            theirs.succeeded_24h, theirs.running_now) == (other.name, 1, 6, 4, 1, 1)
    assert theirs.success_rate == 0.2
    assert theirs.next_run_at == NOW + 2 * H / 60
    # The tenant's own rows stay its own.
    assert [c.syncs_24h for c in summary.connections] == [1]
    [entry] = db.scalars(select(AuditEntry).where(
        AuditEntry.action == "platform.monitoring.all_tenants")).all()
    assert entry.tenant_id == tenant.id


def test_runs_per_hour_buckets_48_hours_by_outcome(
    db: Session, tenant: Tenant, ctx: TenantContext, other: Tenant
) -> None:
    conn, second = connection(db, tenant), connection(db, tenant)
    one = link(db, conn, make_event(db, tenant))
    two = link(db, second, make_event(db, tenant))
    run(db, one, SyncStatus.SUCCEEDED, ago=H / 2)  # 15:00, the current hour
    run(db, one, SyncStatus.FAILED, ago=H / 3)  # 15:10
    run(db, one, SyncStatus.RUNNING, ago=H / 6)  # 15:20, not finished
    run(db, one, SyncStatus.DISCARDED, ago=3 * H)  # 12:30
    run(db, two, SyncStatus.SUCCEEDED, ago=47 * H)  # 16:30 two days ago: the first hour
    run(db, two, SyncStatus.SUCCEEDED, ago=48 * H)  # 15:30 then: before the window

    buckets = service.runs_per_hour(db, ctx, now=NOW)

    assert len(buckets) == 48
    assert buckets[0].hour == datetime(2026, 12, 5, 16, tzinfo=UTC)
    assert buckets[-1].hour == datetime(2026, 12, 7, 15, tzinfo=UTC)
    by_hour = {b.hour.hour: b for b in buckets if b.succeeded + b.failed + b.other + b.active}
    assert sorted((b.hour.day, b.hour.hour) for b in buckets
                  if b.succeeded + b.failed + b.other + b.active) == [(5, 16), (7, 12), (7, 15)]
    now_hour = by_hour[15]
    assert (now_hour.succeeded, now_hour.failed, now_hour.other, now_hour.active) == (1, 1, 0, 1)
    assert by_hour[12].other == 1
    only_second = service.runs_per_hour(db, ctx, now=NOW, connection_id=second.id)
    assert sum(b.succeeded for b in only_second) == 1
    assert sum(b.failed + b.active for b in only_second) == 0


def test_the_chart_stacks_each_hours_outcomes_to_scale() -> None:
    hours = [datetime(2026, 12, 7, h, tzinfo=UTC) for h in range(3)]

    layout = chart.layout([
        HourBucket(hour=hours[0], succeeded=3, failed=2, other=0, active=0),
        HourBucket(hour=hours[1], succeeded=0, failed=0, other=0, active=0),
        HourBucket(hour=hours[2], succeeded=1, failed=0, other=1, active=4)])
    assert layout.y_max == 10 and layout.total == 11
    first, empty, last = layout.bars
    plot = layout.plot_bottom - layout.plot_top
    assert [(s.outcome, s.count, s.height) for s in first.segments] == [
        ("succeeded", 3, round(plot * 0.3, 2)), ("failed", 2, round(plot * 0.2, 2))]
    # Stacked: each segment sits on the one below it.
    assert first.segments[1].y + first.segments[1].height == pytest.approx(
        first.segments[0].y, abs=0.02)
    assert empty.segments == () and "no runs" in empty.title
    assert [s.outcome for s in last.segments] == ["succeeded", "other", "active"]
    assert first.tick == "00:00" and empty.tick is None
    assert "11 runs" in layout.summary and "2 failed" in layout.summary


def test_participant_tracking_counts_people_providers_and_each_events_drift(
    db: Session, tenant: Tenant, ctx: TenantContext, other: Tenant
) -> None:
    rsu = connection(db, tenant, "RSU")
    haku = connection(db, tenant, "Haku", provider="HAKU")
    spring = make_event(db, tenant, name="Spring", start_at=NOW - 30 * 24 * H)
    autumn = make_event(db, tenant, name="Autumn", start_at=NOW + 30 * 24 * H)
    make_event(db, tenant, name="Unlinked")  # no registration link: no drift row
    spring_rsu, spring_haku = link(db, rsu, spring, "s-1"), link(db, haku, spring, "h-1")
    autumn_rsu = link(db, rsu, autumn, "a-1")
    # Ada: RunSignUp in spring and autumn, Haku in spring (same person, two events).
    ada = make_participant(db, spring, first_name="Ada", last_name="Lovelace")
    make_synced_record(db, ada, provider="RUNSIGNUP", link_id=spring_rsu.id)
    ada_autumn = events_service.create_participant(
        db, system_ctx(tenant), event_id=autumn.id,
        data=ParticipantCreate(person_id=ada.person_id))
    make_synced_record(db, ada_autumn, provider="RUNSIGNUP", link_id=autumn_rsu.id)
    bob = make_participant(db, spring, first_name="Bob")
    make_synced_record(db, bob, provider="HAKU", link_id=spring_haku.id)
    # Cy was withdrawn in racehub while RunSignUp still lists him: racehub is one short.
    cy = make_participant(db, spring, first_name="Cy")
    make_synced_record(db, cy, provider="RUNSIGNUP", link_id=spring_rsu.id)
    cy.status = ParticipantStatus.WITHDRAWN
    # Dee withdrew at Haku: not counted on Haku's side (her entry is withdrawn too).
    dee = make_participant(db, spring, first_name="Dee")
    make_synced_record(db, dee, provider="HAKU", link_id=spring_haku.id, withdrawn_at=NOW)
    dee.status = ParticipantStatus.WITHDRAWN
    # Eve was entered by hand: racehub has one more than the providers.
    make_participant(db, autumn, first_name="Eve")
    db.flush()

    tracking = service.participant_tracking(db, ctx)

    assert tracking.unique_people == 5  # Ada, Bob, Cy, Dee, Eve
    assert tracking.entries == 6
    assert tracking.avg_events_per_person == 1.2
    assert [(p.providers, p.people) for p in tracking.providers_per_person] == [
        (0, 1), (1, 4)]
    assert tracking.avg_providers_per_person == 0.8
    assert [e.name for e in tracking.events] == ["Autumn", "Spring"]
    autumn_row, spring_row = tracking.events
    assert (autumn_row.racehub_count, autumn_row.provider_count, autumn_row.drift) == (2, 1, 1)
    assert (spring_row.racehub_count, spring_row.provider_count, spring_row.drift) == (2, 3, -1)
    by_link = {d.provider_event_id: d for d in spring_row.links}
    assert (by_link["s-1"].provider_count, by_link["s-1"].racehub_count,
            by_link["s-1"].drift) == (2, 1, -1)
    assert (by_link["h-1"].provider_count, by_link["h-1"].racehub_count,
            by_link["h-1"].drift) == (1, 1, 0)

    page, cursor = service.event_drift(db, ctx, limit=1)
    assert [e.name for e in page] == ["Autumn"] and cursor is not None
    rest, end = service.event_drift(db, ctx, cursor=cursor, limit=1)
    assert [e.name for e in rest] == ["Spring"] and end is None


def test_participant_tracking_of_a_tenant_without_entries_is_empty(
    db: Session, ctx: TenantContext, other: Tenant
) -> None:
    tracking = service.participant_tracking(db, ctx)
    assert (tracking.unique_people, tracking.entries, tracking.avg_events_per_person,
            tracking.providers_per_person, tracking.events) == (0, 0, None, [], [])


def test_a_connections_links_show_their_own_last_24_hours(
    db: Session, tenant: Tenant, ctx: TenantContext
) -> None:
    conn = connection(db, tenant)
    busy = link(db, conn, make_event(db, tenant, name="Busy"), next_run_at=NOW + H)
    calm = link(db, conn, make_event(db, tenant, name="Calm"), next_run_at=NOW + 2 * H)
    link(db, conn, None)
    run(db, busy, SyncStatus.SUCCEEDED, ago=H)
    run(db, busy, SyncStatus.FAILED, ago=2 * H)
    run(db, busy, SyncStatus.FAILED, ago=30 * H)
    run(db, busy, SyncStatus.AWAITING_REVIEW, ago=H / 2)

    rows = service.connection_links(db, ctx, connection_id=conn.id, now=NOW)

    assert [(r.event_name, r.runs, r.succeeded, r.failed, r.active_status) for r in rows] == [
        ("Busy", 3, 1, 1, "awaiting_review"), ("Calm", 0, 0, 0, None)]
    assert rows[1].link.id == calm.id
