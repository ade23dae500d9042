"""Business rules for events, categories, people and event participants.

Every query starts from ``_scoped(ctx, Model)``, which filters by the caller's tenant.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from pydantic.alias_generators import to_camel
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.orm import Session, joinedload

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Conflict, Invalid
from racehub.core.pagination import (
    SortColumn,
    SortKey,
    apply_keyset,
    check_limit,
    split_page,
)
from racehub.core.query import contains_pattern, scoped
from racehub.core.schemas import construct_trusted
from racehub.db.adapters import as_read
from racehub.events import writes
from racehub.events.exceptions import (
    BibTaken,
    CategoryInUse,
    CategoryNotFound,
    EventInUse,
    EventNotFound,
    ParticipantNotFound,
    PersonShared,
    SourceTaken,
    TimingIdentifierLocked,
)
from racehub.events.models import (
    BIB_LENGTH_KEY,
    BIB_MISSING_KEY,
    BIB_TEXT_KEY,
    PERSON_FIRST_NAME_KEY,
    PERSON_LAST_NAME_KEY,
    REGISTRATION_ID_KEY,
    Category,
    Event,
    EventParticipant,
    EventStatus,
    ParticipantStatus,
    Person,
    fold,
)
from racehub.events.schemas import (
    CategoryCreate,
    CategoryUpdate,
    EventCreate,
    EventUpdate,
    ParticipantCreate,
    ParticipantRead,
    ParticipantUpdate,
    PersonRead,
    PersonScope,
)
from racehub.jobs import service as jobs_service
from racehub.jobs.handle import RunningJob
from racehub.jobs.models import JobRun, JobStatus
from racehub.jobs.registry import Owner, owner_of

_scoped = scoped


def _snapshot(obj: Any, fields: list[str]) -> dict[str, Any]:
    out = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = value.value if isinstance(value, enum.Enum) else value
    return out


_like = contains_pattern


# --- events ------------------------------------------------------------------------------

EVENT_FIELDS = ["name", "start_at", "timezone", "location", "status",
                "preferred_timing_identifier", "preferred_timing_identifier_locked_at"]

# Called in the transaction of an update that moved an event's start: the sync schedule
# registers one that re-plans the event's links at once (sync/schedule.py), so an event
# moved to tomorrow does not keep its far-off cadence until its next run ends. A list of
# hooks rather than an import: sync builds on events, not the other way round.
START_MOVED: list[Callable[[Session, Event], None]] = []


def get_event_or_raise(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                       for_writing: bool = False) -> Event:
    """The tenant's event. ``for_writing``: also hold its row against deletion until the
    transaction ends (FOR KEY SHARE: edits of the event still go ahead), for whoever starts
    work on the event that no foreign key ties to it (a job naming it in its parameters):
    ``delete_event`` locks the row first, so it either sees that work or the work sees no
    event."""
    stmt = _scoped(ctx, Event).where(Event.id == event_id)
    if for_writing:
        stmt = stmt.with_for_update(key_share=True)
    event = db.scalar(stmt)
    if event is None:
        raise EventNotFound()
    return event


def event_owner(db: Session, ctx: TenantContext, event_id: Any) -> list[Owner]:
    """The event a job run or an import belongs to (its page links back there); nothing
    when it is gone."""
    def lookup() -> Owner:
        event = get_event_or_raise(db, ctx, event_id=uuid.UUID(str(event_id)))
        return Owner("Event", event.name, f"/events/{event.id}")
    return owner_of(lookup)


def list_events(
    db: Session,
    ctx: TenantContext,
    *,
    q: str | None = None,
    status: EventStatus | None = None,
    archived: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Event], str | None]:
    """The tenant's events, the latest start first: the current ones, or with ``archived``
    the archived ones only."""
    check_limit(limit)
    stmt = _scoped(ctx, Event).where(
        Event.archived_at.is_not(None) if archived else Event.archived_at.is_(None))
    if q:
        stmt = stmt.where(or_(Event.name.ilike(_like(q)), Event.location.ilike(_like(q))))
    if status:
        stmt = stmt.where(Event.status == status)
    key = SortKey(columns=[as_read(Event.start_at), Event.id], descending=True)
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    return split_page(rows, limit, lambda e: [e.start_at.isoformat(), e.id])


def participant_counts(
    db: Session, ctx: TenantContext, *, event_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not event_ids:
        return {}
    rows = db.execute(
        select(EventParticipant.event_id, func.count())
        .where(
            EventParticipant.tenant_id == ctx.tenant_id,
            EventParticipant.event_id.in_(event_ids),
            EventParticipant.status == ParticipantStatus.ACTIVE,
        )
        .group_by(EventParticipant.event_id)
    ).all()
    return {event_id: count for event_id, count in rows}


def create_event(db: Session, ctx: TenantContext, *, data: EventCreate) -> Event:
    event = Event(tenant_id=ctx.tenant_id, **data.model_dump())
    db.add(event)
    db.flush()  # id for the audit entry
    audit.record(db, ctx, action="event.create", target_type="event", target_id=event.id,
                 after=_snapshot(event, EVENT_FIELDS))
    return event


def update_event(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, data: EventUpdate
) -> Event:
    event = get_event_or_raise(db, ctx, event_id=event_id)
    before = _snapshot(event, EVENT_FIELDS)
    changes = data.model_dump(exclude_unset=True,
                              exclude={"acknowledge_override", "confirm_full_repush"})
    new_mode = changes.get("preferred_timing_identifier")
    mode_changes = new_mode is not None and new_mode != event.preferred_timing_identifier
    repush = False
    if mode_changes:
        # The sync domain builds on this one; imported here, where a push is asked for.
        from racehub.sync import timing_push

        repush = timing_push.guard_identifier_change(
            db, ctx, event=event, confirmed=data.confirm_full_repush)
    if mode_changes and event.preferred_timing_identifier_locked_at is not None:
        if not (data.acknowledge_override or data.confirm_full_repush):
            raise TimingIdentifierLocked(
                f"The timing identifier is locked to {event.preferred_timing_identifier.value}"
                " since the first timing export. Changing it makes the timing system see "
                "new ExternalReferenceIDs: rows it already holds may be duplicated and "
                "old result files will no longer match. Send acknowledgeOverride=true "
                "to change it anyway.",
                field="preferredTimingIdentifier",
            )
        event.preferred_timing_identifier_locked_at = None
        audit.record(
            db, ctx, action="event.timing_identifier_override", target_type="event",
            target_id=event.id,
            before={"preferred_timing_identifier": event.preferred_timing_identifier.value,
                    "locked_at": before["preferred_timing_identifier_locked_at"]},
            after={"preferred_timing_identifier": new_mode.value,
                   **({"full_repush": True} if repush else {})},
        )
    for name, value in changes.items():
        if value is None and name in ("name", "start_at", "timezone", "status",
                                      "preferred_timing_identifier"):
            raise Invalid(f"{to_camel(name)} cannot be null", field=to_camel(name))
        setattr(event, name, value)
    if "start_at" in changes and event.start_at.tzinfo is None:
        from zoneinfo import ZoneInfo

        event.start_at = event.start_at.replace(tzinfo=ZoneInfo(event.timezone))
    db.flush()
    after = _snapshot(event, EVENT_FIELDS)
    diff_before = {k: v for k, v in before.items() if after[k] != v}
    if "start_at" in diff_before:
        for hook in START_MOVED:
            hook(db, event)
    if diff_before:
        audit.record(db, ctx, action="event.update", target_type="event", target_id=event.id,
                     before=diff_before, after={k: after[k] for k in diff_before})
    if repush:
        # Every timing link pushed again under the new mode, in this transaction.
        timing_push.request_full_repush(db, ctx, event=event)
    return event


def set_event_archived(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                       archived: bool) -> Event:
    """Archive (out of the default lists) or bring back an event; nothing else changes."""
    event = get_event_or_raise(db, ctx, event_id=event_id)
    if (event.archived_at is not None) == archived:
        return event  # already so: no change, no audit entry
    before = event.archived_at
    event.archived_at = datetime.now(UTC) if archived else None
    db.flush()
    audit.record(db, ctx, action="event.archive" if archived else "event.unarchive",
                 target_type="event", target_id=event.id,
                 before={"archived_at": before}, after={"archived_at": event.archived_at})
    return event


def _count_phrase(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _event_blockers(db: Session, ctx: TenantContext, event: Event) -> list[str]:
    """Why ``event`` cannot be deleted, in words ("it has 320 participants"): its entries
    and running bib assignments here, then each domain's guards (results, provider links,
    sync runs, imports, exports)."""
    from racehub import domains

    reasons = []
    entries = db.scalar(select(func.count()).where(
        EventParticipant.tenant_id == ctx.tenant_id, EventParticipant.event_id == event.id))
    if entries:
        reasons.append("it has " + _count_phrase(entries, "participant", "participants"))
    bib_jobs = db.scalar(select(func.count()).where(
        JobRun.tenant_id == ctx.tenant_id, JobRun.kind == ASSIGN_BIBS_KIND,
        JobRun.params["event_id"].astext == str(event.id),
        JobRun.status.not_in([s for s in JobStatus if s.is_terminal])))
    if bib_jobs:
        reasons.append("a bib assignment is running")
    for module in domains.guard_modules():
        check = getattr(module, "event_blockers", None)
        if check is not None:
            reasons.extend(check(db, ctx, event))
    return reasons


def delete_event(db: Session, ctx: TenantContext, *, event_id: uuid.UUID) -> None:
    """Delete an event nothing holds: no entries, results, provider links or running jobs
    (its categories go with it). Otherwise EventInUse naming every reason.

    The event row is locked first (FOR UPDATE), so the check and the delete see the same
    event: a sync, an import or a person writing into it either committed before (and the
    check counts it) or waits, and then finds no event (its foreign key to the event, or
    ``get_event_or_raise(for_writing=True)`` for work tied to it by parameters only)."""
    event = db.scalar(_scoped(ctx, Event).where(Event.id == event_id).with_for_update())
    if event is None:
        raise EventNotFound()
    reasons = _event_blockers(db, ctx, event)
    if reasons:
        raise EventInUse(f"{event.name} cannot be deleted: " + "; ".join(reasons) + ".")
    snapshot = _snapshot(event, EVENT_FIELDS)
    categories = [c.name for c in db.scalars(
        _scoped(ctx, Category).where(Category.event_id == event.id).order_by(Category.name))]
    db.expunge(event)
    # A statement, not session.delete(): the categories go by their key's cascade.
    db.execute(delete(Event).where(Event.id == event.id, Event.tenant_id == ctx.tenant_id))
    audit.record(db, ctx, action="event.delete", target_type="event", target_id=event_id,
                 before={**snapshot, "categories": categories})


def lock_timing_identifier(db: Session, ctx: TenantContext, *, event: Event) -> bool:
    """Set the lock on first use; returns True when this call set it."""
    if event.preferred_timing_identifier_locked_at is not None:
        return False
    event.preferred_timing_identifier_locked_at = datetime.now(UTC)
    return True


# --- categories --------------------------------------------------------------------------


def list_categories(db: Session, ctx: TenantContext, *, event_id: uuid.UUID) -> list[Category]:
    get_event_or_raise(db, ctx, event_id=event_id)
    return list(
        db.scalars(_scoped(ctx, Category).where(Category.event_id == event_id)
                   .order_by(Category.name))
    )


def get_category_or_raise(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, category_id: uuid.UUID,
    field: str | None = None,
) -> Category:
    category = db.scalar(
        _scoped(ctx, Category).where(Category.id == category_id, Category.event_id == event_id)
    )
    if category is None:
        raise CategoryNotFound(field=field)
    return category


def participant_counts_by_category(db: Session, ctx: TenantContext, *,
                                   category_id: uuid.UUID) -> int:
    """Entries in a category, withdrawn ones too (what deleting it would move)."""
    return db.scalar(select(func.count()).where(
        EventParticipant.tenant_id == ctx.tenant_id,
        EventParticipant.category_id == category_id)) or 0


def create_category(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, data: CategoryCreate
) -> Category:
    get_event_or_raise(db, ctx, event_id=event_id)
    exists = db.scalar(
        _scoped(ctx, Category).where(Category.event_id == event_id, Category.name == data.name)
    )
    if exists is not None:
        raise Conflict(f"this event already has a category named {data.name!r}", field="name")
    category = Category(tenant_id=ctx.tenant_id, event_id=event_id, **data.model_dump())
    db.add(category)
    db.flush()
    audit.record(db, ctx, action="category.create", target_type="category",
                 target_id=category.id, after={"event_id": event_id, **data.model_dump()})
    return category


CATEGORY_FIELDS = ["name", "distance_m", "start_at", "bib_range_start", "bib_range_end"]


def update_category(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, category_id: uuid.UUID,
    data: CategoryUpdate,
) -> Category:
    category = get_category_or_raise(db, ctx, event_id=event_id, category_id=category_id)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise Invalid("name is required", field="name")
    if changes.get("name") not in (None, category.name):
        taken = db.scalar(_scoped(ctx, Category).where(
            Category.event_id == event_id, Category.name == changes["name"],
            Category.id != category.id))
        if taken is not None:
            raise Conflict(f"this event already has a category named {changes['name']!r}",
                           field="name")
    start = changes.get("bib_range_start", category.bib_range_start)
    end = changes.get("bib_range_end", category.bib_range_end)
    if start is not None and end is not None and end < start:
        raise Invalid(f"the bib range must not end ({end}) below its start ({start})",
                      field="bibRangeEnd")
    before = _snapshot(category, CATEGORY_FIELDS)
    for name, value in changes.items():
        setattr(category, name, value)
    db.flush()
    after = _snapshot(category, CATEGORY_FIELDS)
    diff = {k: v for k, v in before.items() if after[k] != v}
    if diff:
        audit.record(db, ctx, action="category.update", target_type="category",
                     target_id=category.id, before=diff,
                     after={k: after[k] for k in diff})
    return category


def delete_category(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, category_id: uuid.UUID,
    move_to: uuid.UUID | None = None,
) -> int:
    """Delete a category; its entries (withdrawn ones too) and the provider races mapped to
    it move to ``move_to``, another category of the same event, in the same step. Without
    one, a category holding any is refused (CategoryInUse, naming them). Returns how many
    entries moved.

    The category row is locked (FOR UPDATE) before its entries are counted: a sync or a
    person putting an entry into it meanwhile either committed first (and is counted and
    moved) or waits and then finds no category (its foreign key refuses)."""
    category = db.scalar(_scoped(ctx, Category).where(
        Category.id == category_id, Category.event_id == event_id).with_for_update())
    if category is None:
        raise CategoryNotFound()
    target = None
    if move_to is not None:
        if move_to == category.id:
            raise Invalid("choose another category to move the participants to",
                          field="moveTo")
        target = get_category_or_raise(db, ctx, event_id=event_id, category_id=move_to,
                                       field="moveTo")
    from racehub import domains

    bib_jobs = db.scalar(select(func.count()).where(
        JobRun.tenant_id == ctx.tenant_id, JobRun.kind == ASSIGN_BIBS_KIND,
        JobRun.subject_id == category.id,
        JobRun.status.not_in([s for s in JobStatus if s.is_terminal])))
    if bib_jobs:
        raise CategoryInUse(f"{category.name} cannot be deleted: a bib assignment is running "
                            "in it.")
    ep = EventParticipant
    entries = db.scalar(select(func.count()).where(
        ep.tenant_id == ctx.tenant_id, ep.category_id == category.id)) or 0
    if target is None:
        reasons = []
        if entries:
            reasons.append("it has " + _count_phrase(entries, "participant", "participants"))
        for module in domains.guard_modules():
            check = getattr(module, "category_blockers", None)
            if check is not None:
                reasons.extend(check(db, ctx, category))
        if reasons:
            raise CategoryInUse(
                f"{category.name} cannot be deleted: " + "; ".join(reasons)
                + ". Choose a category to move them to.", field="moveTo")
    else:
        db.execute(update(ep).where(ep.tenant_id == ctx.tenant_id,
                                    ep.category_id == category.id)
                   .values(category_id=target.id, updated_at=func.now()))
        for module in domains.guard_modules():
            move = getattr(module, "move_category", None)
            if move is not None:
                move(db, ctx, category, target)
    snapshot = _snapshot(category, CATEGORY_FIELDS)
    db.expunge(category)
    db.execute(delete(Category).where(Category.id == category.id,
                                      Category.tenant_id == ctx.tenant_id))
    audit.record(db, ctx, action="category.delete", target_type="category",
                 target_id=category_id,
                 before={"event_id": event_id, **snapshot},
                 after={"moved_to": target.id if target else None,
                        "moved_to_name": target.name if target else None,
                        "participants_moved": entries if target else 0})
    return entries if target else 0


# --- participants ------------------------------------------------------------------------


class ParticipantSort(enum.StrEnum):
    BIB = "bib"
    LAST_NAME = "last_name"
    FIRST_NAME = "first_name"
    REGISTRATION_ID = "registration_id"
    CREATED_AT = "created_at"


def participant_sort_columns(sort: ParticipantSort) -> list[SortColumn]:
    """The keyset order of a participant list sorted by ``sort`` (the list page and its
    export walk the same one). Each list matches an index in events.models; the last
    column makes the order total."""
    ep = EventParticipant
    if sort is ParticipantSort.BIB:
        return [BIB_MISSING_KEY, BIB_LENGTH_KEY, BIB_TEXT_KEY, ep.id]
    if sort is ParticipantSort.LAST_NAME:
        return [PERSON_LAST_NAME_KEY, PERSON_FIRST_NAME_KEY, Person.id, ep.id]
    if sort is ParticipantSort.FIRST_NAME:
        return [PERSON_FIRST_NAME_KEY, PERSON_LAST_NAME_KEY, Person.id, ep.id]
    if sort is ParticipantSort.REGISTRATION_ID:
        return [REGISTRATION_ID_KEY, ep.id]
    return [ep.created_at, ep.id]


@dataclass(frozen=True)
class ParticipantFilter:
    q: str | None = None
    status: ParticipantStatus | None = None
    category_id: uuid.UUID | None = None


def _search_condition(ctx: TenantContext, event_id: uuid.UUID, q: str) -> ColumnElement[bool]:
    """A bib or registration id exactly, or people whose name/e-mail hold every word.

    A union of three index lookups rather than one OR across the join: each arm uses its
    own index, and the planner sees how few rows match.
    """
    ep = EventParticipant
    term = q.strip()
    words = [fold(literal(_like(word))) for word in term.split()]
    in_event = _scoped(ctx, EventParticipant).with_only_columns(ep.id).where(
        ep.event_id == event_id)
    matches = union(
        in_event.where(ep.bib == term),
        in_event.where(ep.registration_id == term),
        in_event.join(Person, Person.id == ep.person_id).where(
            Person.tenant_id == ctx.tenant_id, *[Person.search_text.like(w) for w in words]),
    )
    return ep.id.in_(matches)


def participants_query(
    ctx: TenantContext, event_id: uuid.UUID, flt: ParticipantFilter
) -> Select[EventParticipant]:
    """The tenant's participants of one event matching ``flt``, unordered: the list page
    and its export add their order and paging."""
    ep = EventParticipant
    stmt = _scoped(ctx, EventParticipant).where(ep.event_id == event_id)
    if flt.status is not None:
        stmt = stmt.where(ep.status == flt.status)
    if flt.category_id is not None:
        stmt = stmt.where(ep.category_id == flt.category_id)
    if flt.q and flt.q.strip():
        stmt = stmt.where(_search_condition(ctx, event_id, flt.q))
    return stmt


# What a page of the list reads: the read model's fields, in one row per participant.
_PARTICIPANT_COLUMNS: tuple[Any, ...] = (
    EventParticipant.id, EventParticipant.event_id, EventParticipant.category_id,
    EventParticipant.bib, EventParticipant.registration_id, EventParticipant.team,
    EventParticipant.status, EventParticipant.withdrawn_at, EventParticipant.withdrawn_reason,
    EventParticipant.transferred_from_id, EventParticipant.source_provider,
    EventParticipant.source_id, EventParticipant.created_at, EventParticipant.updated_at,
    Category.name,
)
_PERSON_COLUMNS: tuple[Any, ...] = (
    Person.id, Person.first_name, Person.last_name, Person.birth_date, Person.gender,
    Person.email, Person.nationality, Person.city, Person.region, Person.country,
)
_PARTICIPANT_FIELDS = ("id", "event_id", "category_id", "bib", "registration_id", "team",
                       "status", "withdrawn_at", "withdrawn_reason", "transferred_from_id",
                       "source_provider", "source_id", "created_at", "updated_at",
                       "category_name")
_PERSON_FIELDS = ("id", "first_name", "last_name", "birth_date", "gender", "email",
                  "nationality", "city", "region", "country")


def _participant_read(row: Sequence[Any]) -> ParticipantRead:
    """A page row as its read model, built without validation: the values come from the
    database columns the model mirrors (validating 50 rows cost more than the query, and
    ``model_construct``'s alias lookups a third of the page's CPU)."""
    n = len(_PARTICIPANT_FIELDS)
    values = dict(zip(_PARTICIPANT_FIELDS, row[:n], strict=True))
    values["person"] = construct_trusted(
        PersonRead, dict(zip(_PERSON_FIELDS, row[n:], strict=True)))
    return construct_trusted(ParticipantRead, values)


def _page_statement(base: Select[Any], tenant_id: Any, sort: ParticipantSort, descending: bool,
                    cursor: str | None, limit: int) -> Select[Any]:
    """A page of ``base`` (``participants_query``): the read model's columns, then the
    sort key's (for the next cursor)."""
    columns = participant_sort_columns(sort)
    return apply_keyset(
        base.with_only_columns(*_PARTICIPANT_COLUMNS, *_PERSON_COLUMNS)
        .join(Person, Person.id == EventParticipant.person_id)
        .outerjoin(Category, Category.id == EventParticipant.category_id)
        .where(Person.tenant_id == tenant_id),  # lets the name sorts walk the persons index
        SortKey(columns=columns, descending=descending),
        cursor,
        limit,
    ).add_columns(*columns)


