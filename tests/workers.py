"""Real ``racehub worker`` processes for the tests that kill one mid-job.

Workers log JSON to a file each and name their database sessions, so that what they did
can be read back and their leftovers ended. Waits are bounded polls, never assertions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from racehub.jobs.models import JobRun

Factory = sessionmaker[Session]
WAIT_SECONDS = 60
BATCH = 20  # rows per committed batch in the workers these tests start


class Workers:
    """``racehub worker`` subprocesses on the test database, each logging to a file. Their
    database sessions carry one application name, so leftovers can be found and ended."""

    def __init__(self, database_url: str, log_dir: Path, *, batch_size: int = BATCH) -> None:
        self.app_name = f"racehub-crash-test-{uuid.uuid4().hex[:8]}"
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "RACEHUB_DATABASE_URL": database_url,
            "RACEHUB_JOB_HEARTBEAT_SECONDS": "1",
            "RACEHUB_JOB_STALLED_SECONDS": "3",
            "RACEHUB_JOB_SHUTDOWN_SECONDS": "1",
            "RACEHUB_JOB_BATCH_SIZE": str(batch_size),
            "RACEHUB_DATA_DIR": str(log_dir / "data"),  # where uploads are kept
            "RACEHUB_WORKER_CONCURRENCY": "2",
            "RACEHUB_LOG_LEVEL": "INFO",
            "RACEHUB_LOG_JSON": "true",
            "PGAPPNAME": self.app_name,  # libpq names every connection the worker opens
        }

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "racehub.cli", "worker", "--name", name],
                env=self.env, cwd=self.log_dir, stdout=log, stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def log_events(self, name: str) -> list[dict[str, Any]]:
        events = []
        for line in self.log(name).splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def wait_for(condition: Callable[[], Any], what: str, *, check: Callable[[], None],
             timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``condition`` until it returns something truthy; ``check`` fails fast when a
    worker died on its own. A bounded wait, never an assertion by itself."""
    deadline = time.monotonic() + timeout
    while True:
        check()
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def alive(workers: Workers, name: str, process: subprocess.Popen[bytes]) -> Callable[[], None]:
    def check() -> None:
        if process.poll() is not None:
            pytest.fail(f"worker {name} exited with {process.returncode}:\n"
                        + workers.log(name)[-4000:])
    return check


def at(log_event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(log_event["timestamp"])


def load_run(factory: Factory, run_id: uuid.UUID) -> JobRun:
    with factory() as db:
        run = db.get(JobRun, run_id)
        assert run is not None
        return run


def queue_job(factory: Factory, job_id: int) -> dict[str, Any]:
    with factory() as db:
        row = db.execute(text(
            "SELECT status::text AS status, attempts, worker_id FROM procrastinate_jobs "
            "WHERE id = :id"), {"id": job_id}).mappings().one()
        events = db.scalars(text(
            "SELECT type::text FROM procrastinate_events WHERE job_id = :id ORDER BY id"
        ), {"id": job_id}).all()
    return {**row, "events": events}


def queue_job_finished(factory: Factory, job_id: int, *, check: Callable[[], None]
                       ) -> dict[str, Any]:
    """The queue row once procrastinate has recorded the end of the job. It does so after
    our task's own transaction commits, so a terminal JobRun can briefly sit beside a
    queue job still marked ``doing``."""
    return wait_for(lambda: (job := queue_job(factory, job_id))["status"] != "doing" and job,
                    f"the queue to record the end of job {job_id}", check=check)


def waits_on(factory: Factory, workers: Workers, holder_pid: int) -> bool:
    """True once one of the workers' sessions waits on a lock held by ``holder_pid``."""
    with factory() as db:
        return bool(db.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
            "AND :holder = ANY(pg_blocking_pids(pid))"
        ), {"name": workers.app_name, "holder": holder_pid}))
