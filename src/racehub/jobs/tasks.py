"""Housekeeping tasks of the job system itself."""

from __future__ import annotations

import structlog
from procrastinate import Blueprint

from racehub.settings import get_settings

log = structlog.get_logger(__name__)

blueprint = Blueprint()


def _every_seconds() -> str:
    seconds = max(1, min(30, int(get_settings().job_stalled_seconds // 3) or 1))
    return f"* * * * * */{seconds}"


@blueprint.periodic(cron=_every_seconds())
@blueprint.task(name="recover_stalled", queueing_lock="recover_stalled", pass_context=True)
async def recover_stalled(context, timestamp: int) -> int:  # type: ignore[no-untyped-def]
    """Retry jobs whose worker stopped sending heartbeats (killed, OOM, machine lost).

    procrastinate leaves such jobs in ``doing`` forever; retrying hands them to a live
    worker, and the task continues from its JobRun checkpoint.
    """
    manager = context.app.job_manager
    threshold = get_settings().job_stalled_seconds
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=threshold))
    for job in stalled:
        log.warning("jobs.stalled_retry", job_id=job.id, task=job.task_name)
        await manager.retry_job(job)
    return len(stalled)
