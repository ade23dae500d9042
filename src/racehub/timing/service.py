"""E11: the timing-system CSV export, its pre-flight check and its audit trail.

The export is read from one server-side cursor in ``batch_size`` partitions, so memory
stays flat however big the event is; nothing below builds a list of all rows. Formula
neutralization and the age are computed in the SELECT itself, so the benchmark's
``COPY (same SELECT) TO STDOUT`` baseline does the same work.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import io
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Conflict, Invalid
from racehub.core.spreadsheet import FORMULA_TRIGGERS as FORMULA_TRIGGERS  # re-exported
from racehub.core.spreadsheet import neutralize as neutralize  # re-exported
from racehub.core.spreadsheet import neutralized
from racehub.events import service as events_service
from racehub.events.models import (
    BIB_LENGTH_KEY,
    BIB_MISSING_KEY,
    BIB_TEXT_KEY,
    PERSON_FIRST_NAME_KEY,
    PERSON_LAST_NAME_KEY,
    Category,
    Event,
    EventParticipant,
    ParticipantStatus,
    Person,
    TimingIdentifier,
)

COLUMNS = ["ExternalReferenceID", "Number", "FirstName", "LastName", "Name", "Gender",
           "DateOfBirth", "Age", "Category", "Team", "City", "Region", "Country", "Email"]
FORMATS = ("csv",)
DEFAULT_BATCH_SIZE = 2000
MISSING_LIST_LIMIT = 500  # the pre-flight lists this many; its count covers all
# Formula neutralization is shared with the list exports (core/spreadsheet.py).
_neutralized = neutralized


@dataclass(frozen=True)
class MissingId:
    id: uuid.UUID
    name: str
    bib: str | None

    @property
    def edit_url(self) -> str:
        return f"/participants/{self.id}/edit"


@dataclass(frozen=True)
class Preflight:
    event: Event
    mode: TimingIdentifier
    locked_at: datetime | None
    row_count: int
    missing_count: int  # EPs whose ExternalReferenceID would be blank (REGISTRATION_ID mode)
    missing: list[MissingId]


@dataclass
class ExportPlan:
    """What a started export streams; ``rows`` counts the rows handed to the client."""

    event_id: uuid.UUID
    event_name: str
    mode: TimingIdentifier
    event_date: date
    accepted_missing_ids: bool
    missing_count: int
    locked_now: bool
    rows: int = 0


def event_date(event: Event) -> date:
    """The event's calendar day where it takes place (ages are counted on that day)."""
    return event.start_at.astimezone(ZoneInfo(event.timezone)).date()


def _active(ctx: TenantContext, event_id: uuid.UUID) -> list[Any]:
    ep = EventParticipant
    return [ep.tenant_id == ctx.tenant_id, ep.event_id == event_id,
            ep.status == ParticipantStatus.ACTIVE]


def _missing_registration_condition() -> Any:
    reg = EventParticipant.registration_id
    return or_(reg.is_(None), func.btrim(reg) == "")


def preflight(db: Session, ctx: TenantContext, *, event_id: uuid.UUID) -> Preflight:
    """Mode, lock, row count and (REGISTRATION_ID mode) the EPs with no registration id."""
    event = events_service.get_event_or_raise(db, ctx, event_id=event_id)
    ep = EventParticipant
    row_count = db.scalar(select(func.count()).select_from(ep).where(*_active(ctx, event_id)))
    missing: list[MissingId] = []
    missing_count = 0
    mode = TimingIdentifier(event.preferred_timing_identifier)
    if mode is TimingIdentifier.REGISTRATION_ID:
        where = [*_active(ctx, event_id), _missing_registration_condition()]
        missing_count = db.scalar(select(func.count()).select_from(ep).where(*where)) or 0
        rows = db.execute(
            select(ep.id, Person.first_name, Person.last_name, ep.bib)
            .join(Person, Person.id == ep.person_id).where(*where)
            .order_by(BIB_MISSING_KEY, BIB_LENGTH_KEY, BIB_TEXT_KEY, PERSON_LAST_NAME_KEY,
                      PERSON_FIRST_NAME_KEY, ep.id)
            .limit(MISSING_LIST_LIMIT)
        ).all()
        missing = [MissingId(id=r.id, name=f"{r.first_name} {r.last_name}", bib=r.bib)
                   for r in rows]
    return Preflight(event=event, mode=mode,
                     locked_at=event.preferred_timing_identifier_locked_at,
                     row_count=row_count or 0, missing_count=missing_count, missing=missing)


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise Invalid(f"format {fmt!r} is not supported; the timing export is csv only "
                      "(format=csv)", field="format")


