"""The start of one attempt of a sync run, whatever its type (participants, start list
push, results pull): shared by their job bodies."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.jobs.handle import RunningJob
from racehub.sync.models import EventLink, ProviderConnection, SyncRun, SyncStatus

Clock = Callable[[], datetime]


def begin_attempt(
    handle: RunningJob, db: Session, ctx: TenantContext, sync_run_id: str, clock: Clock, *,
    what: str, counts: Callable[[SyncRun], bool] = lambda run: True,
) -> tuple[SyncRun, EventLink | None, ProviderConnection | None] | None:
    """The start of one attempt of a run of any type: the run locked and marked running
    (one more attempt when ``counts`` says so), with its link and connection as they are
    now (None when gone). None, logged, when the run is no longer active (``what`` names
    it: "the sync run", "the push"). A retry keeps the run's trigger: ``attempts`` tells
    the retries."""
    run = db.scalar(select(SyncRun).where(SyncRun.id == uuid.UUID(sync_run_id),
                                          SyncRun.tenant_id == ctx.tenant_id)
                    .with_for_update().execution_options(populate_existing=True))
    if run is None or not run.status.is_active:
        handle.log(f"nothing to do: {what} is " + (run.status.value if run else "gone"))
        return None
    link = db.get(EventLink, run.link_id) if run.link_id else None
    connection = db.get(ProviderConnection, run.connection_id) if run.connection_id else None
    run.status = SyncStatus.RUNNING
    run.started_at = run.started_at or clock()
    run.next_attempt_at = None
    if counts(run):
        run.attempts += 1
    return run, link, connection