@lru_cache(maxsize=128)
def _first_page_statement(sort: ParticipantSort, descending: bool, by_status: bool,
                          by_category: bool, limit: int) -> Select[Any]:
    """``_page_statement`` of a first page without a search, with bound parameters in
    place of the tenant, the event and the filter's values (``tenant_id``, ``event_id``,
    ``status``, ``category_id``): the same SQL, built once per shape. Composing the
    statement and computing its cache key cost more CPU than the rows it reads; a built
    statement keeps its key."""
    tenant_id: Any = bindparam("tenant_id")
    # The same builders as every other page, handed parameters for values (the tenant
    # scope included: scoped() compares the tenant column with what it is given).
    ctx = cast(TenantContext, _ParameterScope(tenant_id))
    flt = ParticipantFilter(
        status=cast(ParticipantStatus, bindparam("status")) if by_status else None,
        category_id=cast(uuid.UUID, bindparam("category_id")) if by_category else None)
    base = participants_query(ctx, cast(uuid.UUID, bindparam("event_id")), flt)
    return _page_statement(base, tenant_id, sort, descending, None, limit)


@dataclass(frozen=True)
class _ParameterScope:
    """Stands in for a TenantContext where a statement is built once for every tenant:
    its tenant is the ``tenant_id`` parameter, bound when the statement runs."""

    tenant_id: Any


