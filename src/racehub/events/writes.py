"""The one write path for event participants (EPs) and their Persons.

The API's create and update, the sync, and later the bulk edits and the file import all
write EPs here, a batch at a time and set-based: one read of what the batch touches, one
COPY stream each for new Persons and EPs (ids made here), ``UPDATE ... FROM unnest(...)``
for changed rows, and nothing at all for values that did not change.

A row that cannot be written (its bib is held by another active EP of the event, its
provider record by another EP of the tenant, its participant is not found...) is refused
in its outcome, naming the holder; the rest of the batch lands.
"""

from __future__ import annotations

import enum
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    Date,
    Table,
    Text,
    and_,
    bindparam,
    false,
    func,
    select,
    text,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.query import any_of
from racehub.db.bulk import copy_rows
from racehub.db.errors import violates
from racehub.events.exceptions import EventNotFound
from racehub.events.models import (
    ACTIVE_BIB_INDEX,
    SOURCE_INDEX,
    Category,
    Event,
    EventParticipant,
    Gender,
    ParticipantStatus,
    Person,
)

PERSON_FIELDS = ("first_name", "last_name", "birth_date", "gender", "email",
                 "nationality", "city", "region", "country")
EP_FIELDS = ("bib", "category_id", "team", "registration_id", "status",
             "withdrawn_at", "withdrawn_reason", "transferred_from_id")
# Fields that become racehub-owned once edited in racehub (others follow the provider):
OWNABLE_FIELDS = ("bib", "category_id", "team")

# ``values`` of a NEW row may also name the Person to enter (no matching then).
PERSON_ID = "person_id"

_EP: Table = EventParticipant.__table__  # type: ignore[assignment]
_PERSON: Table = Person.__table__  # type: ignore[assignment]


@dataclass
class ParticipantWrite:
    participant_id: uuid.UUID | None      # None: create an EP (and match or make a Person)
    values: dict[str, Any]                # only the fields to write, names as above
    source: tuple[str, str] | None = None  # (provider, source_id) stored on a NEW EP
    match_person: bool = True             # new EP: reuse a Person of the tenant when
                                          # email + birth date, or folded name + birth date,
                                          # match (exactly one candidate); else a new Person
    key: str | None = None                # caller's id for the row (echoed in the outcome)


@dataclass
class WriteOutcome:
    key: str | None
    participant_id: uuid.UUID | None
    person_id: uuid.UUID | None
    created: bool
    changes: dict[str, tuple[Any, Any]]   # field -> (old, new), only real changes
    person_match: str | None              # "new" | "email_birth_date" | "name_birth_date" | None
    error: str | None = None              # the row was refused (e.g. bib taken), batch goes on
    error_field: str | None = None


@dataclass
class _Holder:
    """An EP holding a bib or a provider record, as a refusal names it."""

    participant_id: uuid.UUID
    first_name: str
    last_name: str
    registration_id: str | None = None
    event_name: str | None = None


@dataclass
class _Row:
    """One row of the batch as planned: what it writes, in which order."""

    write: ParticipantWrite
    outcome: WriteOutcome
    current: dict[str, Any] | None = None      # the existing EP and its Person
    final: dict[str, Any] = field(default_factory=dict)  # EP fields after the write
    ep_insert: dict[str, Any] | None = None    # a new EP's row
    ep_changes: dict[str, Any] = field(default_factory=dict)
    person_changes: dict[str, Any] = field(default_factory=dict)
    local_add: list[str] = field(default_factory=list)
    level: int = 0                             # updates run level by level (bibs freed first)

    @property
    def refused(self) -> bool:
        return self.outcome.error is not None

    def refuse(self, error: str, error_field: str) -> None:
        self.outcome.error, self.outcome.error_field = error, error_field
        self.outcome.participant_id = self.write.participant_id
        self.outcome.person_id = None
        self.outcome.created = False
        self.outcome.changes = {}
        self.outcome.person_match = None
        self.ep_insert, self.ep_changes, self.person_changes = None, {}, {}
        self.local_add = []


@dataclass
class _Plan:
    rows: list[_Row]
    new_persons: dict[uuid.UUID, dict[str, Any]]  # person id -> its row, in creation order

    def updates(self) -> list[_Row]:
        return sorted((r for r in self.rows if r.current is not None and not r.refused
                       and (r.ep_changes or r.local_add or r.person_changes)),
                      key=lambda r: r.level)

    def inserts(self) -> list[_Row]:
        return [r for r in self.rows if r.ep_insert is not None and not r.refused]


