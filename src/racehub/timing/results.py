"""E08: the rules of result import and of the results page.

A result file's row is parsed (times, status, places, splits), resolved to an EP through
the event's identifier mode (the ExternalReferenceID E11 wrote) and sorted into a bucket:

- resolved: stored (new, updated or unchanged); if the file's Number is not the EP's bib
  it is stored all the same, in the "bib mismatch" bucket with a warning;
- not resolved: "unmatched"; an active EP holding the row's Number is offered as a
  suggestion (the row's ``target_id``), never applied;
- an ExternalReferenceID on several rows: none of them is stored ("duplicate");
- a cell that cannot be read: "invalid", naming the column.

Places the file lacks are computed once the last row is stored (``recompute_places``).
"""

from __future__ import annotations

import enum
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session, joinedload

from racehub.core.context import TenantContext
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import any_of, contains_pattern, scoped
from racehub.core.spreadsheet import FORMULA_TRIGGERS
from racehub.db.bulk import copy_rows
from racehub.db.locks import Turn, take_turn
from racehub.db.statistics import refresh_while_growing
from racehub.events import service as events_service
from racehub.events.models import (
    BIB_LENGTH_KEY,
    BIB_MISSING_KEY,
    BIB_TEXT_KEY,
    Category,
    Event,
    EventParticipant,
    Gender,
    ParticipantStatus,
    Person,
    TimingIdentifier,
    fold,
)
from racehub.imports.models import Import
from racehub.timing.models import Result, ResultStatus

# --- the file's fields ---------------------------------------------------------------------

EXTERNAL_ID = "ExternalReferenceID"
NUMBER = "Number"
CHIP_TIME = "ChipTime"
GUN_TIME = "GunTime"
STATUS = "Status"
OVERALL_PLACE = "OverallPlace"
GENDER_PLACE = "GenderPlace"
CATEGORY_PLACE = "CategoryPlace"

REQUIRED_COLUMNS = (EXTERNAL_ID, NUMBER)
OPTIONAL_COLUMNS = (CHIP_TIME, GUN_TIME, STATUS, OVERALL_PLACE, GENDER_PLACE, CATEGORY_PLACE)
# Other spellings timing systems use; matching ignores case, spaces, "_" and "-".
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    EXTERNAL_ID: ("External Reference ID", "ExternalRefID", "ExtRefID", "ExternalID",
                  "Reference ID"),
    NUMBER: ("Bib", "Bib Number", "BibNo", "Race Number", "Dossard"),
    CHIP_TIME: ("Chip", "Net Time", "NetTime", "Chip Time"),
    GUN_TIME: ("Gun", "Gun Time", "Clock Time", "Official Time", "Brutto"),
    STATUS: ("Result Status", "State"),
    OVERALL_PLACE: ("Overall", "Place", "Overall Place", "Pos", "Position", "Rank"),
    GENDER_PLACE: ("Gender Place", "Sex Place", "Gender Rank", "Gender Pos", "SexPlace"),
    CATEGORY_PLACE: ("Category Place", "Cat Place", "Category Rank", "Division Place",
                     "AG Place", "Age Group Place"),
}


class Outcome(enum.StrEnum):
    IMPORTED = "imported"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    BIB_MISMATCH = "bib_mismatch"
    UNMATCHED = "unmatched"
    DUPLICATE = "duplicate"
    INVALID = "invalid"


class RowError(ValueError):
    """A cell that cannot be read; the message names the column."""


def unneutralize(value: str) -> str:
    """Undo E11's formula neutralization: the export put one ' before a cell starting with
    = + - @ tab or CR; the timing system sends it back as it got it."""
    if value[:1] == "'" and value[1:2] in FORMULA_TRIGGERS:
        return value[1:]
    return value


_HMS = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)(?:[.,](\d{1,6}))?$")