def list_participants(
    db: Session,
    ctx: TenantContext,
    *,
    event_id: uuid.UUID,
    flt: ParticipantFilter | None = None,
    sort: ParticipantSort = ParticipantSort.LAST_NAME,
    descending: bool = False,
    cursor: str | None = None,
    limit: int = 50,
    with_total: bool = True,
) -> tuple[list[ParticipantRead], str | None, int | None]:
    """One page of an event's participants, the cursor of the next, and the filtered total
    (None unless ``with_total``: counting visits every matching row, which at 50k EPs costs
    more than the page itself, and a display polling the list has no use for it).

    The page is read as plain rows straight into the read models: loading ORM objects
    (identity map, the person and category object graph) cost about as much as the query.
    """
    check_limit(limit)
    flt = flt or ParticipantFilter()
    # The first page without a search (what a display polls) runs a statement built once
    # per shape; composing this query anyway (for nothing, unless counting) cost ~7% of it.
    first_page = cursor is None and not (flt.q and flt.q.strip())
    base = None if first_page and not with_total else participants_query(ctx, event_id, flt)
    total = (db.scalar(base.with_only_columns(func.count()).order_by(None)) or 0
             if base is not None and with_total else None)
    if first_page:
        # The values are bound at execution.
        stmt = _first_page_statement(sort, descending, flt.status is not None,
                                     flt.category_id is not None, limit)
        params: dict[str, Any] = {"tenant_id": ctx.tenant_id, "event_id": event_id}
        if flt.status is not None:
            params["status"] = flt.status
        if flt.category_id is not None:
            params["category_id"] = flt.category_id
        rows = db.execute(stmt, params).all()
    else:
        assert base is not None
        rows = db.execute(_page_statement(base, ctx.tenant_id, sort, descending, cursor,
                                          limit)).all()
    if not rows:
        # Only an empty page asks whether the event exists (another tenant's, or none: 404);
        # rows of the event prove it.
        get_event_or_raise(db, ctx, event_id=event_id)
    width = len(_PARTICIPANT_COLUMNS) + len(_PERSON_COLUMNS)
    page, next_cursor = split_page(rows, limit, lambda row: list(row[width:]))
    return [_participant_read(row[:width]) for row in page], next_cursor, total


