"""Candidates: the provider events of a tenant's connections (discovered or chosen), and
what an operator does with one: link it to an existing racehub event, or create a racehub
event from it, its race's sub-events/distances becoming the event's categories.

Linking goes through ``links.create_link`` (audited ``link.create``); the event and its
categories through the events service (audited ``event.create``, ``category.create``);
the race -> category mapping through ``links.set_category_links`` (audited
``link.categories``). Nothing is guessed: a start or a time zone the provider did not give
must come from the operator.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy import Select, or_
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.exceptions import Forbidden, Invalid
from racehub.core.query import contains_pattern, scoped
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import Event
from racehub.events.schemas import CategoryCreate, EventCreate
from racehub.providers.catalog import PROVIDERS, Direction
from racehub.providers.settings import describe
from racehub.sync import links
from racehub.sync.discovery_schemas import CandidateEventCreate, CandidateRead
from racehub.sync.exceptions import LinkNotFound, ProviderEventLinked
from racehub.sync.models import EventLink, ProviderConnection
from racehub.sync.schemas import CategoryLinkSet, CategoryLinksUpdate, LinkCreate
from racehub.sync.service import get_connection_or_raise

LIST_LIMIT = 500
NEAR_DAYS = 3  # the event page offers candidates starting this close to the event
CATEGORY_NAME_MAX = 120
# Distances whose length is their definition (not a guess); anything else stays unset.
_NAMED_DISTANCES = {"marathon": 42195, "half marathon": 21098, "half-marathon": 21098}
_UNITS = {"k": 1000, "km": 1000, "kilometer": 1000, "kilometers": 1000, "kilometre": 1000,
          "kilometres": 1000, "m": 1, "meter": 1, "meters": 1, "metre": 1, "metres": 1,
          "mi": 1609.344, "mile": 1609.344, "miles": 1609.344}
_DISTANCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)


def distance_in_meters(text: str | None) -> int | None:
    """"5K", "10 km", "13.1 miles", "Marathon" -> meters; anything else -> None."""
    if not text:
        return None
    named = _NAMED_DISTANCES.get(text.strip().lower())
    if named is not None:
        return named
    found = _DISTANCE.match(text)
    if found is None or found.group(2).lower() not in _UNITS:
        return None
    meters = round(float(found.group(1)) * _UNITS[found.group(2).lower()])
    return meters if 0 < meters <= 1_000_000 else None


def _location(details: dict[str, Any]) -> str:
    return ", ".join(str(details[k]) for k in ("city", "region", "country") if details.get(k))


def _as_datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _shifted(at: datetime, delta: timedelta) -> datetime:
    """``at + delta``, held at the calendar's ends (an event dated in year 1 or 9999)."""
    try:
        return at + delta
    except OverflowError:
        return (datetime.max if delta > timedelta(0) else datetime.min).replace(
            tzinfo=at.tzinfo)


def _read(link: EventLink, connection_name: str, event_name: str | None) -> CandidateRead:
    d = dict(link.provider_details or {})
    return CandidateRead(
        id=link.id, connection_id=link.connection_id, connection_name=connection_name,
        provider=link.provider, provider_label=PROVIDERS[link.provider].label,
        provider_event_ref=link.provider_event_ref,
        name=link.provider_event_name or d.get("listed_name") or link.provider_event_ref,
        start_at=link.provider_start_at, end_at=_as_datetime(d.get("end_at")),
        time_zone=link.provider_time_zone,
        time_zone_source=d.get("time_zone_source") if link.provider_time_zone else None,
        parent_ref=d.get("parent_ref"), parent_name=d.get("parent_name"),
        race_name=d.get("name"), distance=d.get("distance"), location=_location(d),
        chosen=link.chosen, discovered_at=link.discovered_at, last_seen_at=link.last_seen_at,
        gone_at=link.gone_at, event_id=link.event_id, event_name=event_name,
        linked_at=link.linked_at)


def _rows(ctx: TenantContext) -> Select[Any]:
    return (scoped(ctx, EventLink)
            .add_columns(ProviderConnection.name, Event.name)
            .join(ProviderConnection, ProviderConnection.id == EventLink.connection_id)
            .outerjoin(Event, Event.id == EventLink.event_id))


