"""JSON API of start list pushes: the preview of what a push would send to one linked timing
event. The push itself is ``POST /api/sync/manual`` with ``syncType`` start_list_push
(runs_api.py); its history is the runs'. Thin: timing_push.py holds the rules."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.core.schemas import APIModel
from racehub.events.models import TimingIdentifier
from racehub.sync import timing_push
from racehub.sync.push_plan import PlannedRow, PushAction

router = APIRouter(prefix="/api/sync", tags=["sync"])

PushTiming = Annotated[TenantContext, Depends(require(Perm.SYNC_TIMING_RUN))]


class PushRowRead(APIModel):
    action: PushAction = Field(description="new, changed, withdrawn (told to the timing "
                                           "system) or problem (not sent: see message)")
    external_id: str | None = Field(description="The id sent: the event's timing identifier "
                                                "(never the bib)")
    participant_id: uuid.UUID | None
    name: str
    bib: str | None
    changes: dict[str, list[Any]] = Field(
        description="A changed row: field -> [last sent, now]")
    field: str | None = Field(description="A problem: the field at fault")
    message: str | None = Field(description="A problem: why it is not sent")


class PushPreviewRead(APIModel):
    link_id: uuid.UUID
    event_id: uuid.UUID
    connection_id: uuid.UUID
    provider: str
    identifier_mode: TimingIdentifier
    identifier_locked: bool = Field(description="The first push (or E11 export) locked it")
    live: bool = Field(description="The event is live (from its start until "
                                   "RACEHUB_TIMING_LIVE_HOURS after)")
    needs_live_confirmation: bool = Field(
        description="The changed and withdrawn rows go only with confirmLiveChanges (an "
                    "event manager): the timing system removes a registration to change it")
    counts: dict[str, int] = Field(description="Rows per action, and unchanged")
    plan_fingerprint: str = Field(description="Send it as planFingerprint with the push: it "
                                              "is refused if the plan changed meanwhile")
    rows: list[PushRowRead]
    next_offset: int | None = None


def _row(row: PlannedRow) -> PushRowRead:
    return PushRowRead(action=row.action, external_id=row.external_id,
                       participant_id=row.participant_id, name=row.name, bib=row.bib,
                       changes=row.changes, field=row.field, message=row.message)


@router.get("/links/{link_id}/push-preview", response_model=PushPreviewRead)
def push_preview(
    link_id: uuid.UUID, db: DB, ctx: PushTiming, action: PushAction | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> PushPreviewRead:
    """What a start list push of this linked timing event would send now: counts, and the
    rows (``action`` filters; ``offset`` pages on). Nothing is sent or written."""
    preview = timing_push.preview_push(db, ctx, link_id=link_id)
    target, plan = preview.target, preview.plan
    rows = plan.of(action) if action else plan.rows
    page = rows[offset:offset + limit]
    return PushPreviewRead(
        link_id=target.link.id, event_id=target.event.id, connection_id=target.connection.id,
        provider=target.connection.provider, identifier_mode=plan.mode,
        identifier_locked=target.event.preferred_timing_identifier_locked_at is not None,
        live=preview.live, needs_live_confirmation=preview.needs_live_confirmation,
        counts=plan.counts, plan_fingerprint=plan.fingerprint, rows=[_row(r) for r in page],
        next_offset=offset + limit if offset + limit < len(rows) else None)