def get_participant_or_raise(
    db: Session, ctx: TenantContext, *, participant_id: uuid.UUID
) -> EventParticipant:
    ep = db.scalar(
        _scoped(ctx, EventParticipant)
        .where(EventParticipant.id == participant_id)
        .options(joinedload(EventParticipant.person), joinedload(EventParticipant.category))
    )
    if ep is None:
        raise ParticipantNotFound()
    return ep


def _raise_refusal(outcome: writes.WriteOutcome) -> None:
    """A refused single write as the API's error: the same kinds and fields as ever."""
    if outcome.error is None:
        return
    if outcome.error_field == "bib":
        raise BibTaken(outcome.error, field="bib")
    if outcome.error_field == "source_id":
        raise SourceTaken(outcome.error, field="sourceId")
    if outcome.error_field == "participant_id":
        raise ParticipantNotFound()
    if outcome.error_field == "category_id":
        raise CategoryNotFound(field="categoryId")
    raise Invalid(outcome.error, field=to_camel(outcome.error_field or "") or None)


# WriteOutcome.person_match (and a synced record's) -> what it means.
PERSON_MATCH_REASONS = {
    "new": "no person of the tenant matched: a new person was made",
    "email_birth_date": "matched an existing person by e-mail and birth date",
    "name_birth_date": "matched an existing person by name and birth date",
    "given": "the person given (personId)",
}


