"""Participants of an event, as the event page lists them (events.service)."""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.pagination import SortKey
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import Category, EventParticipant, ParticipantStatus, Person
from racehub.events.service import ParticipantFilter, ParticipantSort
from racehub.exports.views import ExportColumn, ExportFilters, ExportView, ViewQuery, register

ep = EventParticipant


class ParticipantExportFilters(ExportFilters):
    event_id: uuid.UUID
    q: str | None = None
    status: ParticipantStatus | None = None
    category_id: uuid.UUID | None = None


def _query(ctx: TenantContext, flt: ParticipantExportFilters, sort: str, descending: bool,
           cutoff: datetime) -> ViewQuery:
    # The list's own filters and sort keys, so the file holds what the page showed.
    base = events_service.participants_query(
        ctx, flt.event_id,
        ParticipantFilter(q=flt.q, status=flt.status, category_id=flt.category_id))
    stmt = (base.join(Person, Person.id == ep.person_id)
            .where(Person.tenant_id == ctx.tenant_id)
            .outerjoin(Category, Category.id == ep.category_id)
            .where(ep.created_at <= cutoff))
    columns = events_service.participant_sort_columns(ParticipantSort(sort))
    return ViewQuery(stmt, SortKey(columns=columns, descending=descending))


def _describe(db: Session, ctx: TenantContext, flt: ParticipantExportFilters) -> str:
    event = events_service.get_event_or_raise(db, ctx, event_id=flt.event_id)
    if flt.category_id is not None:
        events_service.get_category_or_raise(db, ctx, event_id=event.id,
                                             category_id=flt.category_id,
                                             field="filters.categoryId")
    return f"Participants — {event.name}"


def _list_url(flt: ParticipantExportFilters, sort: str, descending: bool) -> str:
    params = {"q": flt.q, "status": flt.status.value if flt.status else None,
              "category": str(flt.category_id) if flt.category_id else None,
              "sort": sort, "desc": "1" if descending else None}
    return f"/events/{flt.event_id}?" + urlencode({k: v for k, v in params.items() if v})


VIEW = register(ExportView(
    key="participants",
    label="Participants",
    permission=Perm.EVENTS_PARTICIPANT_READ,
    columns=(
        ExportColumn("bib", "Bib", ep.bib),
        ExportColumn("last_name", "Last name", Person.last_name),
        ExportColumn("first_name", "First name", Person.first_name),
        ExportColumn("category", "Category", Category.name),
        ExportColumn("registration_id", "Registration ID", ep.registration_id),
        ExportColumn("team", "Team", ep.team),
        ExportColumn("status", "Status", ep.status),
        ExportColumn("gender", "Gender", Person.gender),
        ExportColumn("birth_date", "Date of birth", Person.birth_date),
        ExportColumn("email", "E-mail", Person.email),
        ExportColumn("city", "City", Person.city),
        ExportColumn("region", "Region", Person.region),
        ExportColumn("country", "Country", Person.country),
        ExportColumn("nationality", "Nationality", Person.nationality, default=False),
        ExportColumn("created_at", "Created at (UTC)", ep.created_at, default=False),
        ExportColumn("id", "Participant ID", ep.id, default=False),
        ExportColumn("person_id", "Person ID", ep.person_id, default=False),
    ),
    filters=ParticipantExportFilters,
    sorts=tuple(s.value for s in [ParticipantSort.LAST_NAME, *[
        s for s in ParticipantSort if s is not ParticipantSort.LAST_NAME]]),
    query=_query,
    describe=_describe,
    list_url=_list_url,
))