def parse_time(value: str, column: str) -> int | None:
    """``H:MM:SS``, ``H:MM:SS.fff`` (or ``,fff``) or whole milliseconds -> milliseconds."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return int(value)
    match = _HMS.match(value)
    if not match:
        raise RowError(f"{column} {value!r} is not a time: write H:MM:SS(.fff) or "
                       "milliseconds")
    hours, minutes, seconds, fraction = match.groups()
    micros = int((fraction or "").ljust(6, "0"))
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + round(micros / 1000)


def format_ms(ms: int | None) -> str:
    """Milliseconds as ``H:MM:SS.fff`` (the millis left out when zero); blank for None."""
    if ms is None:
        return ""
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text_ = f"{hours}:{minutes:02}:{seconds:02}"
    return f"{text_}.{millis:03}" if millis else text_


_STATUSES = {
    "finished": ResultStatus.FINISHED, "finish": ResultStatus.FINISHED,
    "fin": ResultStatus.FINISHED, "ok": ResultStatus.FINISHED, "f": ResultStatus.FINISHED,
    "dnf": ResultStatus.DNF, "didnotfinish": ResultStatus.DNF,
    "dns": ResultStatus.DNS, "didnotstart": ResultStatus.DNS,
    "dq": ResultStatus.DQ, "dsq": ResultStatus.DQ, "disqualified": ResultStatus.DQ,
}


def parse_status(value: str, *, has_time: bool) -> ResultStatus:
    key = re.sub(r"[\s_\-]+", "", value).casefold()
    if not key:
        if has_time:
            return ResultStatus.FINISHED
        raise RowError(f"{STATUS} is blank and the row has no {CHIP_TIME} or {GUN_TIME}")
    if key not in _STATUSES:
        raise RowError(f"{STATUS} {value!r} is not one of finished, DNF, DNS, DQ")
    return _STATUSES[key]


def parse_place(value: str, column: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1 or int(value) > 2_000_000_000:
        raise RowError(f"{column} {value!r} is not a place (a whole number from 1)")
    return int(value)


@dataclass(frozen=True)
class ParsedRow:
    row_number: int
    external_id: str
    number: str
    status: ResultStatus
    chip_ms: int | None
    gun_ms: int | None
    overall_place: int | None
    gender_place: int | None
    category_place: int | None
    splits: dict[str, int] = field(default_factory=dict)


def external_key(value: str) -> str:
    """The form ids are compared in: unneutralized, and UUIDs lower-cased."""
    value = unneutralize(value.strip())
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def parse_row(row_number: int, values: dict[str, str], extras: dict[str, str],
              issues: Iterable[str] = ()) -> ParsedRow:
    """One row of the file, or RowError naming its column."""
    for issue in issues:
        raise RowError(issue)
    external_id = external_key(values.get(EXTERNAL_ID, ""))
    number = unneutralize(values.get(NUMBER, "").strip())
    if len(number) > 20:
        raise RowError(f"{NUMBER} {number[:30]!r} is longer than 20 characters")
    chip = parse_time(values.get(CHIP_TIME, ""), CHIP_TIME)
    gun = parse_time(values.get(GUN_TIME, ""), GUN_TIME)
    status = parse_status(values.get(STATUS, ""), has_time=chip is not None or gun is not None)
    if status is ResultStatus.FINISHED and chip is None and gun is None:
        raise RowError(f"a finished result needs a {CHIP_TIME} or a {GUN_TIME}")
    # Splits: the unmapped columns whose cell is a clock time (the export's own columns,
    # such as Age or Name, never are).
    splits = {}
    for name, cell in extras.items():
        cell = cell.strip()
        if _HMS.match(cell):
            splits[name[:60]] = parse_time(cell, name) or 0
    return ParsedRow(
        row_number=row_number, external_id=external_id, number=number, status=status,
        chip_ms=chip, gun_ms=gun,
        overall_place=parse_place(values.get(OVERALL_PLACE, ""), OVERALL_PLACE),
        gender_place=parse_place(values.get(GENDER_PLACE, ""), GENDER_PLACE),
        category_place=parse_place(values.get(CATEGORY_PLACE, ""), CATEGORY_PLACE),
        splits=splits,
    )


def duplicate_ids(external_ids: Iterable[str]) -> list[str]:
    """ExternalReferenceIDs on more than one row (blank ones are not ids)."""
    seen = Counter(external_key(v) for v in external_ids)
    return sorted(k for k, n in seen.items() if n > 1 and k)


def same_bib(file_number: str, bib: str | None) -> bool:
    """Bibs compare as text, and as numbers when both are digits: a spreadsheet turns
    "007" into 7."""
    if bib is None:
        return not file_number
    if file_number == bib:
        return True
    return file_number.isdigit() and bib.isdigit() and int(file_number) == int(bib)


# --- storing a batch -------------------------------------------------------------------------


@dataclass(frozen=True)
class RowResult:
    row_number: int
    outcome: Outcome
    reason: str = ""
    target_id: uuid.UUID | None = None  # the result's EP, or the suggested EP if unmatched


@dataclass(frozen=True)
class _Candidate:
    id: uuid.UUID
    bib: str | None
    name: str


def _mode_column(mode: TimingIdentifier) -> Any:
    return {TimingIdentifier.EPID: EventParticipant.id,
            TimingIdentifier.PERSON_ID: EventParticipant.person_id,
            TimingIdentifier.REGISTRATION_ID: EventParticipant.registration_id}[mode]


def _lookup_keys(mode: TimingIdentifier, keys: set[str]) -> list[Any]:
    if mode is TimingIdentifier.REGISTRATION_ID:
        return sorted(k for k in keys if k)
    found = []
    for key in keys:
        try:
            found.append(uuid.UUID(key))
        except ValueError:
            continue  # not a UUID: can name no EP or person in this mode
    return found


def _active_eps(ctx: TenantContext, event_id: uuid.UUID) -> Any:
    ep = EventParticipant
    return (select(ep.id, ep.bib, ep.person_id, ep.registration_id, Person.first_name,
                   Person.last_name)
            .join(Person, Person.id == ep.person_id)
            .where(ep.tenant_id == ctx.tenant_id, ep.event_id == event_id,
                   ep.status == ParticipantStatus.ACTIVE))


def resolve(db: Session, ctx: TenantContext, *, event_id: uuid.UUID, mode: TimingIdentifier,
            external_ids: set[str]) -> dict[str, list[_Candidate]]:
    """ExternalReferenceID -> the active EPs of the event it names in ``mode``."""
    keys = _lookup_keys(mode, external_ids)
    if not keys:
        return {}
    column = _mode_column(mode)
    found: dict[str, list[_Candidate]] = {}
    for row in db.execute(_active_eps(ctx, event_id).where(any_of(column, keys))):
        key = {TimingIdentifier.EPID: str(row.id), TimingIdentifier.PERSON_ID: str(row.person_id),
               TimingIdentifier.REGISTRATION_ID: row.registration_id}[mode]
        found.setdefault(key, []).append(
            _Candidate(row.id, row.bib, f"{row.first_name} {row.last_name}"))
    return found


def _by_bib(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
            numbers: set[str]) -> dict[str, _Candidate]:
    if not numbers:
        return {}
    rows = db.execute(_active_eps(ctx, event_id).where(any_of(EventParticipant.bib, numbers)))
    return {r.bib: _Candidate(r.id, r.bib, f"{r.first_name} {r.last_name}") for r in rows}


_COMPARED = ("status", "chip_ms", "gun_ms", "file_bib", "file_overall_place",
             "file_gender_place", "file_category_place", "splits", "warning")


def store_rows(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, mode: TimingIdentifier,
    rows: list[ParsedRow], duplicates: frozenset[str], import_id: uuid.UUID | None,
    source: str = "the file", blank_reasons: Mapping[int, str] | None = None,
) -> list[RowResult]:
    """Resolve and store one batch of parsed rows; one outcome per row, in row order.

    ``source`` names where the rows come from in the reasons ("the file"; a results pull
    names the timing system); ``blank_reasons`` says, per row number, why a row has no
    ExternalReferenceID (a pull whose provider row names no id racehub pushed)."""
    # Another import into the event waits for this batch's commit, then finds its results.
    take_turn(db, Turn.RESULTS_IMPORT, event_id)
    resolved = resolve(db, ctx, event_id=event_id, mode=mode,
                       external_ids={r.external_id for r in rows if r.external_id not in
                                     duplicates})
    unmatched = [r for r in rows if r.external_id not in duplicates
                 and len(resolved.get(r.external_id, ())) != 1]
    suggestions = _by_bib(db, ctx, event_id=event_id,
                          numbers={r.number for r in unmatched if r.number})
    matched = {r.row_number: resolved[r.external_id][0] for r in rows
               if r.external_id not in duplicates and len(resolved.get(r.external_id, ())) == 1}
    existing = {res.event_participant_id: res for res in db.scalars(
        scoped(ctx, Result).where(any_of(Result.event_participant_id,
                                         [c.id for c in matched.values()])))} if matched else {}

    outcomes: list[RowResult] = []
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for row in rows:
        if row.external_id in duplicates:
            outcomes.append(RowResult(row.row_number, Outcome.DUPLICATE,
                                      f"{EXTERNAL_ID} {row.external_id} is on several rows of "
                                      f"{source}: none of them was imported"))
            continue
        ep = matched.get(row.row_number)
        if ep is None:
            outcomes.append(_unmatched(row, mode, resolved.get(row.external_id, []),
                                       suggestions.get(row.number),
                                       blank=(blank_reasons or {}).get(row.row_number)))
            continue
        mismatch = "" if same_bib(row.number, ep.bib) else (
            f"bib mismatch: {source} says {NUMBER} {row.number or '(blank)'}, "
            f"{ep.name}'s bib is {ep.bib or '(none)'}")
        unplaced = _place_of_a_non_finisher(row, source)
        warning = "; ".join(w for w in (mismatch, unplaced) if w)
        values = {"status": row.status, "chip_ms": row.chip_ms, "gun_ms": row.gun_ms,
                  "file_bib": row.number or None, "file_overall_place": row.overall_place,
                  "file_gender_place": row.gender_place,
                  "file_category_place": row.category_place, "splits": row.splits,
                  "warning": warning}
        before = existing.get(ep.id)
        if before is None:
            inserts.append({"event_participant_id": ep.id, **values})
            outcome = Outcome.IMPORTED
        elif any(getattr(before, k) != v for k, v in values.items()):
            updates.append({"id": before.id, "import_id": import_id, **values})
            outcome = Outcome.UPDATED
        else:
            outcome = Outcome.UNCHANGED
        if mismatch:
            outcomes.append(RowResult(row.row_number, Outcome.BIB_MISMATCH,
                                      f"{warning} (imported)", ep.id))
        else:
            outcomes.append(RowResult(row.row_number, outcome, unplaced, target_id=ep.id))
    if inserts:
        _insert_results(db, ctx, event_id=event_id, import_id=import_id, rows=inserts)
    if updates:
        # ORM bulk UPDATE by primary key: one executemany.
        db.execute(update(Result), updates)
    return outcomes


def _place_of_a_non_finisher(row: ParsedRow, source: str = "the file") -> str:
    """The warning for a DNF, DNS or DQ row the file gives a place: it is kept as the
    file's (``file_*_place``) but never ranked, and finishers placed after it move up."""
    if row.status is ResultStatus.FINISHED:
        return ""
    given = [f"{column} {place}" for column, place in (
        (OVERALL_PLACE, row.overall_place), (GENDER_PLACE, row.gender_place),
        (CATEGORY_PLACE, row.category_place)) if place is not None]
    if not given:
        return ""
    return (f"{row.status.value.upper()} with {', '.join(given)} in {source}: only finishers "
            "are placed, so it has no place and the finishers after it move up")