def create_participant(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, data: ParticipantCreate
) -> EventParticipant:
    return add_participant(db, ctx, event_id=event_id, data=data)[0]


def add_participant(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, data: ParticipantCreate
) -> tuple[EventParticipant, str]:
    """A new entry and how its person was chosen (a PERSON_MATCH_REASONS key). A new
    person is matched to the tenant's persons as the sync matches them (e-mail + birth
    date, else folded name + birth date, one candidate only) unless ``match_person`` is
    off; the audit entry of the create records the match."""
    get_event_or_raise(db, ctx, event_id=event_id)
    if data.category_id is not None:
        get_category_or_raise(db, ctx, event_id=event_id, category_id=data.category_id,
                              field="categoryId")
    if data.person_id is not None:
        person = db.scalar(_scoped(ctx, Person).where(Person.id == data.person_id))
        if person is None:
            raise Invalid("person not found", field="personId")
    if (data.source_provider is None) != (data.source_id is None):
        # Half a source would never be matched by a sync (which looks up both).
        missing = "sourceId" if data.source_id is None else "sourceProvider"
        raise Invalid("give both sourceProvider and sourceId, or neither", field=missing)
    values = data.model_dump(exclude={"person", "person_id", "source_provider", "source_id",
                                      "match_person"})
    if data.person is not None:
        values |= data.person.model_dump()
    else:
        values[writes.PERSON_ID] = data.person_id
    source = ((data.source_provider, data.source_id)
              if data.source_provider is not None and data.source_id is not None else None)
    [outcome] = writes.write_participants(
        db, ctx, event_id=event_id, origin="api", mark_local=True,
        rows=[writes.ParticipantWrite(None, values, source=source,
                                      match_person=data.match_person)])
    _raise_refusal(outcome)
    assert outcome.participant_id is not None
    ep = get_participant_or_raise(db, ctx, participant_id=outcome.participant_id)
    return ep, outcome.person_match or "given"