def write_participants(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                       rows: Sequence[ParticipantWrite], origin: str,
                       mark_local: bool, record_audit: bool = True) -> list[WriteOutcome]:
    """Create and change the event's participants (and their Persons) as ``rows`` say; one
    outcome per row, in order. ``origin`` names the batch in the audit log (e.g. "api",
    "sync run <id>"); ``mark_local`` (API and operator edits, not the sync) makes each
    edited field of OWNABLE_FIELDS racehub-owned (EP.local_fields). ``record_audit`` off:
    the caller records the change itself (a bulk edit: one entry for all its batches)."""
    event = db.scalar(select(Event).where(Event.tenant_id == ctx.tenant_id,
                                          Event.id == event_id))
    if event is None:
        raise EventNotFound()
    db.flush()  # the caller's pending rows (an event, a category) before ours refer to them
    plan = _prepare(db, ctx, event, rows, mark_local)
    try:
        with db.begin_nested():
            _write(db, ctx, plan, plan.updates(), plan.inserts())
    except IntegrityError as exc:
        if not (violates(exc, ACTIVE_BIB_INDEX) or violates(exc, SOURCE_INDEX)):
            raise
        # A concurrent transaction took a bib or a provider record between our check and
        # our write, and committed: check again (now seeing it), then write row by row so
        # that a row losing yet another race is refused alone.
        plan = _prepare(db, ctx, event, rows, mark_local)
        _write_row_by_row(db, ctx, plan)
    _forget_loaded(db, plan)
    if record_audit:
        _audit(db, ctx, event_id, plan, origin)
    return [row.outcome for row in plan.rows]


# --- planning -----------------------------------------------------------------------------


_ENUMS: dict[str, type[enum.Enum]] = {"status": ParticipantStatus, "gender": Gender}
_REQUIRED = ("first_name", "last_name")
_PARSED: dict[str, Any] = {
    "birth_date": date.fromisoformat, "withdrawn_at": datetime.fromisoformat,
    "category_id": uuid.UUID, "transferred_from_id": uuid.UUID, PERSON_ID: uuid.UUID}


