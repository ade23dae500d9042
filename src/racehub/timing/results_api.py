"""JSON routes of E08 results. Thin: timing/results.py holds the rules. Result files are
uploaded through the import pipeline: ``POST /api/imports?importType=TIMING_RESULTS&eventId=``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.events.models import Gender
from racehub.timing import results
from racehub.timing.result_schemas import MissingResultRead, ReconciliationRead, ResultRead

router = APIRouter(prefix="/api", tags=["timing"])

ReadResults = Annotated[TenantContext, Depends(require(Perm.TIMING_RESULT_READ))]


def result_read(row: results.ResultRow) -> ResultRead:
    r = row.result
    return ResultRead(
        id=r.id, participant_id=row.participant.id, bib=row.participant.bib, name=row.name,
        gender=row.person.gender, category=row.category.name if row.category else None,
        status=r.status, chip_ms=r.chip_ms, gun_ms=r.gun_ms,
        chip_time=results.format_ms(r.chip_ms), gun_time=results.format_ms(r.gun_ms),
        overall_place=r.overall_place, gender_place=r.gender_place,
        category_place=r.category_place, splits=r.splits or {}, file_bib=r.file_bib,
        warning=r.warning)


@router.get("/events/{event_id}/results", response_model=Page[ResultRead])
def list_results(
    event_id: uuid.UUID,
    db: DB,
    ctx: ReadResults,
    category_id: Annotated[uuid.UUID | None, Query(alias="categoryId")] = None,
    gender: Gender | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[ResultRead]:
    """The event's results in ranking order: finished by place (the category place with
    `categoryId`), then DNF, DQ, DNS. `q` matches a bib exactly or a name/e-mail word."""
    rows, next_cursor = results.list_results(db, ctx, event_id=event_id,
                                             category_id=category_id, gender=gender, q=q,
                                             cursor=cursor, limit=limit)
    return Page[ResultRead](items=[result_read(r) for r in rows], next_cursor=next_cursor)


@router.get("/events/{event_id}/results/reconciliation", response_model=ReconciliationRead)
def reconciliation(
    event_id: uuid.UUID, db: DB, ctx: ReadResults,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ReconciliationRead:
    """Results per status and the active participants without a result."""
    rec = results.reconcile(db, ctx, event_id=event_id, limit=limit)
    return ReconciliationRead(
        event_id=event_id, participants=rec.participants, by_status=rec.by_status,
        bib_mismatch_warnings=rec.warnings, without_result_count=rec.missing_count,
        without_result=[MissingResultRead(participant_id=m.id, bib=m.bib, name=m.name,
                                          category=m.category) for m in rec.missing])
