"""A worker asked to stop (SIGTERM: a deploy, Ctrl-C) in the middle of a long job: after
``RACEHUB_JOB_SHUTDOWN_SECONDS`` the job stops at its next batch boundary, goes back to the
queue, and the next worker continues it from that checkpoint.

As in test_worker_crash, a row lock holds the worker inside its 5th batch, so the stop
request arrives mid-batch, deterministically.
"""

from __future__ import annotations

import os
import signal

import psycopg
import pytest
from sqlalchemy import text

from racehub.db.session import libpq_url
from racehub.events import service as events_service
from racehub.jobs.models import JobStatus
from tests.factories import make_category, make_event, make_tenant, system_ctx
from tests.jobs.helpers import bib_batches, free_numbers, make_unnumbered_field, numbering_order
from tests.workers import (
    BATCH,
    Factory,
    Workers,
    alive,
    load_run,
    queue_job,
    queue_job_finished,
    wait_for,
    waits_on,
)

pytestmark = pytest.mark.worker

PARTICIPANTS = 200
FIRST_BIB = 1000
LOCKED_INDEX = 99  # in the 5th batch, after 4 committed batches


def _told_to_abort(workers: Workers, name: str) -> bool:
    # procrastinate logs this once the grace period is over and it flags the running jobs.
    return "still running after graceful timeout" in workers.log(name)


def test_job_of_a_stopping_worker_goes_back_to_the_queue_and_resumes(
    committed_db: Factory, workers: Workers, database_url: str
) -> None:
    with committed_db() as db:
        tenant = make_tenant(db)
        event = make_event(db, tenant)
        category = make_category(db, event, "Marathon")
        make_unnumbered_field(db, event, category, PARTICIPANTS)
        order = [ep.id for ep in numbering_order(db, category)]
        run = events_service.start_bib_assignment(db, system_ctx(tenant), event_id=event.id,
                                                  category_id=category.id,
                                                  first_bib=FIRST_BIB)
        db.commit()
    run_id, queue_job_id = run.id, run.queue_job_id
    assert queue_job_id is not None

    locker = psycopg.connect(libpq_url(database_url))
    try:
        locker.execute("SELECT id FROM event_participants WHERE id = %s FOR UPDATE",
                       (order[LOCKED_INDEX],))
        first = workers.start("worker-1")
        check_first = alive(workers, "worker-1", first)
        wait_for(lambda: load_run(committed_db, run_id).done == 4 * BATCH
                 and waits_on(committed_db, workers, locker.info.backend_pid),
                 "worker 1 to commit 4 batches and wait on the locked row", check=check_first)

        os.kill(first.pid, signal.SIGTERM)
        # The job cannot finish in the grace period (1 s here): it waits on the lock.
        wait_for(lambda: _told_to_abort(workers, "worker-1"),
                 "worker 1 to ask its running job to stop", check=check_first)
    finally:
        locker.rollback()  # the 5th batch can now complete; the job stops right after it
        locker.close()

    assert first.wait(timeout=30) == 0, workers.log("worker-1")[-4000:]
    run = load_run(committed_db, run_id)
    checkpoint = {"next_bib": FIRST_BIB + 5 * BATCH, "assigned": 5 * BATCH}
    assert (run.status, run.stage, run.attempts) == (
        JobStatus.QUEUED, "Waiting for a worker", 1)
    assert (run.done, run.checkpoint) == (5 * BATCH, checkpoint)
    (stopped,) = [e for e in run.log if e["message"].startswith("interrupted")]
    assert stopped["checkpoint"] == checkpoint
    # Back in the queue, not failed, not aborted for good.
    assert queue_job(committed_db, queue_job_id)["status"] == "todo"

    second = workers.start("worker-2")
    wait_for(lambda: load_run(committed_db, run_id).status.is_terminal,
             "worker 2 to take the job from the queue and finish it",
             check=alive(workers, "worker-2", second))

    run = load_run(committed_db, run_id)
    assert run.status == JobStatus.COMPLETED, (run.message, run.error)
    assert (run.attempts, run.done, run.percent) == (2, PARTICIPANTS, 100.0)
    (resumed,) = [e for e in run.log if e["message"] == "resumed from checkpoint"]
    assert resumed["checkpoint"] == checkpoint

    # Every participant numbered once, in order; ten batches, none applied twice.
    numbers = free_numbers(FIRST_BIB, PARTICIPANTS, taken=set())
    with committed_db() as db:
        bibs = dict(db.execute(text(
            "SELECT id, bib FROM event_participants WHERE category_id = :category"
        ), {"category": category.id}).all())
        batches = bib_batches(db, category)
    assert [bibs[ep_id] for ep_id in order] == [str(n) for n in numbers]
    assert batches == [(BATCH, numbers[i], numbers[i + BATCH - 1])
                       for i in range(0, PARTICIPANTS, BATCH)]

    job = queue_job_finished(committed_db, queue_job_id, check=alive(workers, "worker-2", second))
    assert job["status"] == "succeeded", job
    assert [e for e in job["events"] if e not in ("scheduled", "abort_requested")] == [
        "deferred", "started", "deferred_for_retry", "started", "succeeded"]
