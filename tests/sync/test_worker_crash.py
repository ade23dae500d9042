"""A worker killed with SIGKILL in the middle of a sync's apply step: the stalled job is
retried on another worker, which applies the staged pages (it does not read the provider
again), and no EP is lost or doubled.

Real ``racehub worker`` processes on real commits, the RunSignUp simulator over HTTP in
this process. The moment of death is deterministic: this test holds the link's row
(FOR NO KEY UPDATE), so worker 1 reads and stages every page, applies every registration
and then waits to move the link's cursor, until it is killed.
"""

from __future__ import annotations

import os
import signal

import psycopg
import pytest
from sqlalchemy import func, select

from racehub.core.crypto import keyring_from_settings
from racehub.db.session import libpq_url
from racehub.events.models import EventParticipant
from racehub.settings import Settings
from racehub.sync import runs
from racehub.sync.models import StagedRow, SyncedRecord, SyncRun, SyncStatus
from tests.sync.engine_helpers import linked_tenant, provider_event_id, simulator
from tests.workers import Factory, Workers, alive, load_run, wait_for, waits_on

pytestmark = pytest.mark.worker


def test_a_sync_of_a_killed_worker_resumes_from_its_staged_pages(
    committed_db: Factory, workers: Workers, database_url: str
) -> None:
    keyring = keyring_from_settings(Settings(database_url=database_url))
    with simulator(participants_per_event=150) as (sim, base_url):
        rows = sim.participants[provider_event_id(sim)]
        with committed_db() as db:
            ctx, connection, event, event_link = linked_tenant(db, keyring, sim, base_url)
            [request] = runs.request_participant_sync(db, ctx, connection_id=connection.id)
            db.commit()
            run_id, job_id, link_id = request.run.id, request.run.job_run_id, event_link.id
        assert job_id is not None

        holder = psycopg.connect(libpq_url(database_url))
        try:
            holder.execute("SELECT 1 FROM event_links WHERE id = %s FOR NO KEY UPDATE",
                           (link_id,))
            first = workers.start("worker-1")
            wait_for(lambda: load_run(committed_db, job_id).checkpoint.get("staged"),
                     "worker 1 to stage every page", check=alive(workers, "worker-1", first))
            wait_for(lambda: waits_on(committed_db, workers, holder.info.backend_pid),
                     "worker 1 to wait on the link's row at the end of its apply",
                     check=alive(workers, "worker-1", first))
            os.kill(first.pid, signal.SIGKILL)
            assert first.wait(timeout=30) == -signal.SIGKILL
        finally:
            holder.rollback()
            holder.close()
        reads = len(sim.faults.seen("/participants"))

        second = workers.start("worker-2")
        wait_for(lambda: not load_sync_run(committed_db, run_id).status.is_active,
                 "worker 2 to retry the stalled sync and finish it",
                 check=alive(workers, "worker-2", second))

        run = load_sync_run(committed_db, run_id)
        assert run.status == SyncStatus.SUCCEEDED, run.error
        assert run.attempts == 2 and run.created == len(rows)
        assert len(sim.faults.seen("/participants")) == reads  # applied from staging
        job = load_run(committed_db, job_id)
        (restart,) = [e for e in job.log if e["message"].startswith("restarted")]
        assert restart["checkpoint"]["staged"] is True
        with committed_db() as db:
            sources = db.scalars(select(EventParticipant.source_id)
                                 .where(EventParticipant.event_id == event.id)).all()
            records = db.scalar(select(func.count()).select_from(SyncedRecord))
            staged = db.scalar(select(func.count()).select_from(StagedRow))
        assert sorted(str(s) for s in sources) == sorted(str(r["registration_id"]) for r in rows)
        assert records == len(rows) and staged == 0


def load_sync_run(factory: Factory, run_id: object) -> SyncRun:
    with factory() as db:
        run = db.get(SyncRun, run_id)
        assert run is not None
        return run
