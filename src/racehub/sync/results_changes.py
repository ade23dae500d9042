"""What a results pull changed: the event's results before and after, per participant.

A pull records one SyncChange per result it created or updated, with ``{field: [old,
new]}`` over the fields the results page shows (status, chip and gun time as H:MM:SS.fff,
the three places, the bib the timing system gave, the splits), so a corrected chip time or
a DQ reads old -> new in the run's history. Places are compared after they were computed
again: a DQ moves the finishers behind it up, and their pulled rows say so.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.timing.models import Result
from racehub.timing.results import format_ms

RESULT_FIELDS = ("status", "chip_time", "gun_time", "overall_place", "gender_place",
                 "category_place", "bib", "splits")

Values = dict[str, Any]


def snapshot(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
             participant_ids: set[uuid.UUID] | None = None) -> dict[uuid.UUID, Values]:
    """The event's results (of ``participant_ids`` when given) by EP, as the history shows
    them."""
    stmt = (select(Result.event_participant_id, Result.status, Result.chip_ms, Result.gun_ms,
                   Result.overall_place, Result.gender_place, Result.category_place,
                   Result.file_bib, Result.splits)
            .where(Result.tenant_id == ctx.tenant_id, Result.event_id == event_id))
    if participant_ids is not None:
        if not participant_ids:
            return {}
        stmt = stmt.where(Result.event_participant_id.in_(sorted(participant_ids)))
    return {row[0]: {
        "status": getattr(row[1], "value", row[1]),
        "chip_time": format_ms(row[2]) or None, "gun_time": format_ms(row[3]) or None,
        "overall_place": row[4], "gender_place": row[5], "category_place": row[6],
        "bib": row[7],
        "splits": {name: _signed(ms) for name, ms in sorted((row[8] or {}).items())} or None,
    } for row in db.execute(stmt)}


def _signed(ms: int) -> str:
    """A split as H:MM:SS.fff; a start offset may be below zero (Copernico)."""
    return f"-{format_ms(-ms)}" if ms < 0 else format_ms(ms)


def diff(before: Values | None, after: Values) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` of the fields that differ (a new result: every field set)."""
    old = before or {}
    return {name: [old.get(name), after.get(name)] for name in RESULT_FIELDS
            if old.get(name) != after.get(name)}
