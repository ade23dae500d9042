"""JSON API of sync runs: ask for one, follow it, review it (preview, apply, confirm,
discard), read the history. Thin: runs.py and review.py hold the rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field, computed_field, field_validator, model_validator

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.core.schemas import APIModel
from racehub.sync import (
    preview,
    publications,
    results_pull,
    review,
    runs,
    schedule,
    timing_push,
)
from racehub.sync.models import (
    ChangeAction,
    PreviewAction,
    StagedKind,
    SyncRun,
    SyncStatus,
    SyncTrigger,
    SyncType,
)
from racehub.sync.schemas import SchedulePlanRead

router = APIRouter(prefix="/api/sync", tags=["sync"])

ReadRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_READ))]
StartRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_RUN_START))]
# Asking for a run: the least any sync type needs (a timing push, RESULTS_OFFICER); each
# type's own permission is checked by its service (participants: sync:run:start).
RequestRuns = Annotated[TenantContext, Depends(require(Perm.SYNC_TIMING_RUN))]
Limit = Annotated[int, Query(ge=1, le=500)]


class SyncRequest(APIModel):
    connection_id: uuid.UUID
    sync_type: Literal["participants", "start_list_push", "results_pull",
                       "results_publish_prepare"] = Field(
        description="'participants': pull registrations into the linked events (a "
                    "registration connection; sync:run:start, EVENT_MANAGER and up). "
                    "'start_list_push': push the linked events' start lists to a timing "
                    "connection, only what changed since the last push (sync:timing:run, "
                    "RESULTS_OFFICER and up); preview it first with GET "
                    "/api/sync/links/{linkId}/push-preview. 'results_pull': a timing "
                    "connection's results into the linked events' results, as a result file "
                    "import stores them (sync:timing:run). 'results_publish_prepare': build a "
                    "version of the linked events' results to publish to the registration "
                    "platform, validated and diffed against the last published one (GET "
                    "/api/events/{id}/publications), to approve with POST "
                    "/api/events/{id}/publications/{version}/approve (sync:run:start)")
    event_id: uuid.UUID | None = Field(
        default=None, description="Only the provider events linked to this racehub event; "
                                  "unset: every linked event of the connection")
    full_refresh: bool = Field(default=False,
                               description="Read everything again, not only what changed "
                                           "since the last run")
    preview: bool = Field(
        default=False,
        description="participants only. Stop each run once read (status awaiting_review) "
                    "with a preview of what "
                    "applying it would do: GET /api/sync/runs/{id}/preview, then POST .../apply "
                    "(all or some registrations) or .../discard. Unset: applied at once, as a "
                    "script expects; the pages ask for a preview (participants only)")
    confirm_live_changes: bool = Field(
        default=False,
        description="start_list_push: send the changed and withdrawn rows although the "
                    "event is live and the timing system changes a registration by removing "
                    "it (Copernico), which can drop its detections. EVENT_MANAGER and up "
                    "(sync:link:manage); without it those rows are refused as problems")
    plan_fingerprint: str | None = Field(
        default=None, max_length=64,
        description="start_list_push: the fingerprint of the preview the push was confirmed "
                    "from; the push fails, sending nothing, when the plan changed since")

    @model_validator(mode="after")
    def _options_of_its_type(self) -> SyncRequest:
        push = self.sync_type == "start_list_push"
        if self.sync_type != "participants" and (self.full_refresh or self.preview):
            raise ValueError("fullRefresh and preview are options of participants syncs (a "
                             "push sends what changed: preview it with push-preview; a "
                             "results pull reads every result)")
        if not push and (self.confirm_live_changes or self.plan_fingerprint):
            raise ValueError("confirmLiveChanges and planFingerprint are options of "
                             "start_list_push")
        return self


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
    on_course: int = Field(description="A results pull: athletes the timing system has on "
                                       "the course (no result yet): counted, not stored")
    error: str | None = Field(description="One line, scrubbed of secrets")
    retryable: bool | None
    preview: bool = Field(description="Asked to stop for review once read")
    hold_reason: str | None = Field(description="Why the circuit breaker held it (status held)")
    waiting_since: datetime | None = Field(
        description="When it stopped for a person (held or awaiting review)")
    review: str | None = Field(description="What a person decided: applied, confirmed or "
                                           "discarded")
    reviewed_by_label: str | None
    reviewed_at: datetime | None

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
    auto_sync: bool = Field(description="Whether the schedule runs this link")
    next_run_at: datetime | None = Field(description="When the schedule runs it next; null: "
                                         "auto-sync is off")
    schedule: SchedulePlanRead | None = Field(
        description="How the next run was planned: the cadence's phase and interval, and "
                    "whether the provider's request budget stretched it, and why")
    running: SyncRunRead | None = Field(description="The link's active run (one waiting for "
                                                    "a person included); when runs of "
                                                    "several types are active, the first "
                                                    "of ``active``")
    active: list[SyncRunRead] = Field(
        default_factory=list,
        description="Every active run of the link, one per sync type (a timing link may "
                    "push its start list while its results are pulled), in the order "
                    "participants, results_pull, start_list_push, results_publish_prepare")
    waiting: SyncRunRead | None = Field(
        description="The link's run held by the circuit breaker (confirm or discard it) or "
                    "awaiting review (apply or discard it); nothing syncs meanwhile")
    last_success: SyncRunRead | None
    recent_failures: list[SyncRunRead]


class SyncStatusRead(APIModel):
    connection_id: uuid.UUID
    links: list[LinkStatusRead]


def _read(run: SyncRun) -> SyncRunRead:
    return SyncRunRead.model_validate(run)


@router.post("/manual", response_model=SyncRequested, status_code=202)
def request_sync(data: SyncRequest, db: DB, ctx: RequestRuns) -> SyncRequested:
    """A run per linked provider event of the connection (or of ``eventId``), each with its
    job, taken before scheduled runs. A link whose run of the type is queued, running or
    waiting to retry answers with that run (``joined``). The permission is the type's:
    participants sync:run:start, start_list_push and results_pull sync:timing:run (403
    without it). 422 naming ``connectionId`` or ``eventId`` when nothing is linked, or
    ``connectionId`` when the connection's direction does not fit the type."""
    if data.sync_type == "start_list_push":
        requested = timing_push.request_pushes(
            db, ctx, connection_id=data.connection_id, event_id=data.event_id,
            confirm_live=data.confirm_live_changes, plan_fingerprint=data.plan_fingerprint)
    elif data.sync_type == SyncType.RESULTS_PULL.value:
        requested = results_pull.request_results_pull(db, ctx, connection_id=data.connection_id,
                                                      event_id=data.event_id)
    elif data.sync_type == SyncType.RESULTS_PUBLISH_PREPARE.value:
        requested = publications.request_prepare(db, ctx, connection_id=data.connection_id,
                                                 event_id=data.event_id)
    else:
        requested = runs.request_participant_sync(db, ctx, connection_id=data.connection_id,
                                                  event_id=data.event_id,
                                                  full_refresh=data.full_refresh,
                                                  preview=data.preview)
    db.commit()
    return SyncRequested(runs=[RunRequested(run=_read(r.run), job_id=r.run.job_run_id,
                                            joined=r.joined) for r in requested])


