"""Two real workers and a link asked to sync twice at once, then twice more while its run
is running: one SyncRun, one job, run by one worker, and no EP written twice.

Real ``racehub worker`` processes on real commits, the RunSignUp simulator over HTTP in
this process. The run is held at a known point: this test holds the link's row (FOR NO
KEY UPDATE), so the worker that took the job reads and stages every page, applies every
registration and then waits to move the link's cursor, until the test lets go.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import keyring_from_settings
from racehub.db.session import libpq_url
from racehub.events.models import EventParticipant
from racehub.jobs.models import JobRun
from racehub.settings import Settings
from racehub.sync import runs
from racehub.sync.models import SyncRun, SyncStatus
from tests.concurrency import loser_of_a_race
from tests.sync.engine_helpers import linked_tenant, provider_event_id, simulator
from tests.workers import Factory, Workers, alive, load_run, wait_for, waits_on

pytestmark = pytest.mark.worker


def _request(factory: Factory, ctx: TenantContext, connection_id: uuid.UUID
             ) -> tuple[uuid.UUID, bool]:
    with factory() as db:
        [requested] = runs.request_participant_sync(db, ctx, connection_id=connection_id)
        answer = (requested.run.id, requested.joined)
        db.commit()
    return answer


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Each call in a thread of its own, released together; bounded joins."""
    start = threading.Barrier(len(calls), timeout=30)
    results: dict[int, Any] = {}

    def run(index: int, call: Callable[[], Any]) -> None:
        start.wait()
        try:
            results[index] = call()
        except BaseException as exc:  # noqa: BLE001 - reported in the test's thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c), daemon=True)
               for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a request never finished"
    for result in results.values():
        if isinstance(result, BaseException):
            raise result
    return [results[i] for i in range(len(calls))]


def _job_starts(workers: Workers, job_id: uuid.UUID) -> list[str]:
    """The workers that started an attempt of ``job_id`` (each start is one log line)."""
    return [name for name in ("worker-1", "worker-2") for e in workers.log_events(name)
            if e.get("event") == "job.start" and e.get("job_run_id") == str(job_id)]


def test_two_workers_and_a_double_request_never_run_one_link_twice(
    committed_db: Factory, workers: Workers, database_url: str, engine: Engine,
) -> None:
    keyring = keyring_from_settings(Settings(database_url=database_url))
    with simulator(participants_per_event=120) as (sim, base_url):
        rows = sim.participants[provider_event_id(sim)]
        with committed_db() as db:
            ctx, connection, event, event_link = linked_tenant(db, keyring, sim, base_url)
            db.commit()
            connection_id, link_id, event_id = connection.id, event_link.id, event.id

        # Two requests at once: the second waits on the first's uncommitted run (the
        # one-active-run index), then joins it.
        winner_db = committed_db()
        [won] = runs.request_participant_sync(winner_db, ctx, connection_id=connection_id)
        run_id, job_id = won.run.id, won.run.job_run_id
        assert job_id is not None and not won.joined

        def loser(db: Session) -> tuple[uuid.UUID, bool]:
            [requested] = runs.request_participant_sync(db, ctx, connection_id=connection_id)
            db.commit()
            return requested.run.id, requested.joined

        assert loser_of_a_race(engine, winner_db, "sync-double-request", loser) == (
            run_id, True)

        holder = psycopg.connect(libpq_url(database_url))
        try:
            holder.execute("SELECT 1 FROM event_links WHERE id = %s FOR NO KEY UPDATE",
                           (link_id,))
            first, second = workers.start("worker-1"), workers.start("worker-2")

            def both_alive() -> None:
                alive(workers, "worker-1", first)()
                alive(workers, "worker-2", second)()

            wait_for(lambda: load_run(committed_db, job_id).checkpoint.get("staged"),
                     "a worker to stage every page", check=both_alive)
            wait_for(lambda: waits_on(committed_db, workers, holder.info.backend_pid),
                     "the run to wait on the link's row at the end of its apply",
                     check=both_alive)
            # Asked twice more, at once, while it runs: both join the running run.
            again = _at_once([lambda: _request(committed_db, ctx, connection_id)] * 2)
            assert again == [(run_id, True), (run_id, True)]
            with committed_db() as db:
                assert db.scalar(select(func.count()).select_from(SyncRun)) == 1
                assert db.scalar(select(func.count()).select_from(JobRun)
                                 .where(JobRun.kind == runs.SYNC_PARTICIPANTS_KIND)) == 1
            assert len(_job_starts(workers, job_id)) == 1  # the other worker did not take it
        finally:
            holder.rollback()
            holder.close()

        wait_for(lambda: not _sync_run(committed_db, run_id).status.is_active,
                 "the run to finish", check=both_alive)

    run = _sync_run(committed_db, run_id)
    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert (run.attempts, run.created, run.trigger) == (1, len(rows), "manual")
    assert len(_job_starts(workers, job_id)) == 1
    with committed_db() as db:
        assert db.scalar(select(func.count()).select_from(SyncRun)) == 1
        queued = db.execute(text(
            "SELECT count(*), max(attempts) FROM procrastinate_jobs WHERE lock = :lock"),
            {"lock": f"sync-link:{link_id}"}).one()
        sources = db.scalars(select(EventParticipant.source_id)
                             .where(EventParticipant.event_id == event_id)).all()
    assert tuple(queued) == (1, 1)  # one queue job, taken once, never retried
    assert len(sources) == len(set(sources)) == len(rows)


def _sync_run(factory: Factory, run_id: uuid.UUID) -> SyncRun:
    with factory() as db:
        run = db.get(SyncRun, run_id)
        assert run is not None
        return run