@dataclass(frozen=True)
class SharingEntry:
    """Another entry sharing a person: where, and its name there."""

    participant_id: uuid.UUID
    event_id: uuid.UUID
    event_name: str
    bib: str | None


def entries_sharing_person(db: Session, ctx: TenantContext, *,
                           ep: EventParticipant) -> list[SharingEntry]:
    """The other entries of the tenant whose person is ``ep``'s (matched across events or
    providers), the newest event first."""
    rows = db.execute(
        select(EventParticipant.id, Event.id, Event.name, EventParticipant.bib)
        .join(Event, Event.id == EventParticipant.event_id)
        .where(EventParticipant.tenant_id == ctx.tenant_id,
               EventParticipant.person_id == ep.person_id, EventParticipant.id != ep.id)
        .order_by(Event.start_at.desc(), EventParticipant.id)).all()
    return [SharingEntry(*row) for row in rows]


def separate_person(db: Session, ctx: TenantContext, *, ep: EventParticipant) -> Person:
    """Give ``ep`` a Person of its own: a copy of the one it shares (the others keep it).
    The caller records why (its audit entry)."""
    old = ep.person
    person = Person(id=uuid.uuid4(), tenant_id=ctx.tenant_id,
                    **{name: getattr(old, name) for name in writes.PERSON_FIELDS})
    db.add(person)
    ep.person = person
    db.flush()  # the new person's row before the entry (and the caller's audit) refer to it
    return person


