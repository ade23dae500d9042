"""When results are pulled by themselves (sync/results_schedule.py): every 30 minutes while
the event is live (a future event's link waits for its start), and once for several
Copernico webhook deliveries within a minute. Times are injected, never waited for."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.sync import results_schedule, webhooks
from racehub.sync.models import EventLink, SyncRun, SyncStatus
from tests.factories import make_event
from tests.sync import results_helpers as h

T0 = h.T0
RACE = "race-0001"


def _copernico_link(db: Session, ctx: TenantContext, keyring: Keyring, tenant: Any, *,
                    starts: Any, ref: str = f"{RACE}:event-1") -> EventLink:
    connection = h.connect(db, ctx, keyring, "COPERNICO", "http://127.0.0.1:9",
                           {"api_key": h.COPERNICO_KEY})
    return h.timing_link(db, connection, make_event(db, tenant, start_at=starts), ref)


def _pulls(db: Session, link: EventLink) -> list[SyncRun]:
    return list(db.scalars(select(SyncRun).where(SyncRun.link_id == link.id,
                                                 SyncRun.sync_type == "results_pull")
                           .order_by(SyncRun.created_at, SyncRun.id)))


def test_the_schedule_pulls_a_live_events_link_and_not_a_future_events(
        db: Session, ctx: TenantContext, keyring: Keyring, tenant: Any) -> None:
    live = _copernico_link(db, ctx, keyring, tenant, starts=T0 - timedelta(hours=1))
    future = _copernico_link(db, ctx, keyring, tenant, starts=T0 + timedelta(days=2),
                             ref="race-0002:event-1")
    over = _copernico_link(db, ctx, keyring, tenant, starts=T0 - timedelta(hours=13),
                           ref="race-0003:event-1")

    results_schedule.defer_due_pulls(db, T0)

    [run] = _pulls(db, live)
    assert run.trigger == "schedule" and run.status == SyncStatus.QUEUED
    assert live.next_run_at == T0 + timedelta(minutes=30)
    assert _pulls(db, future) == [] and future.next_run_at == T0 + timedelta(days=2)
    assert _pulls(db, over) == [] and over.next_run_at is None
    assert "on demand" in (over.schedule_plan or {})["reason"]

    # Ten minutes on, nothing is due; thirty minutes on, the active pull is joined.
    results_schedule.defer_due_pulls(db, T0 + timedelta(minutes=10))
    assert len(_pulls(db, live)) == 1
    results_schedule.defer_due_pulls(db, T0 + timedelta(minutes=30))
    assert len(_pulls(db, live)) == 1
    assert live.next_run_at == T0 + timedelta(minutes=60)


def test_several_webhook_deliveries_within_a_minute_make_one_pull(
        db: Session, ctx: TenantContext, keyring: Keyring, tenant: Any) -> None:
    # The event is long over: only the deliveries ask for pulls.
    link = _copernico_link(db, ctx, keyring, tenant, starts=T0 - timedelta(days=3))
    other = _copernico_link(db, ctx, keyring, tenant, starts=T0 - timedelta(days=3),
                            ref="race-other:event-1")
    results_schedule.defer_due_pulls(db, T0)  # plans them: nothing to pull
    assert link.next_run_at is None

    def deliver(seconds: float, competition: str | None = RACE) -> None:
        body = {"type": "detection", "participantId": "p-1", "apiKey": h.COPERNICO_KEY,
                **({"competitionId": competition} if competition else {})}
        webhooks.record_delivery(db, keyring=keyring, connection_id=link.connection_id,
                                 body=json.dumps(body).encode(),
                                 now=T0 + timedelta(seconds=seconds))

    for second in (0, 15, 40):
        deliver(second)
    deliver(45, competition=None)  # names no race: stored, pulls nothing
    assert link.next_run_at == T0

    results_schedule.defer_due_pulls(db, T0 + timedelta(seconds=60))

    [run] = _pulls(db, link)
    assert run.trigger == "webhook"
    assert _pulls(db, other) == []
    # Another delivery 10 s after that pull was asked for waits out the minute.
    deliver(70)
    assert link.next_run_at == T0 + timedelta(seconds=120)
    results_schedule.defer_due_pulls(db, T0 + timedelta(seconds=90))
    assert len(_pulls(db, link)) == 1
