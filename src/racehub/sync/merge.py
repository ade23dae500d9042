"""The merge rule of a sync: which provider values are written, which become conflicts.

Three values meet for each synced field: the provider's now (P), the value last synced
from it (S, ``SyncedRecord.synced_values``) and racehub's now (L). The provider owns a
field until it is edited in racehub (then it is in ``EventParticipant.local_fields``):

- P empty (None or ""): never blanks L, nothing happens;
- P == S: the provider did not change it since the last sync: a local edit stays;
- the provider owns the field: P is written (unless L already holds it);
- racehub owns it and P != L: a conflict (keep ours / take theirs), L stays.

``decide`` is pure; ``record_conflicts`` stores what it found, one open conflict per EP
and field (a newer provider value updates the open one in place).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, func, literal_column, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.events.writes import PERSON_FIELDS
from racehub.sync.models import ConflictStatus, SyncConflict

_CONFLICTS: Table = SyncConflict.__table__  # type: ignore[assignment]

SYNCED_FIELDS: tuple[str, ...] = PERSON_FIELDS + ("bib", "category_id", "team",
                                                  "registration_id")


@dataclass
class MergeDecision:
    writes: dict[str, Any] = field(default_factory=dict)  # provider-owned changes to write
    conflicts: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # (local, provider)


def as_json(value: Any) -> Any:
    """A value as JSON stores it (synced_values, conflicts): ids and dates as text, enums
    as their value. Values are compared in this form, so a UUID and its text are equal."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | date | datetime):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    return value


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def decide(provider: Mapping[str, Any], last_synced: Mapping[str, Any],
           local: Mapping[str, Any], owned: Collection[str]) -> MergeDecision:
    """What to do with one registration's synced fields (see the module's docstring).

    Only ``SYNCED_FIELDS`` present in ``provider`` are considered; a field missing from
    ``last_synced`` was never synced (S is None). Writes carry the provider's value as
    given; a conflict carries (L, P) as given.
    """
    decision = MergeDecision()
    for name in SYNCED_FIELDS:
        if name not in provider:
            continue
        theirs = provider[name]
        if is_empty(theirs):
            continue
        theirs_json = as_json(theirs)
        if theirs_json == as_json(last_synced.get(name)):
            continue
        ours = local.get(name)
        if theirs_json == as_json(ours):
            continue  # racehub already holds it: nothing to write, nothing to resolve
        if name in owned:
            decision.conflicts[name] = (ours, theirs)
        else:
            decision.writes[name] = theirs
    return decision


def record_conflicts(db: Session, ctx: TenantContext, *, run_id: uuid.UUID | None,
                     event_id: uuid.UUID, participant_id: uuid.UUID,
                     record_id: uuid.UUID | None,
                     conflicts: Mapping[str, tuple[Any, Any]]) -> int:
    """Upsert one OPEN conflict per (EP, field) of ``conflicts`` (field -> (local,
    provider)); returns how many are new or changed. An open conflict whose values did
    not change is left as it was (its run stays the one that raised it), so a re-sync
    of an unchanged provider value counts 0. The caller writes its own SyncChange row
    (action ``conflict``)."""
    if not conflicts:
        return 0
    rows = [{"id": uuid.uuid4(), "tenant_id": ctx.tenant_id, "event_id": event_id,
             "participant_id": participant_id, "record_id": record_id, "run_id": run_id,
             "field": name, "local_value": as_json(ours), "provider_value": as_json(theirs),
             "status": ConflictStatus.OPEN}
            for name, (ours, theirs) in sorted(conflicts.items())]
    table = _CONFLICTS
    upsert = insert(table).values(rows)
    excluded = upsert.excluded
    stmt: Any = upsert.on_conflict_do_update(
        index_elements=[table.c.participant_id, table.c.field],
        index_where=text("status = 'open'"),
        set_={"local_value": excluded.local_value, "provider_value": excluded.provider_value,
              "run_id": excluded.run_id, "record_id": excluded.record_id,
              "updated_at": func.now()},
        # Only a real change is written (and counted).
        where=(table.c.local_value.is_distinct_from(excluded.local_value)
               | table.c.provider_value.is_distinct_from(excluded.provider_value)),
    ).returning(literal_column("1"))
    return len(db.execute(stmt).all())
