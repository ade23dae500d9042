"""What a sync run read, as it is staged: JSON shapes of registrations, withdrawals and
row problems, their content hash, and reading the staged rows back in order."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Text, cast, exists, select
from sqlalchemy.orm import Session

from racehub.core.query import any_of
from racehub.db.bulk import JsonText
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


def json_text(value: Any) -> JsonText:
    """``value`` encoded as ``jsonable`` would leave it, for a JSON column's COPY: one
    encoding instead of an encoding, a decoding and the COPY's encoding again."""
    try:
        return JsonText(json.dumps(value, ensure_ascii=False, default=_json_default))
    except (TypeError, ValueError):
        return JsonText(json.dumps(_jsonable(value), ensure_ascii=False))


def json_object(value: Mapping[str, Any]) -> dict[str, Any]:
    out = jsonable(dict(value))
    assert isinstance(out, dict)
    return out


def content_hash(payload: Any) -> str:
    """sha256 of the canonical JSON of what the provider sent."""
    return _json_hash(jsonable(payload))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _json_hash(value: Any) -> str:
    return _sha256(_canonical(value))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_payload(payload: Any) -> JsonText:
    """The payload's canonical JSON (what ``content_hash`` hashes), encoded once.

    A payload is what a provider's reply decoded to (text keys, JSON values): its canonical
    text comes straight from the C encoder, dates and decimals as ``jsonable`` writes them.
    Anything else (a set, a tuple, a key that is not text, which the encoder would sort
    unlike their text) goes through ``jsonable`` first, as ``content_hash`` does.
    """
    try:
        if _plain_keys(payload):
            return JsonText(json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                       default=_json_default))
    except (TypeError, ValueError):
        pass
    return JsonText(_canonical(jsonable(payload)))


def _plain_keys(value: Any) -> bool:
    """Whether every dict in ``value`` has text keys only (encoding a dict with other keys
    sorts them unlike their text, which is how ``jsonable`` leaves them)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            for key, inner in item.items():
                if type(key) is not str:
                    return False
                if type(inner) in _NESTED:
                    pending.append(inner)
        else:
            pending.extend(inner for inner in item if type(inner) in _NESTED)
    return True


_NESTED = (dict, list, tuple)


def participant_data(mapped: MappedParticipant) -> dict[str, Any]:
    """A read participant as staged: its keys, its values through the mapping pipeline
    (the adapter's default mapping, then the connection's rules), its raw payload and the
    payload's content hash (``hash``: computed here, once, where the staging step compares
    it with the synced record's). ``raw`` is the payload's canonical JSON text (encoded
    once, for the hash, and staged as it is: ``encoded``)."""
    participant = mapped.participant
    values: dict[str, Any] = {**mapped.values, "registration_id": (
        None if participant.ref_is_fallback else participant.ref)}
    raw = participant.raw if participant.raw is not None else {
        k: v for k, v in vars(participant).items() if k != "raw"}
    data = json_object({
        "ref": participant.ref, "fallback_ref": participant.fallback_ref,
        "ref_is_fallback": participant.ref_is_fallback, "event_ref": participant.event_ref,
        "person_ref": participant.person_ref, "modified_at": participant.modified_at,
        "values": values,
    })
    data["raw"] = text = canonical_payload(raw)
    data["hash"] = _sha256(text)
    return data


def encoded(data: dict[str, Any]) -> Any:
    """A staged row's ``data`` for its COPY: a ``raw`` already encoded (``JsonText``) goes
    into the row's JSON text as it is, not decoded and encoded again."""
    raw = data.get("raw")
    if not isinstance(raw, JsonText):
        return data
    head = json.dumps({k: v for k, v in data.items() if k != "raw"}, ensure_ascii=False)
    return JsonText(f'{head[:-1]}, "raw": {raw}}}' if head != "{}" else f'{{"raw": {raw}}}')


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


@dataclass(slots=True)
class Staged:
    """A staged registration as the apply step reads it: ``data`` with its ``raw`` payload
    left as the JSON text the database holds (``JsonText``: copied into the synced record
    as it is; ``payload`` decodes it where an object is needed)."""

    seq: int
    data: dict[str, Any]


def payload(data: Mapping[str, Any]) -> Any:
    """The staged row's raw payload as an object (decoded if it was read as text)."""
    raw = data.get("raw")
    return json.loads(raw) if isinstance(raw, JsonText) else raw


# The keys ``participant_data`` stages, read one by one (text unless noted): taking the
# ``raw`` payload out of the staged JSON instead (``data - 'raw'``) makes the database
# rebuild each row's whole JSON, which measured four times its plain read.
_TEXT_KEYS = ("ref", "fallback_ref", "event_ref", "person_ref", "modified_at", "hash")


def staged_participants(db: Session, run_id: uuid.UUID,
                        batch: int = APPLY_BATCH) -> Iterator[list[Staged]]:
    """The run's staged registrations in the order read, ``batch`` at a time, as
    ``staged_rows`` reads them but without ORM objects, and with each raw payload as text
    (``Staged``): the apply step writes the payload into the record, it does not read it."""
    after = 0
    while True:
        # The batch's rows first, then their keys: taken apart in the outer query, the JSON
        # of only the batch's rows is read (a plan sorting the rows left would otherwise
        # take apart every one of them for each batch).
        page = select(StagedRow.seq, StagedRow.data).where(
            StagedRow.run_id == run_id, StagedRow.kind == StagedKind.PARTICIPANT,
            StagedRow.seq > after).order_by(StagedRow.seq).limit(batch).subquery()
        data = page.c.data
        rows = db.execute(select(
            page.c.seq, *[data[key].astext for key in _TEXT_KEYS],
            data["ref_is_fallback"].astext, data["values"], cast(data["raw"], Text))
            .order_by(page.c.seq)).all()
        if not rows:
            return
        out = []
        for row in rows:
            values = dict(zip(_TEXT_KEYS, row[1:7], strict=True))
            values["ref_is_fallback"] = row[7] == "true"
            values["values"] = row[8]
            values["raw"] = JsonText(row[9]) if row[9] is not None else None
            out.append(Staged(row[0], values))
        yield out
        after = rows[-1][0]


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