def _insert_results(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                    import_id: uuid.UUID | None, rows: list[dict[str, Any]]) -> None:
    # One COPY stream per batch (a row-by-row executemany spent most of an import's time in
    # round trips; arrays through unnest then most of it in adapting the arrays).
    copy_rows(db, Result.__table__, [
        {"id": uuid.uuid4(), "tenant_id": ctx.tenant_id, "event_id": event_id,
         "import_id": import_id, **row} for row in rows])


def _unmatched(row: ParsedRow, mode: TimingIdentifier, candidates: list[_Candidate],
               suggestion: _Candidate | None, *, blank: str | None = None) -> RowResult:
    if not row.external_id:
        why = blank or f"{EXTERNAL_ID} is blank"
    elif candidates:
        why = (f"{EXTERNAL_ID} {row.external_id} names {len(candidates)} participants of the "
               f"event in {mode.value} mode")
    else:
        why = (f"no active participant of the event has {EXTERNAL_ID} {row.external_id} in "
               f"{mode.value} mode")
    if suggestion is None:
        return RowResult(row.row_number, Outcome.UNMATCHED, f"{why}; not imported")
    return RowResult(row.row_number, Outcome.UNMATCHED,
                     f"{why}; not imported. Suggestion: {NUMBER} {row.number} is the bib of "
                     f"{suggestion.name} (check, then fix the id in the timing system)",
                     suggestion.id)


