"""Business rules for the number and tag inventory.

Every query starts from ``scoped(ctx, Model)``. A race number is identified by its number
type and sequence (never by its printed number), so onboarding the same manufacturer file
twice changes nothing but the state log.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import Session, joinedload

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import any_of, prefix_pattern, scoped
from racehub.db.bulk import copy_rows
from racehub.db.locks import Turn, take_turn
from racehub.inventory.exceptions import (
    NumberTypeNameTaken,
    NumberTypeNotFound,
    RaceNumberNotFound,
)
from racehub.inventory.models import (
    NumberType,
    RaceNumber,
    RaceNumberLogEntry,
    RaceNumberState,
    Tag,
)
from racehub.inventory.schemas import NumberTypeCreate

# --- number types ----------------------------------------------------------------------------


def list_number_types(db: Session, ctx: TenantContext) -> list[NumberType]:
    return list(db.scalars(scoped(ctx, NumberType).order_by(NumberType.name, NumberType.id)))


def get_number_type_or_raise(
    db: Session, ctx: TenantContext, *, number_type_id: uuid.UUID, field: str | None = None
) -> NumberType:
    number_type = db.scalar(scoped(ctx, NumberType).where(NumberType.id == number_type_id))
    if number_type is None:
        raise NumberTypeNotFound(field=field)
    return number_type


def create_number_type(db: Session, ctx: TenantContext, *, data: NumberTypeCreate) -> NumberType:
    taken = db.scalar(scoped(ctx, NumberType).where(NumberType.name == data.name))
    if taken is not None:
        raise NumberTypeNameTaken(f"a number type named {data.name!r} already exists",
                                  field="name")
    number_type = NumberType(tenant_id=ctx.tenant_id, **data.model_dump())
    db.add(number_type)
    db.flush()  # id for the audit entry
    audit.record(db, ctx, action="number_type.create", target_type="number_type",
                 target_id=number_type.id, after=data.model_dump())
    return number_type


# --- race numbers ----------------------------------------------------------------------------


def list_race_numbers(
    db: Session,
    ctx: TenantContext,
    *,
    number_type_id: uuid.UUID | None = None,
    q: str | None = None,
    state: RaceNumberState | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[RaceNumber], str | None]:
    """Race numbers in sequence order; ``q`` matches a number's start, a tag, or a sequence."""
    check_limit(limit)
    stmt = scoped(ctx, RaceNumber).options(joinedload(RaceNumber.number_type),
                                           joinedload(RaceNumber.tag))
    if number_type_id is not None:
        stmt = stmt.where(RaceNumber.number_type_id == number_type_id)
    if state is not None:
        stmt = stmt.where(RaceNumber.state == state)
    if q and q.strip():
        term = q.strip()
        tagged = scoped(ctx, Tag).with_only_columns(Tag.id).where(Tag.code == term)
        conditions: list[ColumnElement[bool]] = [RaceNumber.number.like(prefix_pattern(term)),
                                                 RaceNumber.tag_id.in_(tagged)]
        if term.isdigit() and len(term) < 19:
            conditions.append(RaceNumber.sequence == int(term))
        stmt = stmt.where(or_(*conditions))
    key = SortKey(columns=[RaceNumber.sequence, RaceNumber.id])
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).unique().all()
    return split_page(rows, limit, lambda r: [r.sequence, r.id])


def get_race_number_or_raise(
    db: Session, ctx: TenantContext, *, race_number_id: uuid.UUID
) -> RaceNumber:
    race_number = db.scalar(
        scoped(ctx, RaceNumber).where(RaceNumber.id == race_number_id)
        .options(joinedload(RaceNumber.number_type), joinedload(RaceNumber.tag))
    )
    if race_number is None:
        raise RaceNumberNotFound()
    return race_number


def list_race_number_log(
    db: Session, ctx: TenantContext, *, race_number_id: uuid.UUID
) -> list[RaceNumberLogEntry]:
    return list(db.scalars(
        scoped(ctx, RaceNumberLogEntry)
        .where(RaceNumberLogEntry.race_number_id == race_number_id)
        .order_by(RaceNumberLogEntry.id)
    ))