def _person_edits(ep: EventParticipant, person_changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in person_changes.items() if getattr(ep.person, k) != v}


def update_participant(
    db: Session, ctx: TenantContext, *, participant_id: uuid.UUID, data: ParticipantUpdate
) -> EventParticipant:
    return edit_participant(db, ctx, participant_id=participant_id, data=data)[0]


def edit_participant(
    db: Session, ctx: TenantContext, *, participant_id: uuid.UUID, data: ParticipantUpdate
) -> tuple[EventParticipant, int]:
    """Change an entry and its person; also how many other entries share the person the
    edit changed. A person field change of a person other entries share is never silent:
    without ``person_scope`` it is refused (PersonShared, naming them); 'shared' changes
    the person of all of them, 'own' first gives this entry its own copy (as a split of a
    wrong match does) and changes that."""
    ep = get_participant_or_raise(db, ctx, participant_id=participant_id)
    changes = data.model_dump(exclude_unset=True, exclude={"person", "person_scope"})
    if changes.get("category_id") is not None:
        get_category_or_raise(db, ctx, event_id=ep.event_id, category_id=changes["category_id"],
                              field="categoryId")
    if "status" in changes and changes["status"] is None:
        raise Invalid("status cannot be null", field="status")
    person_changes = data.person.model_dump(exclude_unset=True) if data.person else {}
    for name in ("first_name", "last_name"):
        if name in person_changes and person_changes[name] is None:
            raise Invalid(f"{to_camel(name)} cannot be empty", field=f"person.{to_camel(name)}")
    shared_with = 0
    if _person_edits(ep, person_changes):
        others = entries_sharing_person(db, ctx, ep=ep)
        if others and data.person_scope is None:
            where = ", ".join(f"{o.event_name!r}" + (f" (bib {o.bib})" if o.bib else "")
                              for o in others[:5]) + (" ..." if len(others) > 5 else "")
            raise PersonShared(
                f"this person is shared with {len(others)} other entr"
                f"{'y' if len(others) == 1 else 'ies'}: {where}. Send personScope 'shared' "
                "to change the person of all of them, or 'own' to give this entry its own "
                "person first", field="personScope")
        if others and data.person_scope == PersonScope.OWN:
            old_id = ep.person_id
            separate_person(db, ctx, ep=ep)
            audit.record(db, ctx, action="participant.own_person", target_type="participant",
                         target_id=ep.id, before={"person_id": old_id},
                         after={"person_id": ep.person_id, "reason": "edited alone",
                                "others_sharing_the_old_person": len(others)})
        elif others:
            shared_with = len(others)
            audit.record(db, ctx, action="participant.shared_person_edit",
                         target_type="participant", target_id=ep.id,
                         after={"person_id": ep.person_id, "fields": sorted(person_changes),
                                "other_entries": [str(o.participant_id) for o in others]})
    [outcome] = writes.write_participants(
        db, ctx, event_id=ep.event_id, origin="api", mark_local=True,
        rows=[writes.ParticipantWrite(ep.id, {**changes, **person_changes})])
    _raise_refusal(outcome)
    return ep, shared_with