# --- places ----------------------------------------------------------------------------------

_RECOMPUTE = text("""
WITH scope AS (
    SELECT r.id, r.status, coalesce(r.chip_ms, r.gun_ms) AS ms, ep.category_id,
           CASE WHEN p.gender IN ('M', 'F', 'X') THEN p.gender END AS gender,
           r.file_overall_place, r.file_gender_place, r.file_category_place
      FROM results r
      JOIN event_participants ep ON ep.id = r.event_participant_id
      JOIN persons p ON p.id = ep.person_id
     WHERE r.tenant_id = :tenant_id AND r.event_id = :event_id
), ranked AS (
    SELECT id,
           rank() OVER (ORDER BY ms) AS overall,
           CASE WHEN gender IS NOT NULL THEN rank() OVER (
               PARTITION BY category_id, gender ORDER BY ms) END AS by_gender,
           CASE WHEN category_id IS NOT NULL THEN rank() OVER (
               PARTITION BY category_id ORDER BY ms) END AS by_category
      FROM scope
     WHERE status = 'finished' AND ms IS NOT NULL
), filed AS (
    -- A place the file gives a finisher, less the places it gave DNF/DNS/DQ rows ahead of
    -- it (those rows are not placed): 1, 2 (DNF), 3 reads 1, -, 2.
    SELECT id,
           file_overall_place - count(*) FILTER (WHERE status <> 'finished') OVER (
               ORDER BY file_overall_place
               RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS overall,
           file_gender_place - count(*) FILTER (WHERE status <> 'finished') OVER (
               PARTITION BY category_id, gender ORDER BY file_gender_place
               RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS by_gender,
           file_category_place - count(*) FILTER (WHERE status <> 'finished') OVER (
               PARTITION BY category_id ORDER BY file_category_place
               RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS by_category
      FROM scope
), target AS (
    SELECT scope.id,
           CASE WHEN scope.status = 'finished'
                THEN coalesce(filed.overall, ranked.overall) END AS overall,
           CASE WHEN scope.status = 'finished'
                THEN coalesce(filed.by_gender, ranked.by_gender) END AS by_gender,
           CASE WHEN scope.status = 'finished'
                THEN coalesce(filed.by_category, ranked.by_category) END AS by_category
      FROM scope
      JOIN filed ON filed.id = scope.id
      LEFT JOIN ranked ON ranked.id = scope.id
)
UPDATE results r
   SET overall_place = target.overall, gender_place = target.by_gender,
       category_place = target.by_category
  FROM target
 WHERE r.id = target.id
   AND (r.overall_place IS DISTINCT FROM target.overall
        OR r.gender_place IS DISTINCT FROM target.by_gender
        OR r.category_place IS DISTINCT FROM target.by_category)
""")


