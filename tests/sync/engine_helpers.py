"""A RunSignUp simulator over real HTTP, a connection to it, a link to a racehub event, and
running one attempt of a sync run in the test's transaction (the job's body, as a worker
runs it, with an injected clock)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.db.session import lend
from racehub.events.models import Event
from racehub.jobs.models import JobRun
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.jobs.runner import run_job
from racehub.providers.runsignup.simulator import DEMO_CREDENTIALS, RunSignUpSimulator, make_app
from racehub.providers.simulator import serve_in_thread
from racehub.sync import engine, runs, service
from racehub.sync.models import EventLink, ProviderConnection, SyncRun, SyncTrigger
from racehub.sync.schemas import ConnectionCreate

T0 = datetime(2026, 9, 10, 12, 0, tzinfo=UTC)
# Small pages, so a read has several; no waiting between the adapter's own retries.
FAST = {"results_per_page": 50, "rate_per_second": 1000, "rate_burst": 1000,
        "backoff_base": 0.001, "backoff_max": 0.01, "max_retry_after": 0.05,
        "read_timeout": 2.0}


@contextmanager
def simulator(**kwargs: Any) -> Iterator[tuple[RunSignUpSimulator, str]]:
    sim = RunSignUpSimulator(**{"races": 1, "events_per_race": 1,
                                "participants_per_event": 120, **kwargs})
    with ExitStack() as stack:
        yield sim, stack.enter_context(serve_in_thread(make_app(simulator=sim))) + "/Rest"


def event_ref(sim: RunSignUpSimulator) -> str:
    race = next(iter(sim.races.values()))
    return f"{race['race_id']}:{race['events'][0]['event_id']}"


def provider_event_id(sim: RunSignUpSimulator) -> int:
    return int(event_ref(sim).split(":")[1])


def connect(db: Session, ctx: TenantContext, keyring: Keyring, base_url: str, *,
            credentials: dict[str, str] | None = None, name: str = "RunSignUp",
            **settings: Any) -> ProviderConnection:
    """A RunSignUp connection to the simulator (a platform admin may point it there)."""
    connection = service.create_connection(
        db, replace(ctx, is_platform_admin=True), keyring=keyring,
        data=ConnectionCreate(provider="RUNSIGNUP", name=name, base_url=base_url,
                              credentials=credentials or dict(DEMO_CREDENTIALS)))
    connection.settings = {**connection.settings, **FAST, **settings}
    db.flush()
    return connection


def link(db: Session, connection: ProviderConnection, event: Event | None, ref: str,
         name: str | None = None) -> EventLink:
    row = EventLink(tenant_id=connection.tenant_id, connection_id=connection.id,
                    provider=connection.provider, provider_event_ref=ref,
                    provider_event_name=name, event_id=event.id if event else None,
                    linked_at=T0 if event else None, state={}, sync_settings={})
    db.add(row)
    db.flush()
    return row


def linked_tenant(db: Session, keyring: Keyring, sim: RunSignUpSimulator, base_url: str,
                  ) -> tuple[TenantContext, ProviderConnection, Event, EventLink]:
    """A new tenant with a connection to the simulator and an event linked to its first
    provider event, in ``db`` (the caller commits: for tests whose workers must see it)."""
    from tests.factories import make_event, make_tenant

    tenant = make_tenant(db)
    ctx = TenantContext.system(tenant.id, label="test")
    connection = connect(db, ctx, keyring, base_url)
    event = make_event(db, tenant)
    return ctx, connection, event, link(db, connection, event, event_ref(sim))


@dataclass
class Clock:
    now: datetime = T0
    calls: list[datetime] = field(default_factory=list)

    def __call__(self) -> datetime:
        self.calls.append(self.now)
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def job_of(db: Session, run: SyncRun) -> JobRun:
    job = db.get(JobRun, run.job_run_id)
    assert job is not None
    return job


def attempt(db: Session, ctx: TenantContext, keyring: Keyring, run: SyncRun, *,
            clock: Clock | None = None, **options: Any) -> SyncRun:
    """One attempt of ``run``: its job run by the job runner with the kind's retry policy,
    in the test's transaction. A failed attempt raises as it would in a worker (after
    committing what it recorded): RetryScheduled when it is to be retried."""
    clock = clock or Clock()
    body = partial(engine.run_participant_sync, keyring=keyring, clock=clock, **options)
    run_job(None, str(run.job_run_id), body, factory=lend(db),  # type: ignore[arg-type]
            retry=PROVIDER_OUTAGES, clock=clock)
    db.refresh(run)
    return run


def sync(db: Session, ctx: TenantContext, keyring: Keyring, connection: ProviderConnection,
         event_link: EventLink, *, full_refresh: bool = False, clock: Clock | None = None,
         trigger: SyncTrigger = SyncTrigger.MANUAL, **options: Any) -> SyncRun:
    """Request a run of the link and run its first attempt."""
    requested = runs.request_link_sync(db, ctx, connection=connection, link=event_link,
                                       full_refresh=full_refresh, trigger=trigger)
    assert not requested.joined
    return attempt(db, ctx, keyring, requested.run, clock=clock, **options)


# Tables holding synced data (not the run's own bookkeeping: runs, jobs, staging, audit).
DATA_TABLES = ("event_participants", "persons", "synced_records", "sync_changes",
               "sync_conflicts", "category_links")


def rows_written(db: Session) -> dict[str, int]:
    """Rows inserted, updated or deleted so far in this transaction, per data table."""
    db.flush()
    found = db.execute(text(
        "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables "
        "WHERE relname = ANY(:tables)"), {"tables": list(DATA_TABLES)}).all()
    return {name: int(count) for name, count in found}


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def runs_of(db: Session, event_link: EventLink) -> list[SyncRun]:
    return list(db.scalars(select(SyncRun).where(SyncRun.link_id == event_link.id)
                           .order_by(SyncRun.created_at, SyncRun.id)))