def list_candidates(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID | None = None,
    q: str | None = None, linked: bool | None = None, gone: bool | None = None,
    start_from: datetime | None = None, start_to: datetime | None = None,
    near_event_id: uuid.UUID | None = None, limit: int = LIST_LIMIT,
) -> list[CandidateRead]:
    """The provider events of the tenant's connections (of ``connection_id``), discovered
    or chosen, soonest start first (those without a start last). Filters: ``q`` in the
    name or ref, ``linked`` to an event or not, ``gone`` from the listing or not, the start
    within [``start_from``, ``start_to``]; ``near_event_id``: unlinked ones of registration
    connections starting within NEAR_DAYS of that event's start."""
    stmt = _rows(ctx)
    if connection_id is not None:
        get_connection_or_raise(db, ctx, connection_id=connection_id)
        stmt = stmt.where(EventLink.connection_id == connection_id)
    if near_event_id is not None:
        event = events_service.get_event_or_raise(db, ctx, event_id=near_event_id)
        window = timedelta(days=NEAR_DAYS)
        low, high = _shifted(event.start_at, -window), _shifted(event.start_at, window)
        start_from = max(start_from, low) if start_from else low
        start_to = min(start_to, high) if start_to else high
        linked = False
        stmt = stmt.where(ProviderConnection.direction == Direction.REGISTRATION)
    if q:
        pattern = contains_pattern(q.strip())
        stmt = stmt.where(or_(EventLink.provider_event_name.ilike(pattern),
                              EventLink.provider_event_ref.ilike(pattern)))
    if linked is not None:
        stmt = stmt.where(EventLink.event_id.is_not(None) if linked
                          else EventLink.event_id.is_(None))
    if gone is not None:
        stmt = stmt.where(EventLink.gone_at.is_not(None) if gone else EventLink.gone_at.is_(None))
    if start_from is not None:
        stmt = stmt.where(EventLink.provider_start_at >= start_from)
    if start_to is not None:
        stmt = stmt.where(EventLink.provider_start_at <= start_to)
    stmt = stmt.order_by(EventLink.provider_start_at.asc().nulls_last(),
                         EventLink.provider_details["parent_ref"].astext,
                         EventLink.provider_event_ref, EventLink.id).limit(limit)
    return [_read(link, connection_name, event_name)
            for link, connection_name, event_name in db.execute(stmt)]


def read_candidate(db: Session, ctx: TenantContext, *, link_id: uuid.UUID) -> CandidateRead:
    found = db.execute(_rows(ctx).where(EventLink.id == link_id)).first()
    if found is None:
        raise LinkNotFound()
    return _read(*found)


def _race_of(db: Session, ctx: TenantContext, link: EventLink) -> list[EventLink]:
    """The candidate and the other unlinked, still listed provider events of its race."""
    parent = (link.provider_details or {}).get("parent_ref")
    if not parent:
        return [link]
    others = list(db.scalars(
        scoped(ctx, EventLink)
        .where(EventLink.connection_id == link.connection_id, EventLink.id != link.id,
               EventLink.event_id.is_(None), EventLink.gone_at.is_(None),
               EventLink.provider_details["parent_ref"].astext == str(parent))
        .order_by(EventLink.provider_start_at.asc().nulls_last(),
                  EventLink.provider_event_ref)))
    return [link, *others]


def link_candidate(
    db: Session, ctx: TenantContext, *, link_id: uuid.UUID, event_id: uuid.UUID,
    with_race: bool = False,
) -> list[EventLink]:
    """Link the candidate (and with ``with_race`` the unlinked provider events of its race)
    to an existing event. Its races map to no category until an operator maps them."""
    link = links.get_link_or_raise(db, ctx, link_id=link_id)
    group = _race_of(db, ctx, link) if with_race else [link]
    return [links.create_link(db, ctx, event_id=event_id, data=LinkCreate(
        connection_id=row.connection_id, provider_event_ref=row.provider_event_ref,
        provider_event_name=row.provider_event_name)) for row in group]