def recompute_places(db: Session, ctx: TenantContext, *, event_id: uuid.UUID) -> int:
    """Set every place the file did not give: among finished results with a time, by chip
    time (gun time where a row has no chip time); ties share a place (1, 1, 3). Overall
    is across the event, the category place within the EP's category, the gender place
    within the EP's category and gender. Only finishers are placed: a place the file gives
    a DNF, DNS or DQ is kept as the file's but not used, and the finishers the file placed
    after it move up, so the ranking has no gap. Returns how many results changed."""
    # Fresh statistics: with those from before the import, the planner takes the results
    # table for empty and joins it row by row (3k results: 5 s instead of 50 ms).
    db.execute(text(f'ANALYZE "{Result.__tablename__}"'))
    result = db.execute(_RECOMPUTE, {"tenant_id": ctx.tenant_id, "event_id": event_id})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- the import type's hooks -----------------------------------------------------------------


def survey_rows(rows: Iterable[Any]) -> dict[str, Any]:
    """Stage 2: ids on several rows, and the last row (its batch computes the places)."""
    last_row = 0

    def ids() -> Iterable[str]:
        nonlocal last_row
        for row in rows:
            last_row = max(last_row, row.number)
            yield row.values.get(EXTERNAL_ID, "")

    duplicates = duplicate_ids(ids())
    return {"duplicate_ids": duplicates, "last_row": last_row}


