"""Links: which racehub event each provider event of a connection feeds, and which category
each of its provider races/distances maps to.

An ``EventLink`` row is a provider event chosen on a connection (the connection API's
``eventIds``) or found by discovery (sync/discovery.py: a candidate, not chosen); it is
*linked* once ``event_id`` is set (and then chosen). One racehub event may link several
provider events; a provider event feeds at most one event per
connection (the row is unique per connection and ref). Every query starts from
``scoped(ctx, ...)``, so another tenant's ids are not found.

Only links of registration connections feed participants. A scoring connection's provider
events may be chosen (its adapter reads them) but not linked to an event: pushing start
lists and pulling results per link is the timing sync's part, and it lifts this rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, aliased

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Conflict, Invalid
from racehub.core.query import scoped
from racehub.events import service as events_service
from racehub.events.models import Category, Event
from racehub.providers.catalog import PROVIDERS, Direction
from racehub.sync import schedule
from racehub.sync.exceptions import (
    ConnectionNotFound,
    LinkNotFound,
    LinkSyncing,
    ProviderEventLinked,
)
from racehub.sync.models import (
    CategoryLink,
    EventLink,
    ProviderConnection,
    SyncedRecord,
    SyncRun,
    SyncStatus,
    SyncType,
)
from racehub.sync.schemas import (
    CategoryLinkRead,
    CategoryLinksUpdate,
    LinkCreate,
    LinkRead,
    LinkSyncSettings,
    LinkUpdate,
    WaitingRunRead,
)

UNIQUE_REF = "uq_event_links_connection_id_provider_event_ref"
UNIQUE_CATEGORY_REF = "uq_category_links_link_id_provider_ref"
ACTIVE_STATUSES = [s for s in SyncStatus if s.is_active]
_TYPE_ORDER = {t.value: n for n, t in enumerate(SyncType)}
WAITING_STATUSES = [s for s in SyncStatus if s.is_waiting]


# --- reading ---------------------------------------------------------------------------------


def _syncing() -> Any:
    """The sync types of the link's active runs (NULL: none); one run per type may be
    active, so a timing link may be pushing and pulling at once."""
    return (select(func.array_agg(aggregate_order_by(SyncRun.sync_type, SyncRun.sync_type)))
            .where(SyncRun.link_id == EventLink.id, SyncRun.status.in_(ACTIVE_STATUSES))
            .correlate(EventLink).scalar_subquery().label("syncing"))


def _link_rows(ctx: TenantContext) -> Select[Any]:
    """Links with what a reader is shown beside them: the connection, the event, the types
    of its active runs, and the run waiting for a person (held by the circuit breaker, or
    awaiting review; the oldest, should runs of two types wait)."""
    waiting = aliased(SyncRun)
    first_waiting = aliased(SyncRun)
    oldest = (select(first_waiting.id)
              .where(first_waiting.link_id == EventLink.id,
                     first_waiting.status.in_(WAITING_STATUSES))
              .order_by(first_waiting.created_at, first_waiting.id).limit(1)
              .correlate(EventLink).scalar_subquery())
    return (scoped(ctx, EventLink)
            .add_columns(ProviderConnection.name, ProviderConnection.direction, Event.name,
                         _syncing(), waiting)
            .join(ProviderConnection, ProviderConnection.id == EventLink.connection_id)
            .outerjoin(Event, Event.id == EventLink.event_id)
            .outerjoin(waiting, waiting.id == oldest))


def _waiting(run: SyncRun | None) -> WaitingRunRead | None:
    if run is None:
        return None
    return WaitingRunRead(id=run.id, status=run.status.value, hold_reason=run.hold_reason,
                          waiting_since=run.waiting_since)


def _reads(db: Session, stmt: Select[Any]) -> list[LinkRead]:
    stmt = stmt.order_by(ProviderConnection.name, EventLink.provider_event_ref, EventLink.id)
    return [LinkRead(
        id=link.id, connection_id=link.connection_id, connection_name=connection_name,
        provider=link.provider, provider_label=PROVIDERS[link.provider].label,
        provider_event_ref=link.provider_event_ref,
        provider_event_name=link.provider_event_name, event_id=link.event_id,
        event_name=event_name, participant_source=direction == Direction.REGISTRATION,
        linked_at=link.linked_at, cursor=link.cursor, last_success_at=link.last_success_at,
        auto_sync=link.auto_sync, next_run_at=link.next_run_at,
        sync_settings=LinkSyncSettings.model_validate(link.sync_settings or {}),
        schedule=schedule.read_plan(link), syncing=bool(syncing),
        syncing_types=sorted(syncing or [], key=lambda t: _TYPE_ORDER.get(t, len(_TYPE_ORDER))),
        waiting_run=_waiting(waiting), created_at=link.created_at, updated_at=link.updated_at)
        for link, connection_name, direction, event_name, syncing, waiting in db.execute(stmt)]


def list_event_links(db: Session, ctx: TenantContext, *, event_id: uuid.UUID) -> list[LinkRead]:
    """The provider events feeding one racehub event."""
    events_service.get_event_or_raise(db, ctx, event_id=event_id)
    return _reads(db, _link_rows(ctx).where(EventLink.event_id == event_id))


def list_connection_links(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID
) -> list[LinkRead]:
    """Every provider event chosen on a connection, linked or not (a candidate only
    discovered is not chosen: sync/discovery.py lists those)."""
    _connection_or_raise(db, ctx, connection_id=connection_id)
    return _reads(db, _link_rows(ctx).where(EventLink.connection_id == connection_id,
                                            EventLink.chosen))


def read_link(db: Session, ctx: TenantContext, *, link_id: uuid.UUID) -> LinkRead:
    found = _reads(db, _link_rows(ctx).where(EventLink.id == link_id))
    if not found:
        raise LinkNotFound()
    return found[0]


def get_link_or_raise(
    db: Session, ctx: TenantContext, *, link_id: uuid.UUID, event_id: uuid.UUID | None = None,
    connection_id: uuid.UUID | None = None, for_update: bool = False,
) -> EventLink:
    """A link of the tenant; under an event (or a connection) only one of its own."""
    stmt = scoped(ctx, EventLink).where(EventLink.id == link_id)
    if event_id is not None:
        stmt = stmt.where(EventLink.event_id == event_id)
    if connection_id is not None:
        stmt = stmt.where(EventLink.connection_id == connection_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    link = db.scalar(stmt)
    if link is None:
        raise LinkNotFound()
    return link


def _connection_or_raise(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID
) -> ProviderConnection:
    connection = db.scalar(scoped(ctx, ProviderConnection)
                           .where(ProviderConnection.id == connection_id))
    if connection is None:
        raise ConnectionNotFound()
    return connection


def _active_run(db: Session, link_id: uuid.UUID) -> SyncRun | None:
    return db.scalar(select(SyncRun).where(SyncRun.link_id == link_id,
                                           SyncRun.status.in_(ACTIVE_STATUSES)).limit(1))


def _public(link: EventLink, connection_name: str, event_name: str | None) -> dict[str, Any]:
    """What an audit entry shows of a link."""
    return {"connectionId": str(link.connection_id), "connection": connection_name,
            "provider": link.provider, "providerEventRef": link.provider_event_ref,
            "providerEventName": link.provider_event_name,
            "eventId": str(link.event_id) if link.event_id else None, "event": event_name,
            "autoSync": link.auto_sync, "syncSettings": dict(link.sync_settings or {})}


def _names(db: Session, link: EventLink) -> tuple[str, str | None]:
    """The connection's and the linked event's names (already tenant-checked through link)."""
    connection_name = db.scalar(select(ProviderConnection.name)
                                .where(ProviderConnection.id == link.connection_id)) or ""
    event_name = (db.scalar(select(Event.name).where(Event.id == link.event_id))
                  if link.event_id else None)
    return connection_name, event_name


# --- linking ---------------------------------------------------------------------------------


def create_link(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, data: LinkCreate,
    listed: Mapping[str, str] | None = None, now: datetime | None = None,
) -> EventLink:
    """Link a connection's provider event to ``event_id``; the row is made when the event
    was not chosen on the connection yet. ``listed`` (ref -> name): the provider's events
    when the operator picked from them (``checkProvider``): the ref must be one of them."""
    event = events_service.get_event_or_raise(db, ctx, event_id=event_id)
    connection = _connection_or_raise(db, ctx, connection_id=data.connection_id)
    # A registration connection's provider event feeds the event's participants; a timing
    # (scoring) connection's event/race receives its start list and gives its results.
    participant_source = connection.direction == Direction.REGISTRATION
    ref, name = data.provider_event_ref, data.provider_event_name
    if not participant_source:
        try:
            PROVIDERS[connection.provider].adapter_class().check_start_list_ref(ref)
        except ValueError as exc:
            raise Invalid(f"providerEventRef: {exc}", field="providerEventRef") from None
    if listed is not None:
        if ref not in listed:
            raise Invalid(f"providerEventRef: {ref!r} is not among the events "
                          f"{connection.name!r} lists", field="providerEventRef")
        name = name or listed[ref]
    # Made if missing, then locked: two operators linking the same provider event at once
    # meet here, and the second is told where it went.
    db.execute(pg_insert(EventLink).values(
        id=uuid.uuid4(), tenant_id=ctx.tenant_id, connection_id=connection.id,
        provider=connection.provider, provider_event_ref=ref, provider_event_name=name,
        state={}, auto_sync=True, sync_settings={},
    ).on_conflict_do_nothing(constraint=UNIQUE_REF))
    link = db.scalar(scoped(ctx, EventLink)
                     .where(EventLink.connection_id == connection.id,
                            EventLink.provider_event_ref == ref)
                     .with_for_update().execution_options(populate_existing=True))
    assert link is not None
    label = f"provider event {ref!r}" + (
        f" ({link.provider_event_name})" if link.provider_event_name else "")
    if link.event_id is not None:
        if link.event_id == event.id:
            raise ProviderEventLinked(
                f"{label} of connection {connection.name!r} is already linked to this event")
        other = db.scalar(select(Event.name).where(Event.id == link.event_id))
        raise ProviderEventLinked(
            f"{label} of connection {connection.name!r} already feeds event {other!r}: a "
            "provider event feeds one event per connection; unlink it there first")
    # Its registrations synced into another event are that event's entries (their synced
    # records, keyed tenant-wide by registration id, point at those EPs): feeding them to a
    # second event would rewrite the first event's participants.
    synced = db.execute(
        select(Event.name, func.count()).join(SyncedRecord, SyncedRecord.event_id == Event.id)
        .where(SyncedRecord.link_id == link.id, SyncedRecord.event_id != event.id)
        .group_by(Event.name).limit(1)).first()
    if synced is not None:
        raise ProviderEventLinked(
            f"{label} of connection {connection.name!r} was synced into event {synced[0]!r} "
            f"({synced[1]} registration(s)): its registrations are that event's entries; "
            "link it to that event again")
    link.event_id = event.id
    link.linked_at = now or datetime.now(UTC)
    link.chosen = True  # a candidate only discovered becomes one the adapters read
    if name:
        link.provider_event_name = name
    db.flush()  # updated_at and the row as read back for the response
    # Its participant cadence, or (a timing link) its results pulls.
    schedule.replan(db, link, now=link.linked_at, linked=True)
    audit.record(db, ctx, action="link.create", target_type="event_link", target_id=link.id,
                 after=_public(link, connection.name, event.name))
    return link


def update_link(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, link_id: uuid.UUID,
    data: LinkUpdate, now: datetime | None = None,
) -> EventLink:
    link = get_link_or_raise(db, ctx, link_id=link_id, event_id=event_id, for_update=True)
    names = _names(db, link)
    before = _public(link, *names)
    changes = data.model_dump(exclude_unset=True)
    if "provider_event_name" in changes:
        link.provider_event_name = changes["provider_event_name"]
    if changes.get("auto_sync") is not None:
        link.auto_sync = changes["auto_sync"]
    if "sync_settings" in changes:
        link.sync_settings = _merged_sync_settings(link.sync_settings, data.sync_settings)
    after = _public(link, *names)
    if after != before:
        audit.record(db, ctx, action="link.update", target_type="event_link",
                     target_id=link.id,
                     before={k: v for k, v in before.items() if after[k] != v},
                     after={k: v for k, v in after.items() if before[k] != v})
    if (before["autoSync"], before["syncSettings"]) != (after["autoSync"],
                                                        after["syncSettings"]):
        db.flush()  # the budget reads the link's siblings, and this link, from the database
        schedule.replan(db, link, now=now or datetime.now(UTC))
    db.flush()
    return link


def _merged_sync_settings(current: dict[str, Any] | None,
                          sent: LinkSyncSettings | None) -> dict[str, Any]:
    """The overrides sent set (null: dropped, back to the setting); the others stay.
    ``syncSettings: null`` drops them all."""
    if sent is None:
        return {}
    merged = dict(current or {})
    for key, value in sent.model_dump(exclude_unset=True).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def unlink(db: Session, ctx: TenantContext, *, event_id: uuid.UUID, link_id: uuid.UUID) -> None:
    """The provider event stops feeding the event; it stays chosen on its connection.

    Refused while a run of the link is queued, running or retrying: that run was started
    for this event. The stream starts over when linked again (its cursor belonged to this
    event), and its provider races map to no category (they named this event's)."""
    link = get_link_or_raise(db, ctx, link_id=link_id, event_id=event_id, for_update=True)
    run = _active_run(db, link.id)
    if run is not None:
        raise LinkSyncing(f"provider event {link.provider_event_ref!r} is syncing (run "
                          f"{run.id} is {run.status.value}): unlink it once the run has ended")
    names = _names(db, link)
    before = _public(link, *names)
    link.event_id = None
    link.linked_at = None
    link.cursor = None
    link.state = {}
    link.last_success_at = None
    link.next_run_at = None
    link.schedule_plan = None
    db.execute(update(CategoryLink).where(CategoryLink.tenant_id == ctx.tenant_id,
                                          CategoryLink.link_id == link.id)
               .values(category_id=None))
    audit.record(db, ctx, action="link.delete", target_type="event_link", target_id=link.id,
                 before=before, after={"eventId": None})
    db.flush()


def check_direction(
    db: Session, ctx: TenantContext, *, connection: ProviderConnection, direction: Direction
) -> None:
    """A connection linked to events keeps its direction until unlinked: its links mean
    "feeds participants" or "receives the start list, gives results" by it."""
    if direction == connection.direction:
        return
    linked = db.scalar(select(func.count()).select_from(EventLink).where(
        EventLink.tenant_id == ctx.tenant_id, EventLink.connection_id == connection.id,
        EventLink.event_id.is_not(None)))
    if linked:
        what = ("feeds participants into" if connection.direction == Direction.REGISTRATION
                else "times")
        raise Conflict(f"direction: {connection.name!r} {what} {linked} "
                       "event(s); unlink its provider events before making it a "
                       f"{direction.value} connection", field="direction")


# --- the connection's chosen provider events (its ``eventIds``) ----------------------------


def chosen_refs(db: Session, connection: ProviderConnection) -> list[str]:
    """The provider events chosen on a connection (its chosen links, linked or not), oldest
    first: what the connection API calls ``eventIds`` and what the adapters read as that
    setting. Candidates only discovered are not among them."""
    return list(db.scalars(
        select(EventLink.provider_event_ref)
        .where(EventLink.tenant_id == connection.tenant_id,
               EventLink.connection_id == connection.id, EventLink.chosen)
        .order_by(EventLink.created_at, EventLink.provider_event_ref)))


def choose_events(
    db: Session, ctx: TenantContext, *, connection: ProviderConnection, refs: Sequence[str]
) -> None:
    """Make ``refs`` the connection's chosen provider events: a new one becomes an unlinked
    link (a discovered candidate becomes chosen), an unlinked one left out is removed (one
    discovery found stays a candidate, not chosen), and leaving out a linked one is refused
    (it feeds an event: unlink it first). Links and their streams are kept for refs that
    stay."""
    wanted = list(dict.fromkeys(refs))
    existing = {link.provider_event_ref: link for link in db.scalars(
        scoped(ctx, EventLink).where(EventLink.connection_id == connection.id)
        .with_for_update().execution_options(populate_existing=True))}
    dropped = [link for ref, link in existing.items() if link.chosen and ref not in wanted]
    linked = [link for link in dropped if link.event_id is not None]
    if linked:
        shown = ", ".join(repr(link.provider_event_ref) for link in linked)
        raise Conflict(f"eventIds: provider event {shown} feeds a racehub event; unlink it "
                       "before leaving it out", field="eventIds")
    for link in dropped:
        if link.discovered_at is not None:
            link.chosen = False
        else:
            db.delete(link)
    for ref in wanted:
        if ref in existing and not existing[ref].chosen:
            existing[ref].chosen = True
    missing = [ref for ref in wanted if ref not in existing]
    if missing:
        db.execute(pg_insert(EventLink).values([
            {"id": uuid.uuid4(), "tenant_id": ctx.tenant_id, "connection_id": connection.id,
             "provider": connection.provider, "provider_event_ref": ref, "state": {},
             "auto_sync": True, "sync_settings": {}} for ref in missing
        ]).on_conflict_do_nothing(constraint=UNIQUE_REF))
    db.flush()


# --- category links --------------------------------------------------------------------------


def list_category_links(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, link_id: uuid.UUID
) -> list[CategoryLinkRead]:
    """The provider races/distances seen for a link, each with its category (or none)."""
    get_link_or_raise(db, ctx, link_id=link_id, event_id=event_id)
    rows = db.execute(
        scoped(ctx, CategoryLink).add_columns(Category.name)
        .outerjoin(Category, Category.id == CategoryLink.category_id)
        .where(CategoryLink.link_id == link_id)
        .order_by(CategoryLink.provider_name, CategoryLink.provider_ref))
    return [CategoryLinkRead(id=c.id, provider_ref=c.provider_ref, provider_name=c.provider_name,
                             category_id=c.category_id, category_name=name)
            for c, name in rows]


def set_category_links(
    db: Session, ctx: TenantContext, *, event_id: uuid.UUID, link_id: uuid.UUID,
    data: CategoryLinksUpdate,
) -> list[CategoryLinkRead]:
    """Map each provider race sent to a category of the linked event (or to none); a race
    not seen yet is added. Races not sent keep their mapping."""
    link = get_link_or_raise(db, ctx, link_id=link_id, event_id=event_id, for_update=True)
    for i, row in enumerate(data.categories):
        if row.category_id is not None:
            events_service.get_category_or_raise(db, ctx, event_id=event_id,
                                                 category_id=row.category_id,
                                                 field=f"categories.{i}.categoryId")
    existing = {c.provider_ref: c for c in db.scalars(
        scoped(ctx, CategoryLink).where(CategoryLink.link_id == link.id))}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for row in data.categories:
        current = existing.get(row.provider_ref)
        if current is None:
            current = CategoryLink(tenant_id=ctx.tenant_id, link_id=link.id,
                                   provider_ref=row.provider_ref)
            db.add(current)
            before[row.provider_ref] = None
        elif current.category_id != row.category_id:
            before[row.provider_ref] = str(current.category_id) if current.category_id else None
        if "provider_name" in row.model_fields_set:
            current.provider_name = row.provider_name
        if row.provider_ref in before:
            after[row.provider_ref] = str(row.category_id) if row.category_id else None
        current.category_id = row.category_id
    if after:
        audit.record(db, ctx, action="link.categories", target_type="event_link",
                     target_id=link.id, before={"categories": before},
                     after={"categories": after})
    db.flush()
    return list_category_links(db, ctx, event_id=event_id, link_id=link.id)


def record_seen_categories(
    db: Session, ctx: TenantContext, *, link_id: uuid.UUID, seen: Mapping[str, str | None]
) -> None:
    """The provider races a run met (ref -> name): new ones are stored unmapped for an
    operator to map; known ones keep their mapping and get the newer name."""
    if not seen:
        return
    get_link_or_raise(db, ctx, link_id=link_id)
    stmt = pg_insert(CategoryLink).values([
        {"id": uuid.uuid4(), "tenant_id": ctx.tenant_id, "link_id": link_id,
         "provider_ref": ref, "provider_name": name} for ref, name in seen.items()])
    db.execute(stmt.on_conflict_do_update(
        constraint=UNIQUE_CATEGORY_REF,
        set_={"provider_name": stmt.excluded.provider_name},
        where=stmt.excluded.provider_name.is_not(None)
        & (CategoryLink.provider_name.is_distinct_from(stmt.excluded.provider_name))))
