"""Conflicts a sync raised on racehub-owned fields, and their resolution.

Keep ours: racehub's value stays, and the record's last-synced value becomes the
provider's, so the same provider value is not raised again (a later change is).
Take theirs: the provider's value is written through the one EP write path, the field
follows the provider again (it leaves the EP's ``local_fields``), and the last-synced
value is the provider's. Both are audited; a conflict is resolved once (409 after).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Conflict
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import scoped
from racehub.events import service as events_service
from racehub.events.models import EventParticipant
from racehub.events.writes import ParticipantWrite, write_participants
from racehub.sync.exceptions import ConflictAlreadyResolved, SyncConflictNotFound
from racehub.sync.models import ConflictStatus, SyncConflict, SyncedRecord


def _now() -> datetime:
    return datetime.now(UTC)


def list_conflicts(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
    status: ConflictStatus | None = ConflictStatus.OPEN, participant_id: uuid.UUID | None = None,
    cursor: str | None = None, limit: int = 50,
) -> tuple[list[SyncConflict], str | None]:
    """One keyset page of the event's conflicts, newest first (``status`` None: all)."""
    check_limit(limit)
    events_service.get_event_or_raise(db, ctx, event_id=event_id)
    stmt = scoped(ctx, SyncConflict).where(SyncConflict.event_id == event_id)
    if status is not None:
        stmt = stmt.where(SyncConflict.status == status)
    if participant_id is not None:
        stmt = stmt.where(SyncConflict.participant_id == participant_id)
    key = SortKey(columns=[SyncConflict.created_at, SyncConflict.id], descending=True)
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    return split_page(rows, limit, lambda c: [c.created_at.isoformat(), c.id])


def _open_conflict(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                   conflict_id: uuid.UUID) -> SyncConflict:
    """The conflict, locked: two resolutions at once wait for each other, the second
    then finds it resolved."""
    conflict = db.scalar(
        scoped(ctx, SyncConflict)
        .where(SyncConflict.id == conflict_id, SyncConflict.event_id == event_id)
        .with_for_update())
    if conflict is None:
        raise SyncConflictNotFound()
    if conflict.status != ConflictStatus.OPEN:
        by = f" by {conflict.resolved_by_label}" if conflict.resolved_by_label else ""
        at = (f" at {conflict.resolved_at.isoformat(timespec='seconds')}"
              if conflict.resolved_at else "")
        raise ConflictAlreadyResolved(
            f"this conflict on {conflict.field} was already resolved "
            f"({conflict.status.value}{by}{at}); nothing was changed")
    return conflict


def _mark_synced(db: Session, ctx: TenantContext, conflict: SyncConflict) -> None:
    """The record's last-synced value of the field := the provider's (P == S next time)."""
    if conflict.record_id is None:
        return
    record = db.scalar(scoped(ctx, SyncedRecord).where(SyncedRecord.id == conflict.record_id)
                       .with_for_update())
    if record is not None:
        record.synced_values = {**(record.synced_values or {}),
                                conflict.field: conflict.provider_value}


def _resolve(db: Session, ctx: TenantContext, conflict: SyncConflict, status: ConflictStatus,
             now: datetime) -> None:
    conflict.status = status
    conflict.resolved_by_user_id = ctx.user_id
    conflict.resolved_by_label = ctx.actor_label
    conflict.resolved_at = now
    db.flush()
    action = "conflict.keep" if status is ConflictStatus.KEPT else "conflict.take"
    audit.record(db, ctx, action=action, target_type="participant",
                 target_id=conflict.participant_id,
                 before={"field": conflict.field, "local_value": conflict.local_value,
                         "provider_value": conflict.provider_value},
                 after={"conflict_id": str(conflict.id), "status": status.value})


def keep_ours(db: Session, ctx: TenantContext, *, event_id: uuid.UUID, conflict_id: uuid.UUID,
              clock: Callable[[], datetime] = _now) -> SyncConflict:
    conflict = _open_conflict(db, ctx, event_id=event_id, conflict_id=conflict_id)
    _mark_synced(db, ctx, conflict)
    _resolve(db, ctx, conflict, ConflictStatus.KEPT, clock())
    return conflict


# JSON holds ids and dates as text; the write path takes them typed.
_FROM_JSON: dict[str, Callable[[Any], Any]] = {
    "category_id": uuid.UUID, "transferred_from_id": uuid.UUID, "birth_date": date.fromisoformat,
}


def take_theirs(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                conflict_id: uuid.UUID, clock: Callable[[], datetime] = _now) -> SyncConflict:
    conflict = _open_conflict(db, ctx, event_id=event_id, conflict_id=conflict_id)
    value = conflict.provider_value
    if value is not None and conflict.field in _FROM_JSON:
        value = _FROM_JSON[conflict.field](value)
    [outcome] = write_participants(
        db, ctx, event_id=event_id,
        rows=[ParticipantWrite(participant_id=conflict.participant_id,
                               values={conflict.field: value})],
        origin=f"sync conflict {conflict.id}: take theirs", mark_local=False)
    if outcome.error is not None:
        # e.g. the provider's bib is held by another active participant of the event.
        raise Conflict(f"the provider's value could not be written: {outcome.error}",
                       field=outcome.error_field)
    db.execute(
        update(EventParticipant)
        .where(EventParticipant.tenant_id == ctx.tenant_id,
               EventParticipant.id == conflict.participant_id)
        .values(local_fields=func.array_remove(EventParticipant.local_fields, conflict.field)))
    _mark_synced(db, ctx, conflict)
    _resolve(db, ctx, conflict, ConflictStatus.TAKEN, clock())
    return conflict
