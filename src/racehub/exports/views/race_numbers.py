"""Race numbers of the inventory, with the filters of the race numbers page."""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.pagination import SortKey
from racehub.core.query import prefix_pattern, scoped
from racehub.core.rbac import Perm
from racehub.exports.views import ExportColumn, ExportFilters, ExportView, ViewQuery, register
from racehub.inventory import service as inventory_service
from racehub.inventory.models import NumberType, RaceNumber, RaceNumberState, Tag


class RaceNumberExportFilters(ExportFilters):
    number_type_id: uuid.UUID | None = None
    q: str | None = None
    state: RaceNumberState | None = None


def _query(ctx: TenantContext, flt: RaceNumberExportFilters, sort: str, descending: bool,
           cutoff: datetime) -> ViewQuery:
    stmt = (scoped(ctx, RaceNumber)
            .join(NumberType, NumberType.id == RaceNumber.number_type_id)
            .outerjoin(Tag, Tag.id == RaceNumber.tag_id)
            .where(RaceNumber.created_at <= cutoff))
    if flt.number_type_id is not None:
        stmt = stmt.where(RaceNumber.number_type_id == flt.number_type_id)
    if flt.state is not None:
        stmt = stmt.where(RaceNumber.state == flt.state)
    if flt.q:
        # As inventory.service.list_race_numbers: a number's start, a tag, or a sequence.
        term = flt.q
        tagged = scoped(ctx, Tag).with_only_columns(Tag.id).where(Tag.code == term)
        conditions: list[ColumnElement[bool]] = [RaceNumber.number.like(prefix_pattern(term)),
                      RaceNumber.tag_id.in_(tagged)]
        if term.isdigit() and len(term) < 19:
            conditions.append(RaceNumber.sequence == int(term))
        stmt = stmt.where(or_(*conditions))
    return ViewQuery(stmt, SortKey(columns=[RaceNumber.sequence, RaceNumber.id],
                                   descending=descending))


def _describe(db: Session, ctx: TenantContext, flt: RaceNumberExportFilters) -> str:
    if flt.number_type_id is None:
        return "Race numbers"
    number_type = inventory_service.get_number_type_or_raise(
        db, ctx, number_type_id=flt.number_type_id, field="filters.numberTypeId")
    return f"Race numbers — {number_type.name}"


def _list_url(flt: RaceNumberExportFilters, sort: str, descending: bool) -> str:
    params = {"q": flt.q, "numberTypeId": str(flt.number_type_id or ""),
              "state": flt.state.value if flt.state else None}
    return "/inventory/numbers?" + urlencode({k: v for k, v in params.items() if v})


VIEW = register(ExportView(
    key="race_numbers",
    label="Race numbers",
    permission=Perm.INVENTORY_NUMBER_READ,
    columns=(
        ExportColumn("sequence", "Sequence", RaceNumber.sequence),
        ExportColumn("number", "Number", RaceNumber.number),
        ExportColumn("number_type", "Number type", NumberType.name),
        ExportColumn("tag", "Tag", Tag.code),
        ExportColumn("state", "State", RaceNumber.state),
        ExportColumn("created_at", "Created at (UTC)", RaceNumber.created_at, default=False),
        ExportColumn("id", "Race number ID", RaceNumber.id, default=False),
    ),
    filters=RaceNumberExportFilters,
    sorts=("sequence",),
    query=_query,
    describe=_describe,
    list_url=_list_url,
))
