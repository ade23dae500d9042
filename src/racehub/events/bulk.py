"""Bulk edits of an event's participants: withdraw, reinstate, move to a category, clear
bibs, assign bibs; on the rows an operator ticked (ids) or on every row matching a filter
(evaluated here, when the change runs: never a list of ids standing for "all").

Every row is written through the one EP write path (``events.writes``, ``mark_local``), so
a moved category or a cleared or assigned bib becomes racehub-owned: the next sync raises
a conflict instead of overwriting it, as after a single edit. (Withdrawal and
reinstatement are safe from the sync without that: it changes a status only when the
provider withdraws or restores a registration.)

A selection of up to ``RACEHUB_BULK_EDIT_INLINE_MAX`` rows changes in the request, in one
transaction; a bigger one runs as a job (``events.bulk_edit``), one committed batch at a
time with its checkpoint. Either way the change is one audit entry
(``participant.bulk_edit``) with its counts, and its summary says how many rows changed,
how many already were so, and why each refused row was refused (its bib held by another
entry, its category's bib range used up...), naming it by name and bib.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy import Row, Select, func
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.pagination import SortKey, apply_keyset, split_page
from racehub.core.query import any_of, scoped
from racehub.events import service, writes
from racehub.events.models import Category, Event, EventParticipant, ParticipantStatus, Person
from racehub.events.schemas import BulkAction, BulkEditRequest
from racehub.events.service import ParticipantFilter, ParticipantSort
from racehub.jobs import service as jobs_service
from racehub.jobs.exceptions import JobInterrupted, JobPaused
from racehub.jobs.handle import RunningJob
from racehub.jobs.models import JobRun

BULK_EDIT_KIND = "events.bulk_edit"
REFUSALS_KEPT = 100  # in a summary, a job's checkpoint and its log; the count counts all
AUDITED_REFUSALS = 20
DEFAULT_WITHDRAW_REASON = "withdrawn in racehub"

VERBS = {BulkAction.WITHDRAW: "Withdraw", BulkAction.REINSTATE: "Reinstate",
         BulkAction.MOVE_CATEGORY: "Move to a category", BulkAction.CLEAR_BIBS: "Clear bibs",
         BulkAction.ASSIGN_BIBS: "Assign bibs"}


@dataclass
class Refusal:
    """A row left as it was, and why; named as people know it (never by id alone)."""

    participant_id: uuid.UUID
    name: str | None  # None: no participant of this event has that id
    bib: str | None
    field: str | None  # as the API names it (camelCase)
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"participant_id": str(self.participant_id), "name": self.name,
                "bib": self.bib, "field": self.field, "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Refusal:
        return cls(uuid.UUID(data["participant_id"]), data["name"], data["bib"],
                   data["field"], data["reason"])

    def text(self) -> str:
        who = self.name or "a participant not in this event"
        return f"{who}{f' (bib {self.bib})' if self.bib else ''}: {self.reason}"


@dataclass
class BulkSummary:
    action: BulkAction
    selected: int = 0
    changed: int = 0
    unchanged: int = 0
    refused: int = 0
    refusals: list[Refusal] = field(default_factory=list)  # the first REFUSALS_KEPT

    def refuse(self, refusal: Refusal) -> None:
        self.refused += 1
        if len(self.refusals) < REFUSALS_KEPT:
            self.refusals.append(refusal)

    def counts(self) -> dict[str, int]:
        return {"selected": self.selected, "changed": self.changed,
                "unchanged": self.unchanged, "refused": self.refused}

    def as_json(self) -> dict[str, Any]:
        return {**self.counts(), "refusals": [r.as_json() for r in self.refusals]}

    @classmethod
    def from_json(cls, action: BulkAction, data: dict[str, Any]) -> BulkSummary:
        return cls(action, data["selected"], data["changed"], data["unchanged"],
                   data["refused"], [Refusal.from_json(r) for r in data["refusals"]])

    def text(self) -> str:
        """One sentence: "Withdraw: 12 changed, 1 unchanged, 2 refused"."""
        return (f"{VERBS[self.action]}: {self.changed} changed, {self.unchanged} unchanged, "
                f"{self.refused} refused")


@dataclass
class BulkOutcome:
    """A bulk edit as it was started: applied (``summary``) or queued (``job``)."""

    summary: BulkSummary | None
    job: JobRun | None


@dataclass(frozen=True)
class _Change:
    """What each row gets, validated once for the whole selection."""

    action: BulkAction
    withdrawn_at: datetime
    reason: str
    category: Category | None  # move_category: the target
    categories: dict[uuid.UUID, Category]  # the event's (assign_bibs: each one's range)
    first_bib: int | None


@dataclass
class _State:
    """How far the change got (a job's checkpoint): the walk's cursor, the counts, and
    the next number to try per category (assign_bibs; "" for rows without a category)."""

    summary: BulkSummary
    cursor: str | None = None
    done: int = 0
    started: bool = False  # the ids nobody in the event has were refused already
    next_bibs: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "done": self.done, "started": self.started,
                "next_bibs": self.next_bibs, "summary": self.summary.as_json()}

    @classmethod
    def from_json(cls, action: BulkAction, data: dict[str, Any]) -> _State:
        return cls(BulkSummary.from_json(action, data["summary"]), data["cursor"],
                   data["done"], data["started"], dict(data["next_bibs"]))


# --- starting one ----------------------------------------------------------------------


def start_bulk_edit(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                    data: BulkEditRequest, inline_max: int) -> BulkOutcome:
    """Apply ``data`` to its selection now (``inline_max`` rows or fewer: one transaction,
    the caller commits), or queue it as a job with the rest of the caller's transaction."""
    # Held against deletion of the event while a job on it waits (as bib assignment does).
    event = service.get_event_or_raise(db, ctx, event_id=event_id, for_writing=True)
    change = _change_of(db, ctx, event, data, withdrawn_at=datetime.now(UTC))
    selected = (len(set(data.ids)) if data.ids is not None else
                db.scalar(_selection(ctx, event.id, data).with_only_columns(func.count())
                          .order_by(None)) or 0)
    if selected > inline_max:
        params = {"event_id": str(event.id), "withdrawn_at": change.withdrawn_at.isoformat(),
                  **data.model_dump(mode="json", exclude={"action"}), "action": data.action.value}
        run = jobs_service.start_job(
            db, ctx, kind=BULK_EDIT_KIND, params=params, subject_id=event.id,
            message=f"{VERBS[data.action]}: {selected} participants of {event.name}")
        run.total = selected
        return BulkOutcome(None, run)
    state = _State(BulkSummary(data.action, selected=selected))
    while True:
        _apply_page(db, ctx, event, data, change, state, limit=max(inline_max, 1))
        if state.cursor is None:
            break
    _audit(db, ctx, event, data, change, state.summary, job=None, finished=True)
    return BulkOutcome(state.summary, None)


def _change_of(db: Session, ctx: TenantContext, event: Event, data: BulkEditRequest, *,
               withdrawn_at: datetime) -> _Change:
    if data.ids is None and data.filter is None:
        raise Invalid("no participant selected: tick some, or all matching the filter",
                      field="ids")
    if data.ids is not None and data.filter is not None:
        raise Invalid("give either ids (the participants chosen) or filter (all matching "
                      "it), not both", field="filter")
    if data.ids is not None and not data.ids:
        raise Invalid("no participant selected: tick some, or all matching the filter",
                      field="ids")
    target = None
    if data.action == BulkAction.MOVE_CATEGORY:
        if data.category_id is None:
            raise Invalid("choose the category to move them to", field="categoryId")
        target = service.get_category_or_raise(db, ctx, event_id=event.id,
                                               category_id=data.category_id,
                                               field="categoryId")
    if data.filter is not None and data.filter.category_id is not None:
        service.get_category_or_raise(db, ctx, event_id=event.id,
                                      category_id=data.filter.category_id,
                                      field="filter.categoryId")
    categories = ({c.id: c for c in service.list_categories(db, ctx, event_id=event.id)}
                  if data.action == BulkAction.ASSIGN_BIBS else {})
    return _Change(action=data.action, withdrawn_at=withdrawn_at,
                   reason=data.reason or DEFAULT_WITHDRAW_REASON, category=target,
                   categories=categories, first_bib=data.first_bib)


def _selection(ctx: TenantContext, event_id: uuid.UUID,
               data: BulkEditRequest) -> Select[Any]:
    """The selected participants: the ids given, among the event's (another tenant's or
    event's ids match nothing), or every one matching the filter as it is now."""
    if data.ids is not None:
        return scoped(ctx, EventParticipant).where(EventParticipant.event_id == event_id,
                                                   any_of(EventParticipant.id, set(data.ids)))
    flt = data.filter
    assert flt is not None
    return service.participants_query(ctx, event_id, ParticipantFilter(
        q=flt.q, status=flt.status, category_id=flt.category_id))


# --- running it (in the request, or a job's batches) -------------------------------------


_COLUMNS: tuple[Any, ...] = (EventParticipant.id, EventParticipant.status,
                             EventParticipant.bib, EventParticipant.category_id,
                             Person.first_name, Person.last_name)


def _page(db: Session, ctx: TenantContext, base: Select[Any], cursor: str | None,
          limit: int) -> tuple[list[Row[Any]], str | None]:
    """The next rows of the selection in name order (bibs are given in it), locked: a
    concurrent bulk edit of the same rows waits for this one."""
    columns = service.participant_sort_columns(ParticipantSort.LAST_NAME)
    stmt = apply_keyset(
        base.with_only_columns(*_COLUMNS)
        .join(Person, Person.id == EventParticipant.person_id)
        .where(Person.tenant_id == ctx.tenant_id),
        SortKey(columns=columns), cursor, limit,
    ).add_columns(*columns).with_for_update(of=EventParticipant)
    rows = db.execute(stmt).all()
    return split_page(rows, limit, lambda row: list(row[len(_COLUMNS):]))


def _apply_page(db: Session, ctx: TenantContext, event: Event, data: BulkEditRequest,
                change: _Change, state: _State, *, limit: int) -> list[Refusal]:
    """Change the next ``limit`` rows of the selection; returns the refusals it added."""
    summary = state.summary
    before = len(summary.refusals)
    if not state.started:
        state.started = True
        if data.ids is not None:
            found = set(db.scalars(_selection(ctx, event.id, data)
                                   .with_only_columns(EventParticipant.id)))
            for missing in sorted(set(data.ids) - found, key=str):
                summary.refuse(Refusal(missing, None, None, "ids",
                                       "not a participant of this event"))
    rows, state.cursor = _page(db, ctx, _selection(ctx, event.id, data), state.cursor, limit)
    state.done += len(rows)
    planned: list[writes.ParticipantWrite] = []
    by_id = {row.id: row for row in rows}
    taken = _taken(db, ctx, event, change, rows)
    for row in rows:
        try:
            values = _values(change, row, state, taken)
        except _Refused as refused:
            summary.refuse(_refusal(row, refused.field, refused.reason))
            continue
        if values is None:
            summary.unchanged += 1
        else:
            planned.append(writes.ParticipantWrite(row.id, values, key=str(row.id)))
    outcomes = writes.write_participants(
        db, ctx, event_id=event.id, rows=planned, origin=f"bulk {change.action.value}",
        mark_local=True, record_audit=False) if planned else []
    for outcome in outcomes:
        row = by_id[uuid.UUID(outcome.key or "")]
        if outcome.error is not None:
            summary.refuse(_refusal(row, outcome.error_field, outcome.error))
        elif outcome.changes:
            summary.changed += 1
        else:
            summary.unchanged += 1
    return summary.refusals[before:]


class _Refused(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


def _refusal(row: Row[Any], field_name: str | None, reason: str) -> Refusal:
    return Refusal(row.id, f"{row.first_name} {row.last_name}", row.bib,
                   to_camel(field_name) if field_name else None, reason)


def _values(change: _Change, row: Row[Any], state: _State,
            taken: set[int]) -> dict[str, Any] | None:
    """What the write path gets for ``row``; None when it already is so (no write)."""
    action = change.action
    if action == BulkAction.WITHDRAW:
        if row.status == ParticipantStatus.WITHDRAWN:
            return None
        return {"status": ParticipantStatus.WITHDRAWN, "withdrawn_at": change.withdrawn_at,
                "withdrawn_reason": change.reason}
    if action == BulkAction.REINSTATE:
        if row.status == ParticipantStatus.ACTIVE:
            return None
        # Its bib comes back with it, unless another active entry took it meanwhile: the
        # write path refuses the row then, naming the holder.
        return {"status": ParticipantStatus.ACTIVE, "withdrawn_at": None,
                "withdrawn_reason": None}
    if action == BulkAction.MOVE_CATEGORY:
        assert change.category is not None
        return None if row.category_id == change.category.id else {
            "category_id": change.category.id}
    if action == BulkAction.CLEAR_BIBS:
        return None if row.bib is None else {"bib": None}
    # ASSIGN_BIBS: as the category's "Assign missing bibs" does, for the rows selected.
    if row.bib is not None:
        return None
    if row.status != ParticipantStatus.ACTIVE:
        raise _Refused("status", "withdrawn: reinstate the entry before giving it a bib")
    category = change.categories.get(row.category_id) if row.category_id else None
    key = str(row.category_id or "")
    start = _first_bib(change, category)
    number = max(state.next_bibs.get(key, start), start)
    while number in taken:
        number += 1
    if category is not None and category.bib_range_end is not None \
            and number > category.bib_range_end:
        raise _Refused("bib", f"bib range {start}-{category.bib_range_end} of {category.name} "
                              "is used up; widen the range and assign again")
    taken.add(number)
    state.next_bibs[key] = number + 1
    return {"bib": str(number)}


def _first_bib(change: _Change, category: Category | None) -> int:
    return change.first_bib or (category.bib_range_start if category else None) or 1


def _taken(db: Session, ctx: TenantContext, event: Event, change: _Change,
           rows: Sequence[Row[Any]]) -> set[int]:
    """assign_bibs: the numbers active entries of the event hold from the lowest first
    bib of this page's rows on (numbers given earlier in the change included)."""
    if change.action != BulkAction.ASSIGN_BIBS:
        return set()
    starts = [_first_bib(change, change.categories.get(r.category_id) if r.category_id
                         else None) for r in rows if r.bib is None]
    if not starts:
        return set()
    return service.taken_numeric_bibs(db, ctx, event_id=event.id, from_bib=min(starts))


def _audit(db: Session, ctx: TenantContext, event: Event, data: BulkEditRequest,
           change: _Change, summary: BulkSummary, *, job: uuid.UUID | None,
           finished: bool) -> None:
    """The one entry of a bulk edit: what it did to which selection, and its counts."""
    selection: dict[str, Any] = (
        {"ids": len(set(data.ids))} if data.ids is not None else
        {"filter": data.filter.model_dump(mode="json", exclude_none=True)
         if data.filter else {}})
    after: dict[str, Any] = {"action": change.action.value, "selection": selection,
                             **summary.counts(), "finished": finished,
                             "refusals": [{"participant_id": str(r.participant_id),
                                           "reason": r.reason}
                                          for r in summary.refusals[:AUDITED_REFUSALS]]}
    if change.category is not None:
        after |= {"category_id": str(change.category.id), "category_name": change.category.name}
    if change.action == BulkAction.WITHDRAW:
        after["reason"] = change.reason
    if change.action == BulkAction.ASSIGN_BIBS and change.first_bib is not None:
        after["first_bib"] = change.first_bib
    if job is not None:
        after["job_id"] = str(job)
    audit.record(db, ctx, action="participant.bulk_edit", target_type="event",
                 target_id=event.id, after=after)


# --- as a job --------------------------------------------------------------------------


def run_bulk_edit(db: Session, ctx: TenantContext, *, job: RunningJob, batch_size: int,
                  event_id: str, action: str, withdrawn_at: str,
                  **request: Any) -> None:
    """The job's body: the selection in batches of ``batch_size``, each committed with its
    checkpoint (a resumed or restarted run goes on after the last committed row); the
    audit entry with the last batch (or, when the run fails or is cancelled, with what
    its committed batches did)."""
    data = BulkEditRequest.model_validate({**request, "action": action})
    event = service.get_event_or_raise(db, ctx, event_id=uuid.UUID(event_id))
    change = _change_of(db, ctx, event, data, withdrawn_at=datetime.fromisoformat(withdrawn_at))
    state = (_State.from_json(data.action, job.checkpoint) if job.checkpoint else
             _State(BulkSummary(data.action, selected=job.run.total or 0)))
    committed = state.as_json()
    audited = False
    job.set_progress(stage="Changing", total=state.summary.selected, done=state.done)
    try:
        while True:
            refusals = _apply_page(db, ctx, event, data, change, state, limit=batch_size)
            for refusal in refusals:
                job.log(f"refused {refusal.text()}")
            last = state.cursor is None
            if last:
                _audit(db, ctx, event, data, change, state.summary, job=job.run.id,
                       finished=True)
                audited = True
            committed = state.as_json()
            job.commit_batch(checkpoint=committed, done=state.done,
                             counts=state.summary.counts(), message=state.summary.text())
            if last:
                return
    except (JobPaused, JobInterrupted):
        raise  # it goes on later, from its checkpoint: the entry comes at its end
    except Exception:
        if audited:  # cancelled just after its last batch committed, entry and all
            raise
        # Failed or cancelled: what the committed batches did is on record all the same.
        db.rollback()
        done = _State.from_json(data.action, committed)
        _audit(db, ctx, event, data, change, done.summary, job=job.run.id, finished=False)
        db.commit()
        raise


def summary_of_job(run: JobRun) -> BulkSummary | None:
    """A bulk edit job's summary so far (None before its first batch)."""
    if not run.checkpoint:
        return None
    return _State.from_json(BulkAction(run.params["action"]), run.checkpoint).summary

