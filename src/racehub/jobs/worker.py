"""Run a procrastinate worker on our database (``racehub worker``)."""

from __future__ import annotations

import asyncio

import structlog
from psycopg_pool import AsyncConnectionPool

from racehub.jobs.queue import load_tasks
from racehub.settings import Settings

log = structlog.get_logger(__name__)


async def _run(conninfo: str, settings: Settings, concurrency: int, name: str | None) -> None:
    # Connections: one per concurrent job, plus the LISTEN connection and the housekeeping.
    pool = AsyncConnectionPool(conninfo, open=False, min_size=1, max_size=concurrency + 4)
    await pool.open(wait=True, timeout=30)
    app = load_tasks()
    try:
        async with app.open_async(pool):
            log.info("worker.start", concurrency=concurrency,
                     heartbeat_s=settings.job_heartbeat_seconds,
                     stalled_after_s=settings.job_stalled_seconds)
            await app.run_worker_async(
                concurrency=concurrency,
                name=name,
                update_heartbeat_interval=settings.job_heartbeat_seconds,
                stalled_worker_timeout=settings.job_stalled_seconds,
                # Then jobs still running are asked to stop at their next batch boundary
                # and go back to the queue (runner.JobInterrupted), not waited on forever.
                shutdown_graceful_timeout=settings.job_shutdown_seconds,
                install_signal_handlers=True,
            )
    finally:
        await pool.close()


def run_worker(conninfo: str, settings: Settings, *, concurrency: int,
               name: str | None = None) -> None:
    asyncio.run(_run(conninfo, settings, concurrency, name))
