"""JSON API of what a sync left on an event's participants: conflicts to resolve (keep ours
/ take theirs), the provider registrations behind a participant, a wrong person match to
split. Everyone in the tenant reads; EVENT_MANAGER and up resolve and split."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.events.schemas import ParticipantRead
from racehub.sync import conflicts, people
from racehub.sync.models import ConflictStatus
from racehub.sync.records_schemas import ConflictRead, SourceRead

router = APIRouter(prefix="/api/events/{event_id}", tags=["sync"])

ReadParticipants = Annotated[TenantContext, Depends(require(Perm.EVENTS_PARTICIPANT_READ))]
ManageRecords = Annotated[TenantContext, Depends(require(Perm.SYNC_RECORD_MANAGE))]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/conflicts", response_model=Page[ConflictRead])
def list_conflicts(
    event_id: uuid.UUID,
    db: DB,
    ctx: ReadParticipants,
    status: ConflictStatus = ConflictStatus.OPEN,
    participant_id: Annotated[uuid.UUID | None, Query(alias="participantId")] = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[ConflictRead]:
    """The event's sync conflicts of one status (open by default), newest first."""
    rows, next_cursor = conflicts.list_conflicts(
        db, ctx, event_id=event_id, status=status, participant_id=participant_id,
        cursor=cursor, limit=limit)
    return Page[ConflictRead](items=[ConflictRead.model_validate(c) for c in rows],
                              next_cursor=next_cursor)


@router.post("/conflicts/{conflict_id}/keep", response_model=ConflictRead)
def keep_ours(event_id: uuid.UUID, conflict_id: uuid.UUID, db: DB,
              ctx: ManageRecords) -> ConflictRead:
    """Keep racehub's value; the same provider value is not raised again."""
    conflict = conflicts.keep_ours(db, ctx, event_id=event_id, conflict_id=conflict_id)
    db.commit()
    return ConflictRead.model_validate(conflict)


@router.post("/conflicts/{conflict_id}/take", response_model=ConflictRead)
def take_theirs(event_id: uuid.UUID, conflict_id: uuid.UUID, db: DB,
                ctx: ManageRecords) -> ConflictRead:
    """Write the provider's value; the field follows the provider again."""
    conflict = conflicts.take_theirs(db, ctx, event_id=event_id, conflict_id=conflict_id)
    db.commit()
    return ConflictRead.model_validate(conflict)


@router.get("/participants/{participant_id}/sources", response_model=list[SourceRead])
def list_sources(event_id: uuid.UUID, participant_id: uuid.UUID, db: DB,
                 ctx: ReadParticipants) -> list[SourceRead]:
    """The provider registrations behind the participant and why its person was chosen;
    raw payloads only for sync:payload:read (EVENT_MANAGER and up)."""
    return [SourceRead.of(s) for s in people.list_sources(
        db, ctx, event_id=event_id, participant_id=participant_id)]


@router.post("/participants/{participant_id}/split-person", response_model=ParticipantRead)
def split_person(event_id: uuid.UUID, participant_id: uuid.UUID, db: DB,
                 ctx: ManageRecords) -> ParticipantRead:
    """Give the participant a person of its own: the sync matched it to another
    entry's person wrongly."""
    ep = people.split_person(db, ctx, event_id=event_id, participant_id=participant_id)
    db.commit()
    return ParticipantRead.model_validate(ep)
