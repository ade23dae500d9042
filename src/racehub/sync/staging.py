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

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from racehub.core.query import any_of
from racehub.providers.base import ProviderWithdrawal, RowProblem
from racehub.sync.mapping import MappedParticipant
from racehub.sync.models import CategoryLink, EventLink, StagedKind, StagedRow, SyncedRecord

APPLY_BATCH = 1000
MESSAGE_MAX = 1000


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def jsonable(value: Any) -> Any:
    """``value`` as JSON holds it: dates and times in ISO 8601, decimals and UUIDs as text,
    tuples as lists, keys as text. Done by the json module's C encoder and decoder (a
    payload is staged for every registration read); what it cannot encode (a set, an
    unknown object) goes through ``_jsonable``, which leaves such values as they are."""
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError):
        return _jsonable(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def json_object(value: Mapping[str, Any]) -> dict[str, Any]:
    out = jsonable(dict(value))
    assert isinstance(out, dict)
    return out


def content_hash(payload: Any) -> str:
    """sha256 of the canonical JSON of what the provider sent."""
    return _json_hash(jsonable(payload))


def _json_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def participant_data(mapped: MappedParticipant) -> dict[str, Any]:
    """A read participant as staged: its keys, its values through the mapping pipeline
    (the adapter's default mapping, then the connection's rules), its raw payload and the
    payload's content hash (``hash``: computed here, once, where the staging step compares
    it with the synced record's)."""
    participant = mapped.participant
    values: dict[str, Any] = {**mapped.values, "registration_id": (
        None if participant.ref_is_fallback else participant.ref)}
    raw = participant.raw if participant.raw is not None else {
        k: v for k, v in vars(participant).items() if k != "raw"}
    data = json_object({
        "ref": participant.ref, "fallback_ref": participant.fallback_ref,
        "ref_is_fallback": participant.ref_is_fallback, "event_ref": participant.event_ref,
        "person_ref": participant.person_ref, "modified_at": participant.modified_at,
        "values": values, "raw": raw,
    })
    data["hash"] = _json_hash(data["raw"])  # the raw payload is JSON already: no jsonable
    return data


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


# --- unchanged registrations, dropped while staging ------------------------------------------


class UnchangedFilter:
    """Finds, page by page, the registrations the apply step would count unchanged without
    writing anything, so that they are not staged at all (an unchanged re-sync then stages
    nearly nothing): the synced record under the row's own ref has the same content hash,
    holds exactly the values the apply would sync now (the mapped values and the category
    its CategoryLink gives today), is not withdrawn (a withdrawn one may come back) and has
    its EP. Anything else is staged and decided by the apply step as before.

    A registration read twice in one run counts as read last: a ref staged once is staged
    again, and one dropped earlier and staged later is no longer counted unchanged.
    """

    def __init__(self, db: Session, link: EventLink) -> None:
        self.db, self.link = db, link
        self.unchanged: dict[str, datetime | None] = {}  # ref -> its modification time
        self.staged: set[str] = set()
        self.active = bool(db.scalar(select(exists().where(
            SyncedRecord.tenant_id == link.tenant_id, SyncedRecord.provider == link.provider))))
        self.categories: dict[str, str | None] = {} if not self.active else {
            ref: str(category_id) if category_id else None
            for ref, category_id in db.execute(
                select(CategoryLink.provider_ref, CategoryLink.category_id)
                .where(CategoryLink.link_id == link.id))}

    @property
    def newest(self) -> datetime | None:
        times = [t for t in self.unchanged.values() if t is not None]
        return max(times) if times else None

    def keep(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The page's participant rows (staged ``data``) that must be staged."""
        candidates = [d for d in rows if d["ref"] not in self.staged]
        found = {}
        if self.active and candidates:
            record = SyncedRecord
            found = {ref: (digest, values) for ref, digest, values in self.db.execute(
                select(record.source_ref, record.content_hash, record.synced_values).where(
                    record.tenant_id == self.link.tenant_id,
                    record.provider == self.link.provider,
                    any_of(record.source_ref, [d["ref"] for d in candidates]),
                    record.withdrawn_at.is_(None), record.participant_id.is_not(None)))}
        kept = []
        for data in rows:
            ref = data["ref"]
            known = found.get(ref) if ref not in self.staged else None
            event_ref = data.get("event_ref") or ""
            if known is not None and known[0] == data["hash"] and (
                    not event_ref or event_ref in self.categories) and known[1] == {
                    **data["values"], "category_id": self.categories.get(event_ref)}:
                self.unchanged[ref] = as_datetime(data.get("modified_at"))
                continue
            self.unchanged.pop(ref, None)
            self.staged.add(ref)
            kept.append(data)
        return kept