def _normalized(values: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The row's values with enums as members, and why the row is refused, if it is (a
    value its column cannot hold would fail the whole batch's statement)."""
    unknown = set(values) - set(PERSON_FIELDS) - set(EP_FIELDS) - {PERSON_ID}
    if unknown:
        raise ValueError(f"not participant fields: {', '.join(sorted(unknown))}")
    out = dict(values)
    for name, value in out.items():
        if value is None:
            if name in _REQUIRED or name == "status":
                return out, (f"{name} cannot be empty", name)
            continue
        if name in _ENUMS:
            try:
                out[name] = _ENUMS[name](value)
            except ValueError:
                return out, (f"{name} {value!r} is not one of "
                             f"{', '.join(m.value for m in _ENUMS[name])}", name)
        elif name in _PARSED and isinstance(value, str):
            # JSON-shaped values (a staged row, a file) are read as their column's type.
            try:
                out[name] = _PARSED[name](value)
            except ValueError:
                return out, (f"{name} {value!r} is not a valid "
                             f"{_PARSED[name].__name__}", name)
        elif isinstance(value, str):
            table = _PERSON if name in PERSON_FIELDS else _EP
            limit = getattr(table.c[name].type, "length", None)
            if limit is not None and len(value) > limit:
                return out, (f"{name} is longer than {limit} characters", name)
            if name in _REQUIRED and not value.strip():
                return out, (f"{name} cannot be empty", name)
    return out, None


def _prepare(db: Session, ctx: TenantContext, event: Event,
             writes: Sequence[ParticipantWrite], mark_local: bool) -> _Plan:
    rows = [_Row(write=w, outcome=WriteOutcome(key=w.key, participant_id=w.participant_id,
                                               person_id=None, created=False, changes={},
                                               person_match=None))
            for w in writes]
    event_id = event.id
    normalized = [_normalized(w.values) for w in writes]
    values = [vals for vals, _ in normalized]
    existing = _existing(db, ctx, event_id, [w.participant_id for w in writes
                                             if w.participant_id is not None])
    categories = _known(db, select(Category.id).where(
        Category.tenant_id == ctx.tenant_id, Category.event_id == event_id),
        Category.id, [v.get("category_id") for v in values])
    persons = _known(db, select(Person.id).where(Person.tenant_id == ctx.tenant_id),
                     Person.id, [v.get(PERSON_ID) for v in values])
    transfers = _known(db, select(EventParticipant.id).where(
        EventParticipant.tenant_id == ctx.tenant_id),
        EventParticipant.id, [v.get("transferred_from_id") for v in values])

    seen: set[uuid.UUID] = set()
    for row, (vals, invalid) in zip(rows, normalized, strict=True):
        w = row.write
        if invalid is not None:
            row.refuse(*invalid)
            continue
        if w.participant_id is not None:
            row.current = existing.get(w.participant_id)
            if row.current is None:
                row.refuse("participant not found", "participant_id")
                continue
            if w.participant_id in seen:
                row.refuse("participant appears twice in this batch", "participant_id")
                continue
            seen.add(w.participant_id)
            if PERSON_ID in vals:
                raise ValueError("person_id is for new participants only")
        elif PERSON_ID not in vals and not (vals.get("first_name") and vals.get("last_name")):
            missing = "first_name" if not vals.get("first_name") else "last_name"
            row.refuse(f"{missing} is required for a new participant", missing)
            continue
        if vals.get("category_id") is not None and vals["category_id"] not in categories:
            row.refuse("category not found in this event", "category_id")
        elif PERSON_ID in vals and vals[PERSON_ID] not in persons:
            row.refuse("person not found", "person_id")
        elif (vals.get("transferred_from_id") is not None
              and vals["transferred_from_id"] not in transfers):
            row.refuse("participant not found", "transferred_from_id")
        else:
            _plan_values(row, vals, event_id, ctx.tenant_id, mark_local)

    _check_sources(db, ctx, rows, event.name)
    _check_bibs(db, ctx, event_id, rows)
    new_persons = _match_persons(db, ctx, rows, values) if any(
        r.ep_insert is not None and not r.refused for r in rows) else {}
    return _Plan(rows=rows, new_persons=new_persons)


def _existing(db: Session, ctx: TenantContext, event_id: uuid.UUID,
              ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The batch's EPs of this event and tenant, each with its Person's fields."""
    if not ids:
        return {}
    ep = EventParticipant
    columns = [ep.id, ep.person_id, ep.source_provider, ep.source_id, ep.local_fields,
               *[getattr(ep, name) for name in EP_FIELDS],
               *[getattr(Person, name) for name in PERSON_FIELDS]]
    rows = db.execute(
        select(*columns).join(Person, Person.id == ep.person_id)
        .where(ep.tenant_id == ctx.tenant_id, ep.event_id == event_id, any_of(ep.id, ids))
    ).mappings()
    return {row["id"]: dict(row) for row in rows}


def _known(db: Session, stmt: Any, id_column: Any, ids: Iterable[Any]) -> set[uuid.UUID]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return set()
    return set(db.scalars(stmt.where(any_of(id_column, wanted))))


def _plan_values(row: _Row, vals: dict[str, Any], event_id: uuid.UUID,
                 tenant_id: uuid.UUID, mark_local: bool) -> None:
    """What the row changes: for an existing EP only the values that differ from today's."""
    w = row.write
    ep_vals = {k: v for k, v in vals.items() if k in EP_FIELDS}
    person_vals = {k: v for k, v in vals.items() if k in PERSON_FIELDS}
    if row.current is None:
        ep_id = uuid.uuid4()
        provider, source_id = w.source or (None, None)
        row.final = {"bib": None, "status": ParticipantStatus.ACTIVE, **ep_vals}
        local = sorted(f for f in OWNABLE_FIELDS if ep_vals.get(f) is not None) \
            if mark_local else []
        row.ep_insert = {
            "id": ep_id, "tenant_id": tenant_id, "event_id": event_id, "person_id": None,
            **{name: None for name in EP_FIELDS}, **row.final,
            "source_provider": provider, "source_id": source_id, "local_fields": local,
        }
        row.outcome.participant_id = ep_id
        row.outcome.created = True
        row.outcome.changes = {k: (None, v) for k, v in ep_vals.items() if v is not None}
        if vals.get(PERSON_ID) is not None:
            row.ep_insert["person_id"] = row.outcome.person_id = vals[PERSON_ID]
        return
    current = row.current
    row.outcome.person_id = current["person_id"]
    row.ep_changes = {k: v for k, v in ep_vals.items() if current[k] != v}
    if w.source is not None and w.source != (current["source_provider"], current["source_id"]):
        # The provider's key of this entry changed (e.g. a row keyed by a fallback gained
        # its registration id): the same EP, under its new key.
        row.ep_changes["source_provider"], row.ep_changes["source_id"] = w.source
    row.person_changes = {k: v for k, v in person_vals.items() if current[k] != v}
    row.final = {"bib": current["bib"], "status": current["status"], **ep_vals}
    if mark_local:
        row.local_add = [f for f in OWNABLE_FIELDS
                         if f in row.ep_changes and f not in current["local_fields"]]
    row.outcome.changes = {k: (current[k], v) for k, v in
                           {**row.ep_changes, **row.person_changes}.items()}


def _source_of(row: _Row) -> tuple[str, str] | None:
    """The provider record the row takes: a new EP's, or an existing EP's new key."""
    if row.refused:
        return None
    if row.ep_insert is not None and row.ep_insert["source_id"] is not None:
        return row.ep_insert["source_provider"], row.ep_insert["source_id"]
    if "source_id" in row.ep_changes:
        return row.ep_changes["source_provider"], row.ep_changes["source_id"]
    return None


def _check_sources(db: Session, ctx: TenantContext, rows: list[_Row], event_name: str) -> None:
    """Refuse rows whose provider record another EP of the tenant (any event) holds: a sync
    finds entries by it, so it may be held once."""
    wanted = {source for row in rows if (source := _source_of(row))}
    if not wanted:
        return
    ep = EventParticipant
    found = db.execute(
        select(ep.id, ep.source_provider, ep.source_id, ep.registration_id, Person.first_name,
               Person.last_name, Event.name)
        .join(Person, Person.id == ep.person_id).join(Event, Event.id == ep.event_id)
        .where(ep.tenant_id == ctx.tenant_id,
               any_of(ep.source_provider, {p for p, _ in wanted}),
               any_of(ep.source_id, {s for _, s in wanted}))
    ).all()
    holders = {(r.source_provider, r.source_id): _Holder(r.id, r.first_name, r.last_name,
                                                         r.registration_id, r.name)
               for r in found}
    for row in rows:
        source = _source_of(row)
        if source is None:
            continue
        holder = holders.get(source)
        if holder is not None and holder.participant_id != row.outcome.participant_id:
            row.refuse(_source_taken(source, holder), "source_id")
        else:
            holders[source] = _Holder(row.outcome.participant_id,  # type: ignore[arg-type]
                                      *_names(row), event_name=event_name)


def _names(row: _Row) -> tuple[str, str, str | None]:
    vals = row.write.values
    current = row.current or {}
    return (vals.get("first_name", current.get("first_name", "")),
            vals.get("last_name", current.get("last_name", "")),
            row.final.get("registration_id", current.get("registration_id")))


# Refusals name the holder as people know it (its name, its registration, its event),
# never by an internal id.
def _source_taken(source: tuple[str, str], holder: _Holder) -> str:
    provider, source_id = source
    registration = (f"registration {holder.registration_id}, "
                    if holder.registration_id else "")
    return (f"source {provider} {source_id} is already held by {holder.first_name} "
            f"{holder.last_name} ({registration}event {holder.event_name!r})")


def _bib_taken(bib: str, holder: _Holder) -> str:
    return (f"bib {bib} is already used in this event by {holder.first_name} "
            f"{holder.last_name}"
            + (f" (registration {holder.registration_id})" if holder.registration_id else ""))


def _held_bib(state: dict[str, Any] | None) -> str | None:
    if state is None or state["status"] != ParticipantStatus.ACTIVE:
        return None
    bib: str | None = state["bib"]
    return bib


def _check_bibs(db: Session, ctx: TenantContext, event_id: uuid.UUID,
                rows: list[_Row]) -> None:
    """Refuse rows taking a bib another active EP of the event holds, as the batch leaves
    it: withdrawals (and cleared bibs) of the batch go first and free their bibs; a bib
    moved away by one row may be taken by another row, whose write then runs a level
    after (``_Row.level``)."""
    live = [r for r in rows if not r.refused]
    takers = [r for r in live if (bib := _held_bib(r.final)) is not None
              and bib != _held_bib(r.current)]
    if not takers:
        return
    ep = EventParticipant
    found = db.execute(
        select(ep.id, ep.bib, ep.registration_id, Person.first_name, Person.last_name)
        .join(Person, Person.id == ep.person_id)
        .where(ep.tenant_id == ctx.tenant_id, ep.event_id == event_id,
               ep.status == ParticipantStatus.ACTIVE,
               any_of(ep.bib, {_held_bib(r.final) for r in takers}))
    ).all()
    holders = {r.bib: _Holder(r.id, r.first_name, r.last_name, r.registration_id)
               for r in found}
    freed_at: dict[str, int] = {}  # bib -> the level of the update that frees it

    def release(row: _Row, level: int) -> None:
        old = _held_bib(row.current)
        if old is not None and old != _held_bib(row.final):
            holder = holders.get(old)
            if holder is not None and holder.participant_id == row.outcome.participant_id:
                del holders[old]
                freed_at[old] = level

    for row in live:
        if _held_bib(row.final) is None:  # withdrawn, or its bib cleared: frees, takes none
            release(row, 0)
    # Takers in batch order; one held by a row of the batch that moves away waits for that
    # row (a later pass); what still finds its bib held after a pass without progress
    # (e.g. two rows swapping bibs) is refused.
    pending = takers
    while pending:
        blocked = []
        for row in pending:
            bib = _held_bib(row.final)
            assert bib is not None
            holder = holders.get(bib)
            if holder is not None and holder.participant_id != row.outcome.participant_id:
                blocked.append(row)
                continue
            row.level = freed_at[bib] + 1 if bib in freed_at else 0
            holders[bib] = _Holder(row.outcome.participant_id,  # type: ignore[arg-type]
                                   *_names(row))
            release(row, row.level)
        if len(blocked) == len(pending):
            for row in blocked:
                bib = _held_bib(row.final)
                assert bib is not None
                row.refuse(_bib_taken(bib, holders[bib]), "bib")
            return
        pending = blocked


# --- person matching ----------------------------------------------------------------------


def _match_persons(db: Session, ctx: TenantContext, rows: list[_Row],
                   values: list[dict[str, Any]]) -> dict[uuid.UUID, dict[str, Any]]:
    """Give each new EP its Person: the one given, else the tenant's only Person with the
    same e-mail and birth date, else the only one with the same folded name and birth date
    (rows earlier in the batch count too), else a new Person. Returns the new Persons."""
    new_rows = [(r, v) for r, v in zip(rows, values, strict=True)
                if r.ep_insert is not None and not r.refused
                and r.ep_insert["person_id"] is None]
    matching = [(r, v) for r, v in new_rows if r.write.match_person and v.get("birth_date")]
    folded = _folded(db, [s for _, v in matching for s in
                          (v.get("email"), v.get("first_name"), v.get("last_name")) if s])

    def email_key(v: dict[str, Any]) -> tuple[Any, ...] | None:
        email = v.get("email")
        return (folded[email][0], v["birth_date"]) if email and v.get("birth_date") else None

    def name_key(v: dict[str, Any]) -> tuple[Any, ...] | None:
        if not v.get("birth_date"):
            return None
        return (folded[v["first_name"]][1], folded[v["last_name"]][1], v["birth_date"])

    by_email: dict[tuple[Any, ...], set[uuid.UUID]] = defaultdict(set)
    by_name: dict[tuple[Any, ...], set[uuid.UUID]] = defaultdict(set)
    known: dict[uuid.UUID, dict[str, Any]] = {}  # candidates' values, as the batch fills them
    if matching:
        candidates = db.execute(
            select(Person.id, func.lower(Person.email).label("email_key"),
                   func.racehub_fold(Person.first_name).label("first_key"),
                   func.racehub_fold(Person.last_name).label("last_key"),
                   *[getattr(Person, n) for n in PERSON_FIELDS])
            .where(Person.tenant_id == ctx.tenant_id, Person.id.in_(_candidate_ids(
                ctx.tenant_id, {k for _, v in matching if (k := email_key(v))},
                {k for _, v in matching if (k := name_key(v))})))
        ).mappings()
        for c in candidates:
            if c["email_key"]:
                by_email[(c["email_key"], c["birth_date"])].add(c["id"])
            by_name[(c["first_key"], c["last_key"], c["birth_date"])].add(c["id"])
            known[c["id"]] = {n: c[n] for n in PERSON_FIELDS}

    new_persons: dict[uuid.UUID, dict[str, Any]] = {}
    for row, vals in new_rows:
        assert row.ep_insert is not None
        person_vals = {k: vals.get(k) for k in PERSON_FIELDS}
        person_id, how = None, "new"
        if row.write.match_person:
            email, name = email_key(vals), name_key(vals)
            if email is not None and len(by_email.get(email, ())) == 1:
                person_id, how = next(iter(by_email[email])), "email_birth_date"
            elif name is not None and len(by_name.get(name, ())) == 1 and not (
                    email is not None and by_email.get(email)):
                # (several Persons with this e-mail and birth date: ambiguous, a new one)
                person_id, how = next(iter(by_name[name])), "name_birth_date"
        if person_id is None:
            person_id = uuid.uuid4()
            new_persons[person_id] = {"id": person_id, "tenant_id": ctx.tenant_id,
                                      **person_vals}
            row.outcome.changes.update(
                {k: (None, v) for k, v in person_vals.items() if v is not None})
            if row.write.match_person:  # later rows of the batch may be the same person
                if (key := email_key(vals)) is not None:
                    by_email[key].add(person_id)
                if (key := name_key(vals)) is not None:
                    by_name[key].add(person_id)
        else:
            # A matched Person keeps its values; the row only fills the ones it lacks.
            person = new_persons.get(person_id) or known[person_id]
            filled = {k: v for k, v in person_vals.items()
                      if v is not None and person.get(k) is None}
            person.update(filled)
            if person_id not in new_persons:
                row.person_changes = filled
            row.outcome.changes.update({k: (None, v) for k, v in filled.items()})
        row.ep_insert["person_id"] = row.outcome.person_id = person_id
        row.outcome.person_match = how
    return new_persons


def _candidate_ids(tenant_id: uuid.UUID, email_keys: set[tuple[Any, ...]],
                   name_keys: set[tuple[Any, ...]]) -> Any:
    """The tenant's Persons holding one of the batch's keys exactly: (lowered e-mail, birth
    date) or (folded first name, folded last name, birth date). Each key is looked up as a
    whole, so the candidates are the matches themselves, not every Person who shares a
    birth date and a last name with some row of the batch (the most common names made
    that read grow with the tenant: measured 5 -> 37 ms of database and 27 -> 69 ms of
    Python per batch of 1,000 over a first sync of 50k)."""
    parts = []
    if email_keys:
        keys = sorted(email_keys)
        by_email = func.unnest(
            bindparam("email_keys", [k[0] for k in keys], type_=ARRAY(Text())),
            bindparam("email_dates", [k[1] for k in keys], type_=ARRAY(Date())),
        ).table_valued("email", "birth_date").render_derived(name="email_key")
        parts.append(select(Person.id).join(by_email, and_(
            Person.birth_date == by_email.c.birth_date,
            func.lower(Person.email, type_=Text) == by_email.c.email))
            .where(Person.tenant_id == tenant_id))
    if name_keys:
        keys = sorted(name_keys)
        by_name = func.unnest(
            bindparam("first_keys", [k[0] for k in keys], type_=ARRAY(Text())),
            bindparam("last_keys", [k[1] for k in keys], type_=ARRAY(Text())),
            bindparam("name_dates", [k[2] for k in keys], type_=ARRAY(Date())),
        ).table_valued("first_key", "last_key", "birth_date").render_derived(name="name_key")
        parts.append(select(Person.id).join(by_name, and_(
            Person.birth_date == by_name.c.birth_date,
            func.racehub_fold(Person.last_name, type_=Text) == by_name.c.last_key,
            func.racehub_fold(Person.first_name, type_=Text) == by_name.c.first_key))
            .where(Person.tenant_id == tenant_id))
    if not parts:
        return select(Person.id).where(false())
    return union(*parts) if len(parts) > 1 else parts[0]


def _folded(db: Session, texts: list[str]) -> dict[str, tuple[str, str]]:
    """Each text lowered and folded as Postgres does (racehub_fold: lower case, accents
    off), so that the batch's own rows compare exactly as stored Persons do."""
    if not texts:
        return {}
    rows = db.execute(
        text("SELECT t, lower(t), racehub_fold(t) FROM unnest(CAST(:texts AS text[])) AS t"),
        {"texts": sorted(set(texts))})
    return {t: (lowered, folded) for t, lowered, folded in rows}


# --- writing ------------------------------------------------------------------------------


def _write(db: Session, ctx: TenantContext, plan: _Plan, updates: list[_Row],
           inserts: list[_Row], persons: list[dict[str, Any]] | None = None) -> None:
    """Persons first (EPs refer to them), then the EP updates level by level (a level's
    rows take bibs the previous one freed), then the new EPs."""
    persons = list(plan.new_persons.values()) if persons is None else persons
    _insert(db, _PERSON, persons)
    person_changes: dict[uuid.UUID, dict[str, Any]] = defaultdict(dict)
    for row in updates + inserts:
        if row.person_changes:
            assert row.outcome.person_id is not None
            person_changes[row.outcome.person_id].update(row.person_changes)
    _update(db, ctx, _PERSON, person_changes, {})
    levels: dict[int, list[_Row]] = defaultdict(list)
    for row in updates:
        levels[row.level].append(row)
    for level in sorted(levels):
        changed: dict[uuid.UUID, dict[str, Any]] = {}
        local: dict[uuid.UUID, list[str]] = {}
        for r in levels[level]:
            assert r.outcome.participant_id is not None
            if r.ep_changes or r.local_add:
                changed[r.outcome.participant_id] = r.ep_changes
            if r.local_add:
                local[r.outcome.participant_id] = r.local_add
        _update(db, ctx, _EP, changed, local)
    _insert(db, _EP, [r.ep_insert for r in inserts if r.ep_insert is not None])


# The statements below send one array per column and unnest them in SQL, rather than a
# VALUES list of one parameter per value: their text is the same for 10 rows or 10,000,
# so neither SQLAlchemy nor Postgres compiles a statement the size of the batch each time.

def _array(rows: list[dict[str, Any]], name: str, type_: Any) -> Any:
    values = [row[name] for row in rows]
    if name in ("local_fields", "local_add"):
        # An array of arrays does not unnest into rows of arrays: each one goes as text.
        return bindparam(name, [",".join(v) for v in values], type_=ARRAY(Text()))
    values = [v.value if isinstance(v, enum.Enum) else v for v in values]
    return bindparam(name, values, type_=ARRAY(type_))


def _unnest(table: Table, names: Sequence[str], rows: list[dict[str, Any]]) -> Any:
    """``unnest(:a, :b, ...) AS u(a, b, ...)``: one array parameter per column."""
    arrays = [_array(rows, n, table.c[n].type if n in table.c else Text()) for n in names]
    return func.unnest(*arrays).table_valued(*names).render_derived(name="u")


def _insert(db: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """One COPY stream of every row (all rows hold the same keys). Measured on the sync's
    first pull of thousands of rows, psycopg adapting one array per column cost the client
    about four times what formatting the same rows as COPY text does. A unique violation
    comes back as the IntegrityError an INSERT raises (``write_participants`` reads it)."""
    if not rows:
        return
    try:
        copy_rows(db, table, rows)
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc


def _update(db: Session, ctx: TenantContext, table: Table,
            changes: dict[uuid.UUID, dict[str, Any]],
            local_add: dict[uuid.UUID, list[str]]) -> None:
    """``UPDATE table SET <changed columns> FROM unnest(...)``, one statement per set of
    changed columns; ``local_add`` joins the EPs' local_fields."""
    groups: dict[tuple[str, ...], list[uuid.UUID]] = defaultdict(list)
    for row_id, cols in changes.items():
        groups[tuple(sorted(cols))].append(row_id)
    for names, ids in groups.items():
        with_local = any(i in local_add for i in ids)
        columns = ["id", *names, *(["local_add"] if with_local else [])]
        u = _unnest(table, columns, [
            {"id": i, **changes[i], "local_add": local_add.get(i, [])} for i in ids])
        assignments: dict[str, Any] = {n: u.c[n] for n in names}
        assignments["updated_at"] = func.now()
        if with_local:
            assignments["local_fields"] = text(
                "ARRAY(SELECT DISTINCT f FROM unnest(event_participants.local_fields "
                "|| string_to_array(u.local_add, ',')) AS f ORDER BY f)")
        db.execute(update(table).where(table.c.id == u.c.id,
                                       table.c.tenant_id == ctx.tenant_id)
                   .values(assignments))


def _write_row_by_row(db: Session, ctx: TenantContext, plan: _Plan) -> None:
    """The fallback after a lost race: each row in a savepoint of its own, so a row whose
    bib or provider record was taken just now is refused alone."""
    inserted: set[uuid.UUID] = set()
    for row in plan.updates() + plan.inserts():
        person_id = row.ep_insert["person_id"] if row.ep_insert else None
        persons = ([plan.new_persons[person_id]] if person_id in plan.new_persons
                   and person_id not in inserted else [])
        updates, inserts = ([], [row]) if row.ep_insert is not None else ([row], [])
        try:
            with db.begin_nested():
                _write(db, ctx, plan, updates, inserts, persons)
        except IntegrityError as exc:
            if violates(exc, ACTIVE_BIB_INDEX):
                row.refuse(f"bib {row.final.get('bib')} was taken in this event by another "
                           "change just now", "bib")
            elif violates(exc, SOURCE_INDEX):
                row.refuse("the source was taken by another change just now", "source_id")
            else:
                raise
        else:
            inserted.update(p["id"] for p in persons)
    # Persons no row ended up using are not left behind.
    plan.new_persons = {k: v for k, v in plan.new_persons.items() if k in inserted}


def _forget_loaded(db: Session, plan: _Plan) -> None:
    """Expire the written EPs and Persons the session holds: the writes bypassed the ORM."""
    for row in plan.rows:
        if row.refused or not (row.outcome.changes or row.local_add):
            continue
        for model, ident in ((EventParticipant, row.outcome.participant_id),
                             (Person, row.outcome.person_id)):
            obj = db.identity_map.get(identity_key(model, ident))
            if obj is not None:
                db.expire(obj)


# --- audit --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _audit(db: Session, ctx: TenantContext, event_id: uuid.UUID, plan: _Plan,
           origin: str) -> None:
    """A single edit keeps its own entry with before and after; a batch writes one entry
    with its counts. Nothing written, nothing recorded."""
    written = [r for r in plan.rows if not r.refused and (r.outcome.created or r.outcome.changes)]
    if not written:
        return
    if len(plan.rows) == 1:
        row = written[0]
        if row.outcome.created:
            assert row.ep_insert is not None
            after = {k: _plain(row.ep_insert[k]) for k in
                     ("category_id", "bib", "registration_id", "team", "status")}
            audit.record(db, ctx, action="participant.create", target_type="participant",
                         target_id=row.outcome.participant_id,
                         after={**after, "person_id": row.outcome.person_id,
                                "person_match": row.outcome.person_match})
        else:
            def label(name: str) -> str:
                return f"person.{name}" if name in PERSON_FIELDS else name
            audit.record(db, ctx, action="participant.update", target_type="participant",
                         target_id=row.outcome.participant_id,
                         before={label(k): _plain(old) for k, (old, _) in
                                 row.outcome.changes.items()},
                         after={label(k): _plain(new) for k, (_, new) in
                                row.outcome.changes.items()})
        return
    outcomes = [r.outcome for r in plan.rows]
    audit.record(db, ctx, action="participant.batch_write", target_type="event",
                 target_id=event_id, after={
                     "origin": origin,
                     "created": sum(o.created for o in outcomes if o.error is None),
                     "updated": sum(1 for o in outcomes if o.error is None and not o.created
                                    and o.changes),
                     "unchanged": sum(1 for o in outcomes if o.error is None and not o.created
                                      and not o.changes),
                     "refused": sum(1 for o in outcomes if o.error is not None),
                     "persons_created": len(plan.new_persons),
                     "persons_matched": sum(1 for o in outcomes if o.person_match
                                            in ("email_birth_date", "name_birth_date")),
                 })