def process_rows(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                 mode: TimingIdentifier, rows: list[Any], survey: dict[str, Any],
                 import_id: uuid.UUID | None) -> list[RowResult]:
    """Stage 4 for one batch of ImportRows: parse, resolve, store; the batch holding the
    file's last row then computes the places."""
    parsed: list[ParsedRow] = []
    invalid: list[RowResult] = []
    for row in rows:
        try:
            parsed.append(parse_row(row.number, row.values, getattr(row, "extras", {}) or {},
                                    row.issues))
        except RowError as exc:
            invalid.append(RowResult(row.number, Outcome.INVALID, str(exc)))
    stored = store_rows(db, ctx, event_id=event_id, mode=mode, rows=parsed,
                        duplicates=frozenset(survey.get("duplicate_ids", ())),
                        import_id=import_id)
    if rows:  # the next batches look results up by EP: keep those plans on the key
        refresh_while_growing(db, (Result.__tablename__,), rows_before=rows[0].number - 1,
                              rows_after=rows[-1].number)
    if rows and any(r.number >= int(survey.get("last_row", 0)) for r in rows):
        db.flush()  # the batch's rows must be in the table the ranking reads
        recompute_places(db, ctx, event_id=event_id)
    return sorted([*stored, *invalid], key=lambda r: r.row_number)


def import_of_job(db: Session, ctx: TenantContext, job_run_id: uuid.UUID | None
                  ) -> uuid.UUID | None:
    if job_run_id is None:
        return None
    return db.scalar(select(Import.id).where(Import.tenant_id == ctx.tenant_id,
                                             Import.job_run_id == job_run_id))


# --- the results page ------------------------------------------------------------------------

STATUS_ORDER = type_coerce(case(
    (Result.status == ResultStatus.FINISHED, 0), (Result.status == ResultStatus.DNF, 1),
    (Result.status == ResultStatus.DQ, 2), else_=3), Integer)
_NO_PLACE = 2_147_483_647


@dataclass(frozen=True)
class ResultRow:
    result: Result
    participant: EventParticipant
    person: Person
    category: Category | None

    @property
    def name(self) -> str:
        return f"{self.person.first_name} {self.person.last_name}"


def results_query(ctx: TenantContext, *, event_id: uuid.UUID, category_id: uuid.UUID | None,
                  gender: Gender | None, q: str | None) -> Select[Any]:
    """An event's results with their participant, person and category, filtered as the
    results page filters them (its export reuses it); unordered."""
    ep = EventParticipant
    stmt = (select(Result, ep, Person, Category)
            .join(ep, ep.id == Result.event_participant_id)
            .join(Person, Person.id == ep.person_id)
            .outerjoin(Category, Category.id == ep.category_id)
            .where(Result.tenant_id == ctx.tenant_id, Result.event_id == event_id))
    if category_id is not None:
        stmt = stmt.where(ep.category_id == category_id)
    if gender is not None:
        stmt = stmt.where(Person.gender == gender)
    if q and q.strip():
        term = q.strip()
        stmt = stmt.where(or_(ep.bib == term, Person.search_text.like(
            fold(literal(contains_pattern(term))))))
    return stmt


def ranking_key(*, by_category: bool, descending: bool = False) -> SortKey:
    """Ranking order: finished by place (the category place within one category), then
    DNF, DQ, DNS; the id makes it total for keyset paging."""
    place = func.coalesce(Result.category_place if by_category else Result.overall_place,
                          _NO_PLACE, type_=Integer)
    return SortKey(columns=[STATUS_ORDER, place, Result.id], descending=descending)


