"""A worker killed with SIGKILL in the middle of an export: the stalled job is retried by
another worker, which starts the file over with the same cutoff and completes it. The
file holds every row of the snapshot once.

Real ``racehub worker`` processes on real commits. The moment of death is deterministic:
once the export has committed its first page, this test locks its job-run row, so the
worker blocks on its next progress update (half a second later), mid-file, and is killed
there.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from racehub.db.session import libpq_url
from racehub.exports import service
from racehub.exports.models import Export
from racehub.exports.schemas import ExportCreate
from racehub.jobs.models import JobStatus
from racehub.settings import Settings
from tests.factories import make_tenant, system_ctx
from tests.workers import Factory, Workers, alive, load_run, wait_for, waits_on

pytestmark = pytest.mark.worker

ROWS = 20_000
BATCH = 20


def test_an_export_of_a_killed_worker_restarts_cleanly(
    committed_db: Factory, workers: Workers, database_url: str
) -> None:
    data_dir = Path(workers.env["RACEHUB_DATA_DIR"])
    settings = Settings(database_url=database_url, data_dir=data_dir)
    workers.env["RACEHUB_EXPORT_BATCH_SIZE"] = str(BATCH)
    with committed_db() as db:
        tenant = make_tenant(db)
        db.execute(text(
            "INSERT INTO audit_log (tenant_id, actor_label, action, target_type, target_id, at)"
            " SELECT :tenant, 'seed', 'test.row', 'row', n::text, now() - interval '1 hour'"
            " FROM generate_series(1, :rows) n"), {"tenant": tenant.id, "rows": ROWS})
        exp = service.create_export(db, system_ctx(tenant), settings=settings, data=ExportCreate(
            view="audit", filters={"action": "test.row"}, columns=["target_id"]))
        db.commit()
        export_id, run_id = exp.id, exp.job_run_id

    holder = psycopg.connect(libpq_url(database_url))
    try:
        first = workers.start("worker-1")
        check = alive(workers, "worker-1", first)
        deadline = time.monotonic() + 60
        while load_run(committed_db, run_id).done == 0:  # its first page is committed
            check()
            assert time.monotonic() < deadline, "worker 1 never wrote a page"
            time.sleep(0.01)
        holder.execute("SELECT 1 FROM job_runs WHERE id = %s FOR UPDATE", (run_id,))
        wait_for(lambda: waits_on(committed_db, workers, holder.info.backend_pid),
                 "worker 1 to block on its next progress update", check=check)
        stopped_at = load_run(committed_db, run_id).done
        assert 0 < stopped_at < ROWS  # mid-file
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        holder.rollback()
        holder.close()

    second = workers.start("worker-2")
    wait_for(lambda: load_run(committed_db, run_id).status.is_terminal,
             "worker 2 to retry the stalled export and finish it",
             check=alive(workers, "worker-2", second), timeout=120)

    run = load_run(committed_db, run_id)
    assert run.status == JobStatus.COMPLETED, (run.message, run.error)
    assert run.attempts == 2
    assert [e for e in run.log if e["message"].startswith("restarted")]
    with committed_db() as db:
        exp = db.get(Export, uuid.UUID(str(export_id)))
        assert exp is not None and exp.row_count == ROWS
        stored = (data_dir / "exports" / exp.storage_key).read_bytes()  # type: ignore[operator]
    rows = list(csv.reader(io.StringIO(stored.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["Target ID"]
    assert [int(r[0]) for r in rows[1:]] == list(range(ROWS, 0, -1))  # each once, in order
    assert not service.temp_path(settings, exp).exists()
    leftovers = [p.name for p in (data_dir / "exports").rglob("*") if p.is_file()]
    assert leftovers == [exp.filename]
