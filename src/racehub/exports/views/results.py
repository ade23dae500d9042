"""An event's results in ranking order, with the filters of the results page (timing)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, case, func, literal
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import Category, EventParticipant, Gender, Person
from racehub.exports.views import ExportColumn, ExportFilters, ExportView, ViewQuery, register
from racehub.timing import results
from racehub.timing.models import Result

ep = EventParticipant


def _time(ms: Any) -> ColumnElement[str]:
    """Milliseconds as ``H:MM:SS.fff``, the millis left out when zero (results.format_ms,
    in SQL: one cell per row, no Python per value)."""
    interval = func.make_interval(0, 0, 0, 0, 0, 0, ms / literal(1000.0))
    return case((ms.is_(None), None),
                (ms % 1000 == 0, func.to_char(interval, "FMHH24:MI:SS")),
                else_=func.to_char(interval, "FMHH24:MI:SS.MS"))


class ResultExportFilters(ExportFilters):
    event_id: uuid.UUID
    category_id: uuid.UUID | None = None
    gender: Gender | None = None
    q: str | None = None


def _query(ctx: TenantContext, flt: ResultExportFilters, sort: str, descending: bool,
           cutoff: datetime) -> ViewQuery:
    del sort  # one order: the ranking
    stmt = results.results_query(ctx, event_id=flt.event_id, category_id=flt.category_id,
                                 gender=flt.gender, q=flt.q).where(Result.created_at <= cutoff)
    return ViewQuery(stmt, results.ranking_key(by_category=flt.category_id is not None,
                                               descending=descending))


def _describe(db: Session, ctx: TenantContext, flt: ResultExportFilters) -> str:
    event = events_service.get_event_or_raise(db, ctx, event_id=flt.event_id)
    if flt.category_id is not None:
        category = events_service.get_category_or_raise(
            db, ctx, event_id=event.id, category_id=flt.category_id,
            field="filters.categoryId")
        return f"Results — {event.name} — {category.name}"
    return f"Results — {event.name}"


def _list_url(flt: ResultExportFilters, sort: str, descending: bool) -> str:
    params = {"category": str(flt.category_id or ""),
              "gender": flt.gender.value if flt.gender else None, "q": flt.q}
    return f"/events/{flt.event_id}/results?" + urlencode(
        {k: v for k, v in params.items() if v})


VIEW = register(ExportView(
    key="results",
    label="Results",
    permission=Perm.TIMING_RESULT_READ,
    columns=(
        ExportColumn("overall_place", "Place", Result.overall_place),
        ExportColumn("bib", "Bib", ep.bib),
        ExportColumn("last_name", "Last name", Person.last_name),
        ExportColumn("first_name", "First name", Person.first_name),
        ExportColumn("category", "Category", Category.name),
        ExportColumn("gender", "Gender", Person.gender),
        ExportColumn("chip_time", "Chip time", _time(Result.chip_ms)),
        ExportColumn("gun_time", "Gun time", _time(Result.gun_ms)),
        ExportColumn("status", "Status", Result.status),
        ExportColumn("gender_place", "Gender place", Result.gender_place),
        ExportColumn("category_place", "Category place", Result.category_place),
        ExportColumn("team", "Team", ep.team, default=False),
        ExportColumn("chip_ms", "Chip time (ms)", Result.chip_ms, default=False),
        ExportColumn("gun_ms", "Gun time (ms)", Result.gun_ms, default=False),
        ExportColumn("splits", "Splits (ms, JSON)", Result.splits, default=False),
        ExportColumn("registration_id", "Registration ID", ep.registration_id, default=False),
        ExportColumn("participant_id", "Participant ID", ep.id, default=False),
    ),
    filters=ResultExportFilters,
    sorts=("rank",),
    query=_query,
    describe=_describe,
    list_url=_list_url,
))
