"""What a sync run read, as it is staged: JSON shapes of registrations, withdrawals and
row problems, their content hash, and reading the staged rows back in order."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.providers.base import ProviderWithdrawal, RowProblem
from racehub.sync.mapping import MappedParticipant
from racehub.sync.models import StagedKind, StagedRow

APPLY_BATCH = 1000
MESSAGE_MAX = 1000


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def json_object(value: Mapping[str, Any]) -> dict[str, Any]:
    out = jsonable(dict(value))
    assert isinstance(out, dict)
    return out


def content_hash(payload: Any) -> str:
    """sha256 of the canonical JSON of what the provider sent."""
    text = json.dumps(jsonable(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def participant_data(mapped: MappedParticipant) -> dict[str, Any]:
    """A read participant as staged: its keys, its values through the mapping pipeline
    (the adapter's default mapping, then the connection's rules), its raw payload."""
    participant = mapped.participant
    values: dict[str, Any] = {**mapped.values, "registration_id": (
        None if participant.ref_is_fallback else participant.ref)}
    raw = participant.raw if participant.raw is not None else {
        k: v for k, v in vars(participant).items() if k != "raw"}
    return json_object({
        "ref": participant.ref, "fallback_ref": participant.fallback_ref,
        "ref_is_fallback": participant.ref_is_fallback, "event_ref": participant.event_ref,
        "person_ref": participant.person_ref, "modified_at": participant.modified_at,
        "values": values, "raw": raw,
    })


def withdrawal_data(withdrawal: ProviderWithdrawal) -> dict[str, Any]:
    return json_object({"ref": withdrawal.ref, "event_ref": withdrawal.event_ref,
                      "reason": withdrawal.reason, "withdrawn_at": withdrawal.withdrawn_at,
                      "raw": withdrawal.raw})


def problem_data(problem: RowProblem, page: int, what: str) -> dict[str, Any]:
    """A row the adapter could not read: named by its id and field, without its data."""
    return {"what": what, "page": page, "row": problem.row, "ref": problem.ref,
            "field": problem.field, "message": problem.message[:MESSAGE_MAX]}


def as_datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


# --- the task body ---------------------------------------------------------------------------


def staged_rows(db: Session, run_id: uuid.UUID, kind: StagedKind,
                batch: int = APPLY_BATCH) -> Iterator[list[StagedRow]]:
    """The run's staged rows of ``kind`` in the order read, ``batch`` at a time."""
    after = 0
    while True:
        rows = list(db.scalars(select(StagedRow).where(
            StagedRow.run_id == run_id, StagedRow.kind == kind, StagedRow.seq > after)
            .order_by(StagedRow.seq).limit(batch)))
        if not rows:
            return
        yield rows
        after = rows[-1].seq
