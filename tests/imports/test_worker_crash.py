"""A worker killed with SIGKILL in the middle of an import: the retried run continues after
the last committed batch, and no row is lost or recorded twice.

Real ``racehub worker`` processes on real commits. The moment of death is deterministic:
this test holds an uncommitted race number with sequence 101, so worker 1 commits five
batches of 20 rows and then waits on the unique index in the sixth, until it is killed.
"""

from __future__ import annotations

import io
import os
import signal
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from racehub.db.session import libpq_url
from racehub.imports import service as imports_service
from racehub.imports.models import ImportRowResult
from racehub.inventory.models import RaceNumber
from racehub.jobs.models import JobStatus
from racehub.settings import Settings
from tests.factories import make_number_type, make_tenant, system_ctx
from tests.workers import (
    BATCH,
    Factory,
    Workers,
    alive,
    load_run,
    queue_job_finished,
    wait_for,
    waits_on,
)

pytestmark = pytest.mark.worker

ROWS = 200
HELD_SEQUENCE = 101  # in the 6th batch, after 5 committed ones


def test_an_import_of_a_killed_worker_loses_and_doubles_nothing(
    committed_db: Factory, workers: Workers, database_url: str
) -> None:
    content = "sequence,number,barcode\r\n" + "".join(
        f"{n},{n:04d},CHIP-{n:05d}\r\n" for n in range(1, ROWS + 1))
    settings = Settings(database_url=database_url, data_dir=Path(workers.env["RACEHUB_DATA_DIR"]))
    with committed_db() as db:
        tenant = make_tenant(db)
        number_type = make_number_type(db, tenant, name="Road bibs")
        imp = imports_service.create_import(
            db, system_ctx(tenant), settings=settings, import_type_key="NUMBER_ONBOARDING",
            params={"numberTypeId": str(number_type.id)}, filename="batch.csv",
            upload=io.BytesIO(content.encode()))
        db.commit()
        run_id, queue_job_id = imp.job_run_id, imp.job_run.queue_job_id

    holder = psycopg.connect(libpq_url(database_url))
    try:
        holder.execute(
            "INSERT INTO race_numbers (id, tenant_id, number_type_id, sequence, number, state)"
            " VALUES (%s, %s, %s, %s, 'held', 'MANUFACTURED')",
            (uuid.uuid4(), tenant.id, number_type.id, HELD_SEQUENCE))
        first = workers.start("worker-1")
        wait_for(lambda: load_run(committed_db, run_id).done == 5 * BATCH,
                 "worker 1 to commit 5 batches", check=alive(workers, "worker-1", first))
        wait_for(lambda: waits_on(committed_db, workers, holder.info.backend_pid),
                 "worker 1 to wait on the held sequence", check=alive(workers, "worker-1", first))
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        holder.rollback()  # sequence 101 is the file's again
        holder.close()

    second = workers.start("worker-2")
    wait_for(lambda: load_run(committed_db, run_id).status.is_terminal,
             "worker 2 to retry the stalled import and finish it",
             check=alive(workers, "worker-2", second))

    run = load_run(committed_db, run_id)
    assert run.status == JobStatus.COMPLETED, (run.message, run.error)
    assert run.attempts == 2
    assert (run.done, run.counts) == (ROWS, {"imported": ROWS})
    (restart,) = [e for e in run.log if e["message"].startswith("restarted")]
    assert restart["checkpoint"]["rows_done"] == 5 * BATCH
    with committed_db() as db:
        sequences = db.scalars(select(RaceNumber.sequence)
                               .where(RaceNumber.number_type_id == number_type.id)
                               .order_by(RaceNumber.sequence)).all()
        rows = db.scalars(select(ImportRowResult.row_number)
                          .where(ImportRowResult.import_id == imp.id)
                          .order_by(ImportRowResult.row_number)).all()
        logged = db.scalar(select(func.count()).select_from(RaceNumber)
                           .where(RaceNumber.tag_id.is_(None)))
    assert sequences == list(range(1, ROWS + 1))  # each once: none lost, none doubled
    assert rows == list(range(2, ROWS + 2))  # one result per file row (header is row 1)
    assert logged == 0  # every number kept its tag
    job = queue_job_finished(committed_db, queue_job_id, check=alive(workers, "worker-2", second))
    assert job["status"] == "succeeded"

