"""Timing links for results pulls: the ChronoTrack and Copernico simulators over HTTP, a
connection to each, an event whose participants the timing system knows by racehub's
external id (as if a start list had been pushed), the link, and one attempt of a pull run
by the job runner in the test's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.db.session import lend
from racehub.events.models import Event, EventParticipant, TimingIdentifier
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.jobs.runner import run_job
from racehub.providers.chronotrack import simulator as ct_sim
from racehub.providers.copernico import simulator as cop_sim
from racehub.providers.simulator import serve_in_thread
from racehub.sync import links, results_pull, service
from racehub.sync.models import (
    ChangeAction,
    EventLink,
    ProviderConnection,
    SyncChange,
    SyncRun,
    SyncTrigger,
)
from racehub.sync.schemas import ConnectionCreate, LinkCreate
from racehub.timing.models import Result
from tests.factories import make_participant
from tests.sync.engine_helpers import FAST, Clock

T0 = datetime(2026, 9, 10, 12, 0, tzinfo=UTC)
COPERNICO_KEY = "cop-pull-key-Zr81Lq0"


@contextmanager
def chronotrack(**kwargs: Any) -> Iterator[tuple[ct_sim.ChronoTrackSimulator, str]]:
    sim = ct_sim.ChronoTrackSimulator(**{"events": 1, "races_per_event": 1,
                                         "entries_per_race": 12, "results_per_race": 8,
                                         **kwargs})
    with ExitStack() as stack:
        yield sim, stack.enter_context(serve_in_thread(ct_sim.make_app(simulator=sim))) + \
            ct_sim.BASE_PATH


@contextmanager
def copernico(**kwargs: Any) -> Iterator[tuple[cop_sim.CopernicoSimulator, str]]:
    sim = cop_sim.CopernicoSimulator(**{"races": 1, "registrations_per_event": 10,
                                        "finishers_per_event": 6, "real_shapes": True,
                                        "api_key": COPERNICO_KEY, **kwargs})
    with ExitStack() as stack:
        yield sim, stack.enter_context(serve_in_thread(cop_sim.make_app(simulator=sim)))


def connect(db: Session, ctx: TenantContext, keyring: Keyring, provider: str, base_url: str,
            credentials: dict[str, str], **settings: Any) -> ProviderConnection:
    """A timing connection to a simulator (a platform admin may point it there)."""
    connection = service.create_connection(
        db, replace(ctx, is_platform_admin=True), keyring=keyring,
        data=ConnectionCreate(provider=provider, name=f"{provider} timing {uuid.uuid4().hex[:6]}",
                              base_url=base_url, credentials=credentials))
    fast = {k: v for k, v in FAST.items() if k != "results_per_page"}  # RunSignUp's only
    connection.settings = {**connection.settings, **fast, **settings}
    db.flush()
    return connection


def timing_link(db: Session, connection: ProviderConnection, event: Event, ref: str
                ) -> EventLink:
    """The timing race linked to ``event`` as an operator links it (linked at T0)."""
    ctx = TenantContext.system(connection.tenant_id, label="test")
    return links.create_link(db, ctx, event_id=event.id, now=T0, data=LinkCreate(
        connection_id=connection.id, provider_event_ref=ref, provider_event_name="Finish line"))


def chronotrack_race(sim: ct_sim.ChronoTrackSimulator) -> tuple[str, int]:
    race_id = next(iter(sim.races))
    return f"{sim.event_of_race[race_id]}:{race_id}", race_id


def pushed_chronotrack(db: Session, event: Event, sim: ct_sim.ChronoTrackSimulator,
                       race_id: int, *, count: int) -> list[EventParticipant]:
    """EPs for the race's first ``count`` entries, each entry carrying its EP's id as the
    external id (EPID mode), as a start-list push leaves them."""
    event.preferred_timing_identifier = TimingIdentifier.EPID
    eps = []
    with sim.lock:
        for entry in sim.entries[race_id][:count]:
            ep = make_participant(db, event, first_name=entry["athlete_first_name"],
                                  last_name=entry["athlete_last_name"], bib=entry["entry_bib"])
            entry["entry_external_id"] = str(ep.id)
            eps.append(ep)
    db.flush()
    return eps


def pushed_copernico(db: Session, event: Event, sim: cop_sim.CopernicoSimulator, ref: str, *,
                     count: int) -> list[EventParticipant]:
    """EPs whose registration id is the id of the race's first ``count`` result rows
    (REGISTRATION_ID mode): the id racehub pushed is the row's ``id``."""
    event.preferred_timing_identifier = TimingIdentifier.REGISTRATION_ID
    race_id, event_id = ref.split(":")
    eps = []
    for row in sim.results[(race_id, event_id)][:count]:
        eps.append(make_participant(db, event, first_name=row["name"], last_name=row["surname"],
                                    bib=row["dorsal"], registration_id=row["id"]))
    db.flush()
    return eps


def pull(db: Session, ctx: TenantContext, keyring: Keyring, connection: ProviderConnection,
         event: Event, *, clock: Clock | None = None) -> SyncRun:
    """Ask for a pull of the event's timing race and run its first attempt."""
    requested = results_pull.request_results_pull(db, ctx, connection_id=connection.id,
                                                  event_id=event.id,
                                                  trigger=SyncTrigger.MANUAL)
    assert len(requested) == 1 and not requested[0].joined
    return attempt(db, keyring, requested[0].run, clock=clock)


def attempt(db: Session, keyring: Keyring, run: SyncRun, *, clock: Clock | None = None
            ) -> SyncRun:
    clock = clock or Clock()
    body = partial(results_pull.run_results_pull, keyring=keyring, clock=clock)
    run_job(None, str(run.job_run_id), body, factory=lend(db),  # type: ignore[arg-type]
            retry=PROVIDER_OUTAGES, clock=clock)
    db.refresh(run)
    return run


def results_of(db: Session, event: Event) -> dict[Any, Result]:
    db.expire_all()
    return {r.event_participant_id: r for r in db.scalars(
        select(Result).where(Result.event_id == event.id))}


def changes_of(db: Session, run: SyncRun, action: ChangeAction | None = None
               ) -> list[SyncChange]:
    stmt = select(SyncChange).where(SyncChange.run_id == run.id)
    if action is not None:
        stmt = stmt.where(SyncChange.action == action)
    return list(db.scalars(stmt))