def list_results(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, category_id: uuid.UUID | None = None,
    gender: Gender | None = None, q: str | None = None, cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ResultRow], str | None]:
    """An event's results in ranking order: finished by place (the category place when one
    category is asked for), then DNF, DQ, DNS."""
    check_limit(limit)
    events_service.get_event_or_raise(db, ctx, event_id=event_id)
    if category_id is not None:
        events_service.get_category_or_raise(db, ctx, event_id=event_id,
                                             category_id=category_id)
    stmt = results_query(ctx, event_id=event_id, category_id=category_id, gender=gender, q=q)
    key = ranking_key(by_category=category_id is not None)
    rows = db.execute(apply_keyset(stmt, key, cursor, limit)).all()
    items = [ResultRow(r[0], r[1], r[2], r[3]) for r in rows]
    status_rank = {ResultStatus.FINISHED: 0, ResultStatus.DNF: 1, ResultStatus.DQ: 2,
                   ResultStatus.DNS: 3}

    def key_of(row: ResultRow) -> list[Any]:
        shown = row.result.category_place if category_id else row.result.overall_place
        return [status_rank[row.result.status], shown if shown is not None else _NO_PLACE,
                row.result.id]

    return split_page(items, limit, key_of)


@dataclass(frozen=True)
class Missing:
    id: uuid.UUID
    bib: str | None
    name: str
    category: str | None


@dataclass(frozen=True)
class Reconciliation:
    participants: int  # active EPs
    by_status: dict[str, int]
    warnings: int  # results stored with a warning (bib mismatch, a non-finisher's place)
    missing_count: int  # active EPs without a result
    missing: list[Missing]  # the first ``limit`` of them, in bib order


def reconcile(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
              limit: int = 200) -> Reconciliation:
    """Results per status, and the active EPs that have none (the reconciliation list)."""
    events_service.get_event_or_raise(db, ctx, event_id=event_id)
    ep = EventParticipant
    active = and_(ep.tenant_id == ctx.tenant_id, ep.event_id == event_id,
                  ep.status == ParticipantStatus.ACTIVE)
    without = ~select(Result.id).where(Result.event_participant_id == ep.id).exists()
    participants = db.scalar(select(func.count()).select_from(ep).where(active)) or 0
    missing_count = db.scalar(select(func.count()).select_from(ep).where(active, without)) or 0
    by_status = {s.value: 0 for s in ResultStatus}
    for status, count in db.execute(
            select(Result.status, func.count()).where(Result.tenant_id == ctx.tenant_id,
                                                      Result.event_id == event_id)
            .group_by(Result.status)):
        by_status[ResultStatus(status).value] = count
    warnings = db.scalar(select(func.count()).select_from(Result).where(
        Result.tenant_id == ctx.tenant_id, Result.event_id == event_id,
        Result.warning != "")) or 0
    rows = db.execute(
        select(ep.id, ep.bib, Person.first_name, Person.last_name, Category.name)
        .join(Person, Person.id == ep.person_id)
        .outerjoin(Category, Category.id == ep.category_id)
        .where(active, without)
        .order_by(BIB_MISSING_KEY, BIB_LENGTH_KEY, BIB_TEXT_KEY, ep.id).limit(limit)).all()
    return Reconciliation(
        participants=participants, by_status=by_status, warnings=warnings,
        missing_count=missing_count,
        missing=[Missing(r[0], r[1], f"{r[2]} {r[3]}", r[4]) for r in rows])


def event_of_import(db: Session, ctx: TenantContext, *, imp: Import) -> Event:
    return events_service.get_event_or_raise(db, ctx, event_id=uuid.UUID(imp.params["eventId"]))


def recent_imports(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                   size: int = 10) -> list[Import]:
    """The event's latest result-file imports, newest first."""
    return list(db.scalars(
        scoped(ctx, Import)
        .where(Import.import_type == "TIMING_RESULTS",
               Import.params["eventId"].astext == str(event_id))
        .options(joinedload(Import.job_run))
        .order_by(Import.created_at.desc(), Import.id.desc()).limit(size)))