def _category_names(group: Sequence[EventLink]) -> list[str]:
    """One category name per provider event: its sub-event/distance name, made unique."""
    names: list[str] = []
    for row in group:
        d = row.provider_details or {}
        name = str(d.get("name") or d.get("distance") or row.provider_event_name
                   or row.provider_event_ref).strip()[:CATEGORY_NAME_MAX]
        if name.lower() in {n.lower() for n in names}:
            suffix = f" ({row.provider_event_ref})"
            name = name[:CATEGORY_NAME_MAX - len(suffix)] + suffix
        names.append(name)
    return names


def event_values(link: EventLink) -> dict[str, Any]:
    """What creating an event from the candidate fills in (the form shows it)."""
    d = link.provider_details or {}
    return {"name": (d.get("parent_name") or d.get("name") or link.provider_event_name
                     or link.provider_event_ref)[:200],
            "start_at": link.provider_start_at, "timezone": link.provider_time_zone,
            "location": _location(d)[:300]}


def create_event_from_candidate(
    db: Session, ctx: TenantContext, *, link_id: uuid.UUID, data: CandidateEventCreate,
) -> tuple[Event, list[EventLink]]:
    """A racehub event made from the candidate (what is not sent is the provider's), one
    category per provider event of its race (``with_race``) or for itself, each provider
    event linked to the new event and its race mapped to its category."""
    if not ctx.can(Perm.EVENTS_EVENT_WRITE):
        raise Forbidden(f"creating an event needs the '{Perm.EVENTS_EVENT_WRITE.value}' "
                        "permission")
    link = links.get_link_or_raise(db, ctx, link_id=link_id, for_update=True)
    connection = get_connection_or_raise(db, ctx, connection_id=link.connection_id)
    if link.event_id is not None:
        raise ProviderEventLinked(
            f"provider event {link.provider_event_ref!r} of connection {connection.name!r} "
            "already feeds an event; unlink it first")
    group = _race_of(db, ctx, link) if data.with_race else [link]
    given = data.model_dump(exclude_unset=True, exclude={"with_race"})
    values = event_values(link)
    # The race starts with its first sub-event.
    starts = [row.provider_start_at for row in group if row.provider_start_at]
    values["start_at"] = min(starts) if starts else None
    values.update({k: v for k, v in given.items() if v is not None})
    if values.get("start_at") is None:
        raise Invalid(f"startAt: {connection.name!r} gave no start time for provider event "
                      f"{link.provider_event_ref!r}" + (
                          " (it gave a local time without its time zone)"
                          if not link.provider_time_zone else "") + "; give one",
                      field="startAt")
    if not values.get("timezone"):
        raise Invalid(f"timezone: {connection.name!r} gave no time zone for provider event "
                      f"{link.provider_event_ref!r}; give one (an IANA name such as "
                      "America/New_York)", field="timezone")
    try:
        event_data = EventCreate.model_validate(values)
    except ValidationError as exc:
        raise Invalid(describe(exc), field=_first_field(exc)) from None
    event = events_service.create_event(db, ctx, data=event_data)
    categories = [
        events_service.create_category(db, ctx, event_id=event.id, data=CategoryCreate(
            name=name, distance_m=distance_in_meters((row.provider_details or {}).get("distance")
                                                     or (row.provider_details or {}).get("name")),
            start_at=row.provider_start_at))
        for row, name in zip(group, _category_names(group), strict=True)]
    made = []
    for row, category in zip(group, categories, strict=True):
        linked = links.create_link(db, ctx, event_id=event.id, data=LinkCreate(
            connection_id=row.connection_id, provider_event_ref=row.provider_event_ref,
            provider_event_name=row.provider_event_name))
        links.set_category_links(db, ctx, event_id=event.id, link_id=linked.id,
                                 data=CategoryLinksUpdate(categories=[CategoryLinkSet(
                                     provider_ref=row.provider_event_ref,
                                     provider_name=row.provider_event_name,
                                     category_id=category.id)]))
        made.append(linked)
    return event, made


def _first_field(exc: ValidationError) -> str | None:
    for error in exc.errors():
        if error.get("loc"):
            return to_camel(str(error["loc"][0]))
    return None