def _log_entry(
    ctx: TenantContext, race_number_id: uuid.UUID, action: str, *,
    from_state: RaceNumberState | None = None, to_state: RaceNumberState | None = None,
    detail: dict[str, Any] | None = None, job_run_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {"tenant_id": ctx.tenant_id, "race_number_id": race_number_id, "action": action,
            "from_state": from_state, "to_state": to_state, "detail": detail or {},
            "actor_user_id": ctx.user_id, "actor_label": ctx.actor_label,
            "job_run_id": job_run_id}


# --- onboarding manufactured numbers (T06) -----------------------------------------------------

MAX_SEQUENCE = 2**63 - 1
_SEQUENCE = re.compile(r"[0-9]+")


class Outcome(enum.StrEnum):
    """Where a row of a manufacturer's file ends up; T07 shows one section per value."""

    IMPORTED = "imported"
    IMPORTED_WITHOUT_TAG = "imported_without_tag"
    ALREADY_ON_FILE = "already_on_file"
    DUPLICATE_SEQUENCE = "duplicate_sequence"
    OTHER_ISSUE = "other_issue"


@dataclass(frozen=True)
class ManufacturedRow:
    """One row of the file, as text, with what the reader already found wrong with it."""

    row_number: int
    sequence: str
    number: str
    barcode: str
    issues: tuple[str, ...] = ()


@dataclass
class RowResult:
    row_number: int
    outcome: Outcome
    reason: str = ""
    race_number_id: uuid.UUID | None = None
    values: dict[str, str] = field(default_factory=dict)


def _row_problem(row: ManufacturedRow, number_type: NumberType) -> str | None:
    if row.issues:
        return "; ".join(row.issues)
    if not _SEQUENCE.fullmatch(row.sequence):
        shown = row.sequence or "(empty)"
        return f"sequence {shown!r} is not a positive whole number"
    sequence = int(row.sequence)
    if sequence < 1:
        return f"sequence {row.sequence} is not a positive whole number"
    if sequence > MAX_SEQUENCE:
        return f"sequence {row.sequence} is too large"
    if number_type.range_start is not None and sequence < number_type.range_start:
        return (f"sequence {sequence} is below the range of {number_type.name} "
                f"({number_type.range_start}-{number_type.range_end or ''})")
    if number_type.range_end is not None and sequence > number_type.range_end:
        return (f"sequence {sequence} is above the range of {number_type.name} "
                f"({number_type.range_start or 1}-{number_type.range_end})")
    if not row.number:
        return "number is empty"
    if len(row.number) > 40:
        return f"number {row.number[:40]!r}... is longer than 40 characters"
    if len(row.barcode) > 128:
        return f"barcode {row.barcode[:40]!r}... is longer than 128 characters"
    return None


def onboard_manufactured_numbers(
    db: Session,
    ctx: TenantContext,
    *,
    number_type: NumberType,
    rows: Sequence[ManufacturedRow],
    duplicate_sequences: frozenset[int] = frozenset(),
    job_run_id: uuid.UUID | None = None,
) -> list[RowResult]:
    """Create the race numbers (and tags) of one batch of a manufacturer's file.

    Create on miss, no-op on hit: a (number type, sequence) already on file is only noted
    in its state log. ``duplicate_sequences`` are sequences found on several rows of the
    whole file: none of those rows is imported, since the file contradicts itself. A
    barcode already paired to another race number is refused, naming both; a tag is never
    silently moved. Set-based: a few statements per batch, whatever its size.
    """
    results: dict[int, RowResult] = {}
    candidates: list[tuple[ManufacturedRow, int]] = []
    for row in rows:
        values = {"sequence": row.sequence, "number": row.number, "barcode": row.barcode}
        problem = _row_problem(row, number_type)
        if problem:
            results[row.row_number] = RowResult(row.row_number, Outcome.OTHER_ISSUE, problem,
                                                values=values)
        elif int(row.sequence) in duplicate_sequences:
            results[row.row_number] = RowResult(
                row.row_number, Outcome.DUPLICATE_SEQUENCE,
                f"sequence {int(row.sequence)} appears on more than one row of the file",
                values=values)
        else:
            results[row.row_number] = RowResult(row.row_number, Outcome.IMPORTED, values=values)
            candidates.append((row, int(row.sequence)))

    # Another import into the tenant waits for this batch's commit, then finds its rows.
    take_turn(db, Turn.NUMBER_ONBOARDING, ctx.tenant_id)
    existing = {
        r.sequence: r for r in db.scalars(
            scoped(ctx, RaceNumber).options(joinedload(RaceNumber.tag)).where(
                RaceNumber.number_type_id == number_type.id,
                any_of(RaceNumber.sequence, [seq for _, seq in candidates]),
            )
        ).unique()
    }
    barcodes = {row.barcode for row, seq in candidates if row.barcode and seq not in existing}
    tags = {t.code: t for t in db.scalars(scoped(ctx, Tag).where(any_of(Tag.code, barcodes)))}
    paired = {
        r.tag_id: r for r in db.scalars(
            scoped(ctx, RaceNumber).options(joinedload(RaceNumber.number_type))
            .where(any_of(RaceNumber.tag_id, [t.id for t in tags.values()]))
        ).unique()
    }

    log: list[dict[str, Any]] = []
    to_create: list[tuple[ManufacturedRow, int]] = []
    barcode_rows: dict[str, int] = {}
    for row, seq in candidates:
        result = results[row.row_number]
        if seq in existing:
            known = existing[seq]
            result.outcome, result.race_number_id = Outcome.ALREADY_ON_FILE, known.id
            result.reason = f"sequence {seq} is already on file as number {known.number}"
            differs = {k: v for k, v in (("number", row.number), ("barcode", row.barcode))
                       if v and v != (known.number if k == "number" else known.tag_code)}
            log.append(_log_entry(ctx, known.id, "reimported", job_run_id=job_run_id, detail={
                "row": row.row_number, "unchanged": True,
                **({"file_differs": differs} if differs else {})}))
            continue
        if row.barcode:
            tag = tags.get(row.barcode)
            holder = paired.get(tag.id) if tag else None
            if holder is not None:
                result.outcome = Outcome.OTHER_ISSUE
                result.reason = (f"barcode {row.barcode} is already paired to number "
                                 f"{holder.number} (sequence {holder.sequence}, "
                                 f"{holder.number_type.name}); not re-paired to sequence {seq}")
                continue
            if row.barcode in barcode_rows:
                result.outcome = Outcome.OTHER_ISSUE
                result.reason = (f"barcode {row.barcode} is also on row "
                                 f"{barcode_rows[row.barcode]} (sequence of that row wins)")
                continue
            barcode_rows[row.barcode] = row.row_number
        else:
            result.outcome = Outcome.IMPORTED_WITHOUT_TAG
        to_create.append((row, seq))

    # The ids are made here: COPY has no RETURNING.
    tag_ids = {code: tag.id for code, tag in tags.items()}
    new_tags = [{"id": uuid.uuid4(), "tenant_id": ctx.tenant_id, "code": code}
                for code in sorted({row.barcode for row, _ in to_create if row.barcode}
                                   - set(tags))]
    copy_rows(db, Tag.__table__, new_tags)
    tag_ids.update({t["code"]: t["id"] for t in new_tags})

    new_numbers = []
    for row, seq in to_create:
        race_number_id = results[row.row_number].race_number_id = uuid.uuid4()
        new_numbers.append({
            "id": race_number_id, "tenant_id": ctx.tenant_id, "number_type_id": number_type.id,
            "sequence": seq, "number": row.number, "state": RaceNumberState.MANUFACTURED,
            "tag_id": tag_ids.get(row.barcode) if row.barcode else None})
        log.append(_log_entry(ctx, race_number_id, "manufactured", job_run_id=job_run_id,
                              to_state=RaceNumberState.MANUFACTURED,
                              detail={"row": row.row_number, "number": row.number,
                                      "barcode": row.barcode or None}))
    copy_rows(db, RaceNumber.__table__, new_numbers)
    copy_rows(db, RaceNumberLogEntry.__table__, log)
    return [results[row.row_number] for row in rows]



# The fixed schema of T06 and the template the upload page offers (tenant-neutral).
MANUFACTURED_COLUMNS = ("sequence", "number", "barcode")
MANUFACTURED_TEMPLATE = "sequence,number,barcode\r\n1,0001,E28011606000020961D2A771\r\n"
