"""A worker killed with SIGKILL in the middle of a job: another worker detects the stalled
job (no heartbeat) and retries it, and the run continues from its last committed checkpoint.

Real ``racehub worker`` processes on real commits. The moment of death is made
deterministic with a row lock: this test locks one participant that the bib assignment
reaches in a later batch, so worker 1 commits some batches and then waits on that row,
mid-batch, until it is killed.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from racehub.db.session import libpq_url
from racehub.events import service as events_service
from racehub.events.models import EventParticipant
from racehub.jobs.models import JobStatus
from tests.factories import make_category, make_event, make_participant, make_tenant, system_ctx
from tests.jobs.helpers import bib_batches, free_numbers, make_unnumbered_field, numbering_order
from tests.workers import (
    BATCH,
    Factory,
    Workers,
    alive,
    at,
    load_run,
    queue_job,
    queue_job_finished,
    wait_for,
    waits_on,
)

pytestmark = pytest.mark.worker

PARTICIPANTS = 200
FIRST_BIB = 1000
TAKEN_BIB = 1150  # held in another category: must be skipped after the restart as well
LOCKED_INDEX = 99  # the 100th to be numbered: in the 5th batch, after 4 committed batches


def test_job_of_a_killed_worker_is_retried_from_its_last_checkpoint(
    committed_db: Factory, workers: Workers, database_url: str
) -> None:
    with committed_db() as db:
        tenant = make_tenant(db)
        event = make_event(db, tenant)
        category = make_category(db, event, "Marathon")
        make_unnumbered_field(db, event, category, PARTICIPANTS)
        make_participant(db, event, bib=str(TAKEN_BIB),
                         category_id=make_category(db, event, "10K").id)
        order = [ep.id for ep in numbering_order(db, category)]
        run = events_service.start_bib_assignment(db, system_ctx(tenant), event_id=event.id,
                                                  category_id=category.id,
                                                  first_bib=FIRST_BIB)
        db.commit()
    run_id, queue_job_id = run.id, run.queue_job_id
    assert len(order) == PARTICIPANTS and queue_job_id is not None
    locked_id = order[LOCKED_INDEX]

    # Hold the 100th participant: worker 1 commits 4 batches, then waits in the 5th.
    locker = psycopg.connect(libpq_url(database_url))
    try:
        locker.execute("SELECT id FROM event_participants WHERE id = %s FOR UPDATE",
                       (locked_id,))
        locker_pid = locker.info.backend_pid

        first = workers.start("worker-1")
        wait_for(lambda: load_run(committed_db, run_id).done == 4 * BATCH
                 and waits_on(committed_db, workers, locker_pid),
                 "worker 1 to commit 4 batches and wait on the locked row",
                 check=alive(workers, "worker-1", first))

        run = load_run(committed_db, run_id)
        assert (run.status, run.attempts) == (JobStatus.RUNNING, 1)
        assert run.checkpoint == {"next_bib": FIRST_BIB + 4 * BATCH, "assigned": 4 * BATCH}

        os.kill(first.pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        locker.rollback()  # release the row: the killed worker's batch never committed
        locker.close()

    # Nothing has finished the job: it is still "doing" for a worker that no longer exists.
    assert load_run(committed_db, run_id).status == JobStatus.RUNNING
    assert queue_job(committed_db, queue_job_id)["status"] == "doing"

    second = workers.start("worker-2")
    wait_for(lambda: load_run(committed_db, run_id).status.is_terminal,
             "worker 2 to retry the stalled job and finish it",
             check=alive(workers, "worker-2", second))

    run = load_run(committed_db, run_id)
    assert run.status == JobStatus.COMPLETED, (run.message, run.error)
    assert run.attempts == 2
    assert (run.done, run.total, run.percent) == (PARTICIPANTS, PARTICIPANTS, 100.0)
    (restart,) = [e for e in run.log if e["message"].startswith("restarted")]
    assert restart["message"] == ("restarted after the worker stopped; continuing from "
                                  "checkpoint")
    assert restart["checkpoint"] == {"next_bib": FIRST_BIB + 4 * BATCH, "assigned": 4 * BATCH}

    # Every participant numbered once, in name order, consecutively, skipping the taken bib.
    numbers = free_numbers(FIRST_BIB, PARTICIPANTS, taken={TAKEN_BIB})
    with committed_db() as db:
        bibs = dict(db.execute(text(
            "SELECT id, bib FROM event_participants WHERE category_id = :category"
        ), {"category": category.id}).all())
        batches = bib_batches(db, category)
        assert db.get(EventParticipant, locked_id).bib == str(numbers[LOCKED_INDEX])
    assert [bibs[ep_id] for ep_id in order] == [str(n) for n in numbers]
    assert len(set(bibs.values())) == PARTICIPANTS
    # Ten committed batches, one after another: the killed one was not applied twice.
    assert batches == [(BATCH, numbers[i], numbers[i + BATCH - 1])
                       for i in range(0, PARTICIPANTS, BATCH)]

    # procrastinate saw the stall: the same job was retried and then succeeded.
    job = queue_job_finished(committed_db, queue_job_id, check=alive(workers, "worker-2", second))
    # attempts: one for the retry of the stalled run, one for the run that succeeded.
    assert (job["status"], job["attempts"]) == ("succeeded", 2), job
    # (procrastinate also records the retry's new schedule as a "scheduled" event)
    assert [e for e in job["events"] if e != "scheduled"] == [
        "deferred", "started", "deferred_for_retry", "started", "succeeded"]
    retried = [e for e in workers.log_events("worker-2")
               if e.get("event") == "jobs.stalled_retry" and e.get("job_id") == queue_job_id]
    assert [e["task"] for e in retried] == ["events:assign_bibs"]  # by recover_stalled, once
    # Soon, as configured: heartbeat 1 s, stalled after 3 s (the defaults, 10 s and 30 s,
    # would fail this). Counted from when it could first be seen: 3 s silent, worker 2 up.
    (started,) = [e for e in workers.log_events("worker-2") if e.get("event") == "worker.start"]
    assert (started["heartbeat_s"], started["stalled_after_s"]) == (1.0, 3.0)
    detectable = max(killed_at + timedelta(seconds=3), at(started))
    assert at(retried[0]) - detectable < timedelta(seconds=8)
    # While worker 1 lived (blocked, but sending heartbeats), nobody took its job away.
    assert not [e for e in workers.log_events("worker-1")
                if e.get("event") == "jobs.stalled_retry"]