def start_export(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, accept_missing_ids: bool = False,
) -> ExportPlan:
    """Check, lock the identifier on first use, and record that an export started.

    The caller commits before streaming: the lock then holds even if the download is
    cut off, and the "started" entry is a trace of it.
    """
    event = events_service.get_event_or_raise(db, ctx, event_id=event_id)
    db.refresh(event, with_for_update=True)  # two first exports: one sets the lock
    check = preflight(db, ctx, event_id=event_id)
    if check.missing_count and not accept_missing_ids:
        raise Conflict(
            f"{check.missing_count} participant(s) have no registration id, so their "
            "ExternalReferenceID would be blank and their results will not match when "
            "imported back. Assign their registration ids, switch the identifier mode, "
            "or export anyway with acceptMissingIds=1.", field="acceptMissingIds")
    locked_now = events_service.lock_timing_identifier(db, ctx, event=event)
    plan = ExportPlan(event_id=event.id, event_name=event.name,
                      mode=check.mode, event_date=event_date(event),
                      accepted_missing_ids=bool(accept_missing_ids and check.missing_count),
                      missing_count=check.missing_count, locked_now=locked_now)
    audit.record(db, ctx, action="event.timing_export_started", target_type="event",
                 target_id=event.id, after={**_audit_fields(ctx, plan),
                                            "expected_rows": check.row_count,
                                            "locked_now": locked_now})
    return plan


def _audit_fields(ctx: TenantContext, plan: ExportPlan) -> dict[str, Any]:
    return {"event_id": str(plan.event_id), "identifier_mode": plan.mode.value,
            "user_id": str(ctx.user_id) if ctx.user_id else None,
            "token_id": str(ctx.token_id) if ctx.token_id else None,
            "accepted_missing_ids": plan.accepted_missing_ids,
            "missing_ids": plan.missing_count}


def record_export(db: Session, ctx: TenantContext, *, plan: ExportPlan, completed: bool) -> None:
    """The export's audit entry, once the stream ended: ``row_count`` is what was sent."""
    audit.record(db, ctx, action="event.timing_export", target_type="event",
                 target_id=plan.event_id,
                 after={**_audit_fields(ctx, plan), "row_count": plan.rows,
                        "completed": completed})


def export_query(ctx: TenantContext, *, event_id: uuid.UUID, mode: TimingIdentifier,
                 on_date: date) -> Select[Any]:
    """The export's rows, already in CSV column order, neutralized, numeric-aware bib order."""
    ep, p = EventParticipant, Person
    external_id = {
        TimingIdentifier.EPID: cast(ep.id, String),
        TimingIdentifier.PERSON_ID: cast(ep.person_id, String),
        TimingIdentifier.REGISTRATION_ID: ep.registration_id,
    }[mode]
    age = cast(func.date_part("year", func.age(bindparam("on_date", on_date, type_=Date),
                                               p.birth_date)), Integer)
    name = p.first_name + literal_column("' '") + p.last_name
    n = _neutralized
    return (
        select(n(external_id), n(ep.bib), n(p.first_name), n(p.last_name), n(name),
               cast(p.gender, String), func.to_char(p.birth_date, "YYYY-MM-DD"), age,
               n(Category.name), n(ep.team), n(p.city), n(p.region), n(p.country),
               n(p.email))
        .select_from(ep)
        .join(p, p.id == ep.person_id)
        .outerjoin(Category, Category.id == ep.category_id)
        .where(*_active(ctx, event_id))
        .order_by(BIB_MISSING_KEY, BIB_LENGTH_KEY, BIB_TEXT_KEY, PERSON_LAST_NAME_KEY,
                  PERSON_FIRST_NAME_KEY, ep.id)
    )


def export_csv(
    db: Session, ctx: TenantContext, *, plan: ExportPlan, bom: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Generator[str, None, None]:
    """The CSV, one chunk for the header and one per batch of the server-side cursor.

    ``plan.rows`` grows only once a chunk was taken by the consumer (the generator resumed),
    so after the stream ends it is the number of rows actually sent.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(COLUMNS)
    yield ("\ufeff" if bom else "") + flush()
    stmt = export_query(ctx, event_id=plan.event_id, mode=plan.mode, on_date=plan.event_date)
    for rows in _server_side_batches(db, stmt, batch_size):
        writer.writerows(rows)
        yield flush()
        plan.rows += len(rows)


def _server_side_batches(db: Session, stmt: Select[Any], batch_size: int) -> Iterator[list[Any]]:
    """``stmt``'s rows, ``batch_size`` at a time, from a named (server-side) cursor.

    The cursor is psycopg's own, opened on the session's connection and transaction: the
    rows are plain tuples, which skips SQLAlchemy's per-row result processing (a third of
    the export's time at 100k rows). Every column of the export SELECT is text or an
    integer, so nothing needed that processing.
    """
    compiled = stmt.compile(dialect=db.get_bind().dialect)
    # Bind values as the driver takes them: enums by value (psycopg would send the name).
    params = {key: value.value if isinstance(value, enum.Enum) else value
              for key, value in compiled.params.items()}
    driver_connection = db.connection().connection.driver_connection
    cursor = driver_connection.cursor(name=f"timing_export_{uuid.uuid4().hex}")
    try:
        cursor.execute(str(compiled), params)
        while rows := cursor.fetchmany(batch_size):
            yield rows
    finally:
        # An aborted transaction has closed the cursor already.
        with contextlib.suppress(psycopg.Error):
            cursor.close()
