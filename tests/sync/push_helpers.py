"""Timing simulators over real HTTP, connections to them, timing links, and one attempt of a
start list push run in the test's transaction (its job's body, as a worker runs it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role
from racehub.core.rbac import permissions_for
from racehub.db.session import lend
from racehub.events.models import Event
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.jobs.runner import run_job
from racehub.providers.chronotrack import simulator as ct_sim
from racehub.providers.copernico import simulator as cop_sim
from racehub.providers.simulator import serve_in_thread
from racehub.sync import links, service, timing_push
from racehub.sync.models import EventLink, ProviderConnection, SyncRun, SyncTrigger
from racehub.sync.schemas import ConnectionCreate, LinkCreate, LinkUpdate
from tests.sync.engine_helpers import FAST, T0, Clock

CT_RACE_REF = "31000:81000"


@contextmanager
def chronotrack(**kwargs: Any) -> Iterator[tuple[ct_sim.ChronoTrackSimulator, str]]:
    sim = ct_sim.ChronoTrackSimulator(**{"events": 1, "races_per_event": 1,
                                         "entries_per_race": 3, "results_per_race": 0,
                                         **kwargs})
    with serve_in_thread(ct_sim.make_app(simulator=sim)) as url:
        yield sim, url + ct_sim.BASE_PATH


@contextmanager
def copernico(**kwargs: Any) -> Iterator[tuple[cop_sim.CopernicoSimulator, str]]:
    sim = cop_sim.CopernicoSimulator(**{"races": 1, "registrations_per_event": 3,
                                        "finishers_per_event": 0, **kwargs})
    with serve_in_thread(cop_sim.make_app(simulator=sim)) as url:
        yield sim, url


def connect(db: Session, ctx: TenantContext, keyring: Keyring, provider: str,
            base_url: str) -> ProviderConnection:
    """A timing (SCORING) connection to a simulator (a platform admin may point it there)."""
    credentials = (ct_sim.DEMO_CREDENTIALS if provider == "CHRONOTRACK"
                   else cop_sim.DEMO_CREDENTIALS)
    connection = service.create_connection(
        db, replace(ctx, is_platform_admin=True), keyring=keyring,
        data=ConnectionCreate(provider=provider, name=f"{provider} {uuid.uuid4().hex[:6]}",
                              base_url=base_url, credentials=dict(credentials)))
    connection.settings = {**connection.settings,
                           **{k: v for k, v in FAST.items() if k != "results_per_page"}}
    db.flush()
    return connection


def timing_link(db: Session, connection: ProviderConnection, event: Event,
                ref: str) -> EventLink:
    """A timing event linked to ``event`` as an operator links it (linked at T0), with
    auto-sync off: these tests push by hand, never on the results-pull schedule."""
    ctx = TenantContext.system(connection.tenant_id, label="test")
    row = links.create_link(db, ctx, event_id=event.id, now=T0, data=LinkCreate(
        connection_id=connection.id, provider_event_ref=ref, provider_event_name="5K"))
    links.update_link(db, ctx, event_id=event.id, link_id=row.id,
                      data=LinkUpdate(auto_sync=False), now=T0)
    return row


def as_role(ctx: TenantContext, role: Role) -> TenantContext:
    return replace(ctx, permissions=permissions_for(role))


def attempt(db: Session, keyring: Keyring, run: SyncRun, *, clock: Clock | None = None,
            **options: Any) -> SyncRun:
    """One attempt of a push run: its job run by the job runner with the kind's retry
    policy, in the test's transaction."""
    clock = clock or Clock()
    body = partial(timing_push.run_start_list_push, keyring=keyring, clock=clock, **options)
    run_job(None, str(run.job_run_id), body, factory=lend(db),  # type: ignore[arg-type]
            retry=PROVIDER_OUTAGES, clock=clock)
    db.refresh(run)
    return run


def push(db: Session, ctx: TenantContext, keyring: Keyring, link: EventLink, *,
         clock: Clock | None = None, confirm_live: bool = False,
         plan_fingerprint: str | None = None,
         trigger: SyncTrigger = SyncTrigger.MANUAL) -> SyncRun:
    """Ask for a push of the link and run its first attempt."""
    target = timing_push.get_target_or_raise(db, ctx, link_id=link.id)
    requested = timing_push.request_push(db, ctx, target=target, trigger=trigger,
                                         confirm_live=confirm_live,
                                         plan_fingerprint=plan_fingerprint)
    assert not requested.joined
    return attempt(db, keyring, requested.run, clock=clock)