# --- bib assignment (runs as a job) --------------------------------------------------------

ASSIGN_BIBS_KIND = "events.assign_bibs"


def start_bib_assignment(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, category_id: uuid.UUID,
    first_bib: int | None,
) -> JobRun:
    """Queue a job giving bibs to the category's active participants that have none."""
    # Held against deletion of the event while the job is queued (delete_event).
    get_event_or_raise(db, ctx, event_id=event_id, for_writing=True)
    category = get_category_or_raise(db, ctx, event_id=event_id, category_id=category_id)
    start = first_bib or category.bib_range_start or 1
    if category.bib_range_end is not None and start > category.bib_range_end:
        raise Invalid(f"first bib {start} is above the category's range end "
                      f"{category.bib_range_end}", field="firstBib")
    return jobs_service.start_job(
        db, ctx, kind=ASSIGN_BIBS_KIND,
        params={"event_id": str(event_id), "category_id": str(category_id), "first_bib": start},
        message=f"Assign bibs from {start} in {category.name}", subject_id=category.id,
    )


def taken_numeric_bibs(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                        from_bib: int) -> set[int]:
    numeric = case((EventParticipant.bib.op("~")("^[0-9]{1,9}$"),
                    EventParticipant.bib.cast(BigInteger)), else_=None)
    rows = db.scalars(
        select(numeric).where(
            EventParticipant.tenant_id == ctx.tenant_id,
            EventParticipant.event_id == event_id,
            EventParticipant.status == ParticipantStatus.ACTIVE,
            numeric >= from_bib,
        )
    )
    return {int(r) for r in rows}


def _unnumbered(ctx: TenantContext, event_id: uuid.UUID, category_id: uuid.UUID) -> Select[Any]:
    return (
        _scoped(ctx, EventParticipant)
        .join(Person, Person.id == EventParticipant.person_id)
        .where(EventParticipant.event_id == event_id,
               EventParticipant.category_id == category_id,
               EventParticipant.status == ParticipantStatus.ACTIVE,
               EventParticipant.bib.is_(None))
    )


def assign_bibs(
    db: Session, ctx: TenantContext, *, job: RunningJob, event_id: str, category_id: str,
    first_bib: int, batch_size: int,
) -> None:
    """Give consecutive free numbers, alphabetically by name, one committed batch at a time.

    Only participants without a bib are touched, and the checkpoint holds the next number
    to try, so a resumed or restarted run neither renumbers anyone nor reuses a number.
    """
    event_uuid, category_uuid = uuid.UUID(event_id), uuid.UUID(category_id)
    category = get_category_or_raise(db, ctx, event_id=event_uuid, category_id=category_uuid)
    state = job.checkpoint or {"next_bib": first_bib, "assigned": 0}
    remaining = db.scalar(
        select(func.count()).select_from(_unnumbered(ctx, event_uuid, category_uuid).subquery())
    ) or 0
    job.set_progress(stage="Assigning", total=state["assigned"] + remaining,
                     done=state["assigned"])
    while True:
        batch = list(db.scalars(
            _unnumbered(ctx, event_uuid, category_uuid)
            .order_by(PERSON_LAST_NAME_KEY, PERSON_FIRST_NAME_KEY, EventParticipant.id)
            .limit(batch_size)
            .with_for_update(of=EventParticipant)
        ))
        if not batch:
            break
        taken = taken_numeric_bibs(db, ctx, event_id=event_uuid, from_bib=state["next_bib"])
        candidate = state["next_bib"]
        for ep in batch:
            while candidate in taken:
                candidate += 1
            if category.bib_range_end is not None and candidate > category.bib_range_end:
                db.rollback()
                raise Invalid(
                    f"bib range {category.bib_range_start}-{category.bib_range_end} of "
                    f"{category.name} is used up after {state['assigned']} bibs; widen the "
                    "range and run again (numbered participants keep their bibs)"
                )
            ep.bib = str(candidate)
            candidate += 1
        state = {"next_bib": candidate, "assigned": state["assigned"] + len(batch)}
        audit.record(db, ctx, action="participant.bibs_assigned", target_type="category",
                     target_id=category_uuid,
                     after={"count": len(batch), "first": batch[0].bib, "last": batch[-1].bib})
        job.commit_batch(checkpoint=state, done=state["assigned"],
                         counts={"assigned": state["assigned"]},
                         message=f"Assigned {state['assigned']} bibs, next is {candidate}")