@router.get("/status/{connection_id}", response_model=SyncStatusRead)
def sync_status(connection_id: uuid.UUID, db: DB, ctx: ReadRuns) -> SyncStatusRead:
    """Per linked provider event: the run active now (``waiting`` when it is held by the
    circuit breaker or awaits review), the last success, recent failures, and the next
    scheduled run with how it was planned."""
    statuses = runs.connection_status(db, ctx, connection_id=connection_id)
    return SyncStatusRead(connection_id=connection_id, links=[LinkStatusRead(
        link_id=s.link.id, event_id=s.link.event_id, provider_event_ref=s.link.provider_event_ref,
        provider_event_name=s.link.provider_event_name, cursor=s.link.cursor,
        last_success_at=s.link.last_success_at, auto_sync=s.link.auto_sync,
        next_run_at=s.link.next_run_at if s.link.auto_sync else None,
        schedule=schedule.read_plan(s.link),
        running=_read(s.running) if s.running else None,
        active=[_read(r) for r in s.active],
        waiting=_read(s.waiting) if s.waiting else None,
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


# --- between the read and the apply: preview, apply, confirm, discard --------------------


class PreviewFieldRead(APIModel):
    provider: Any = Field(description="The provider's value now")
    synced: Any = Field(description="The value last synced from the provider")
    local: Any = Field(description="racehub's value now (null: a new participant)")


class PreviewItemRead(APIModel):
    seq: int
    source_ref: str = Field(description="The registration (select it by this ref)")
    kind: StagedKind = Field(description="participant: a registration read; withdrawal: one "
                                         "withdrawn at the provider")
    action: PreviewAction
    participant_id: uuid.UUID | None
    name: str | None
    fields: dict[str, PreviewFieldRead] = Field(
        description="The changed fields the participants page shows (names, bib, category, "
                    "registration id, team, status)")
    other_fields: list[str] = Field(
        description="Other changed fields (contact data, birth date), named without values")
    message: str | None
    selected: bool = Field(description="Taken when the run is applied")


class PreviewRead(APIModel):
    run: SyncRunRead
    counts: dict[str, int] = Field(
        description="Registrations per action (created, updated, withdrawn, conflict, "
                    "unchanged) and problems (rows that could not be read)")
    items: list[PreviewItemRead]
    next_cursor: str | None = None


class ApplyRequest(APIModel):
    """All the run's registrations, or only some: the others are not applied and the next
    run reads them again."""

    all: bool = Field(default=False, description="Apply every registration of the preview")
    source_refs: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=100_000,
        description="Apply only these registrations (the preview's sourceRef); registrations "
                    "shown unchanged need no choice and are always taken. To apply none, "
                    "discard the run")

    @model_validator(mode="after")
    def _one_choice(self) -> ApplyRequest:
        if self.all == (self.source_refs is not None):
            raise ValueError("send either \"all\": true or \"sourceRefs\"")
        return self


class RunDecided(APIModel):
    run: SyncRunRead
    job_id: uuid.UUID | None = Field(description="The job applying it (GET /api/jobs/{id}); "
                                                 "null when discarded")


def _refs(data: ApplyRequest | None) -> list[str] | None:
    return None if data is None or data.all else data.source_refs


@router.get("/runs/{sync_run_id}/preview", response_model=PreviewRead)
def read_preview(
    sync_run_id: uuid.UUID, db: DB, ctx: ReadRuns, action: PreviewAction | None = None,
    cursor: str | None = None, limit: Limit = 100,
) -> PreviewRead:
    """What applying a run held by the circuit breaker or awaiting review would do, per
    registration in the order read (``action`` filters; ``cursor`` pages on). 409 for a
    run that does not wait: what it did is its history (GET /api/sync/runs/{id})."""
    run = runs.get_run_or_raise(db, ctx, run_id=sync_run_id)
    if not run.status.is_waiting:
        raise review.RunNotWaiting(f"run {run.id} is {run.status.value}: a preview exists only "
                                   "while a run is held or awaits review")
    items, next_cursor = preview.list_items(db, ctx, run_id=run.id, action=action,
                                            cursor=cursor, limit=limit)
    return PreviewRead(run=_read(run),
                       counts={**preview.counts(db, run.id), "problems": run.problems},
                       items=[PreviewItemRead.model_validate(i) for i in items],
                       next_cursor=next_cursor)


@router.post("/runs/{sync_run_id}/apply", response_model=RunDecided, status_code=202)
def apply_run(sync_run_id: uuid.UUID, data: ApplyRequest, db: DB,
              ctx: StartRuns) -> RunDecided:
    """Apply a run awaiting review, all of it or some registrations, in a job (the run goes
    back to queued). 409 when the run does not await review (a held run is confirmed);
    422 naming the refs the preview does not hold."""
    run = review.apply_reviewed(db, ctx, run_id=sync_run_id, source_refs=_refs(data))
    db.commit()
    return RunDecided(run=_read(run), job_id=run.job_run_id)


@router.post("/runs/{sync_run_id}/confirm", response_model=RunDecided, status_code=202)
def confirm_run(sync_run_id: uuid.UUID, db: DB, ctx: StartRuns,
                data: ApplyRequest | None = None) -> RunDecided:
    """Confirm a run the circuit breaker held: applied in a job, all of it (no body) or some
    registrations. 409 when the run is not held."""
    run = review.confirm_held(db, ctx, run_id=sync_run_id, source_refs=_refs(data))
    db.commit()
    return RunDecided(run=_read(run), job_id=run.job_run_id)


@router.post("/runs/{sync_run_id}/discard", response_model=RunDecided)
def discard_run(sync_run_id: uuid.UUID, db: DB, ctx: StartRuns) -> RunDecided:
    """Apply nothing of a held run or one awaiting review: the link's cursor stays, so the
    next run reads the same changes again. 409 when the run does not wait."""
    run = review.discard(db, ctx, run_id=sync_run_id)
    db.commit()
    return RunDecided(run=_read(run), job_id=None)

