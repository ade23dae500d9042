"""JSON API of sync runs: ask for one, follow it, read the history. Thin: runs.py holds
the rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field, computed_field, field_validator

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.core.schemas import APIModel
from racehub.sync import runs
from racehub.sync.models import ChangeAction, SyncRun, SyncStatus, SyncTrigger

router = APIRouter(prefix="/api/sync", tags=["sync"])

ReadRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_READ))]
StartRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_START))]
Limit = Annotated[int, Query(ge=1, le=500)]


class SyncRequest(APIModel):
    connection_id: uuid.UUID
    sync_type: Literal["participants"] = Field(
        description="What to pull: 'participants' (registrations into the linked events)")
    event_id: uuid.UUID | None = Field(
        default=None, description="Only the provider events linked to this racehub event; "
                                  "unset: every linked event of the connection")
    full_refresh: bool = Field(default=False,
                               description="Read everything again, not only what changed "
                                           "since the last run")


class SyncRunRead(APIModel):
    id: uuid.UUID
    connection_id: uuid.UUID | None
    provider: str
    link_id: uuid.UUID | None
    event_id: uuid.UUID | None
    sync_type: str
    trigger: str = Field(description="Who asked for the run (manual, schedule, webhook); a "
                                     "retried run keeps it: see attempts and retried")
    status: SyncStatus
    job_run_id: uuid.UUID | None
    requested_by_label: str
    full_refresh: bool
    attempts: int = Field(description="Attempts so far: more than 1 when it was retried")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None
    cursor_before: datetime | None
    cursor_after: datetime | None
    fetched: int
    created: int
    updated: int
    unchanged: int
    withdrawn: int
    conflicts: int
    problems: int
    error: str | None = Field(description="One line, scrubbed of secrets")
    retryable: bool | None

    @computed_field(description="Whether an attempt failed and the run was tried again")
    def retried(self) -> bool:
        return self.attempts > 1


class RunRequested(APIModel):
    run: SyncRunRead
    job_id: uuid.UUID | None = Field(description="The job running it (GET /api/jobs/{id})")
    joined: bool = Field(description="A run of this link was active already: this is it")


class SyncRequested(APIModel):
    runs: list[RunRequested]


class SyncChangeRead(APIModel):
    id: uuid.UUID
    participant_id: uuid.UUID | None
    source_ref: str | None
    action: ChangeAction
    changes: dict[str, Any] = Field(
        description="field -> [old, new]: only the fields the participants page shows")
    message: str | None
    at: datetime

    @field_validator("changes", mode="before")
    @classmethod
    def _shown(cls, changes: dict[str, Any] | None) -> dict[str, Any]:
        return runs.shown_changes(changes or {})


class SyncRunDetail(SyncRunRead):
    changes: Page[SyncChangeRead]


class LinkStatusRead(APIModel):
    link_id: uuid.UUID
    event_id: uuid.UUID | None
    provider_event_ref: str
    provider_event_name: str | None
    cursor: datetime | None
    last_success_at: datetime | None
    running: SyncRunRead | None
    last_success: SyncRunRead | None
    recent_failures: list[SyncRunRead]


class SyncStatusRead(APIModel):
    connection_id: uuid.UUID
    links: list[LinkStatusRead]


def _read(run: SyncRun) -> SyncRunRead:
    return SyncRunRead.model_validate(run)


@router.post("/manual", response_model=SyncRequested, status_code=202)
def request_sync(data: SyncRequest, db: DB, ctx: StartRuns) -> SyncRequested:
    """A run per linked provider event of the connection (or of ``eventId``), each with its
    job, taken before scheduled runs. A link whose run is queued, running or waiting to
    retry answers with that run (``joined``). 422 naming ``connectionId`` or ``eventId``
    when nothing is linked."""
    requested = runs.request_participant_sync(db, ctx, connection_id=data.connection_id,
                                              event_id=data.event_id,
                                              full_refresh=data.full_refresh)
    db.commit()
    return SyncRequested(runs=[RunRequested(run=_read(r.run), job_id=r.run.job_run_id,
                                            joined=r.joined) for r in requested])


@router.get("/status/{connection_id}", response_model=SyncStatusRead)
def sync_status(connection_id: uuid.UUID, db: DB, ctx: ReadRuns) -> SyncStatusRead:
    """Per linked provider event: the run active now, the last success, recent failures."""
    statuses = runs.connection_status(db, ctx, connection_id=connection_id)
    return SyncStatusRead(connection_id=connection_id, links=[LinkStatusRead(
        link_id=s.link.id, event_id=s.link.event_id, provider_event_ref=s.link.provider_event_ref,
        provider_event_name=s.link.provider_event_name, cursor=s.link.cursor,
        last_success_at=s.link.last_success_at,
        running=_read(s.running) if s.running else None,
        last_success=_read(s.last_success) if s.last_success else None,
        recent_failures=[_read(r) for r in s.recent_failures]) for s in statuses])


@router.get("/runs", response_model=Page[SyncRunRead])
def list_runs(
    db: DB, ctx: ReadRuns,
    connection_id: Annotated[uuid.UUID | None, Query(alias="connectionId")] = None,
    event_id: Annotated[uuid.UUID | None, Query(alias="eventId")] = None,
    status: SyncStatus | None = None,
    trigger: SyncTrigger | None = None,
    retried: Annotated[bool | None, Query(
        description="true: only runs tried more than once; false: only runs tried once")]
    = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[SyncRunRead]:
    """The tenant's runs, newest first."""
    rows, next_cursor = runs.list_runs(
        db, ctx, filters=runs.RunFilter(connection_id=connection_id, event_id=event_id,
                                        status=status, trigger=trigger, retried=retried),
        cursor=cursor, limit=limit)
    return Page[SyncRunRead](items=[_read(r) for r in rows], next_cursor=next_cursor)


@router.get("/runs/{sync_run_id}", response_model=SyncRunDetail)
def read_run(
    sync_run_id: uuid.UUID, db: DB, ctx: ReadRuns,
    action: Annotated[list[ChangeAction] | None, Query(
        description="Only changes of these actions (repeat the parameter for several)")]
    = None,
    cursor: str | None = None, limit: Limit = 100,
) -> SyncRunDetail:
    """One run and a page of its changes (``cursor`` pages on through the changes, with
    the same ``action`` filter)."""
    run = runs.get_run_or_raise(db, ctx, run_id=sync_run_id)
    changes, next_cursor = runs.list_changes(db, ctx, run_id=run.id, actions=action,
                                             cursor=cursor, limit=limit)
    return SyncRunDetail(**_read(run).model_dump(), changes=Page[SyncChangeRead](
        items=[SyncChangeRead.model_validate(c) for c in changes], next_cursor=next_cursor))



