"""JSON API for the number and tag inventory. Thin: the service holds the rules."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.inventory import service
from racehub.inventory.models import RaceNumberState
from racehub.inventory.schemas import (
    NumberTypeCreate,
    NumberTypeRead,
    RaceNumberDetail,
    RaceNumberLogRead,
    RaceNumberRead,
)

router = APIRouter(prefix="/api", tags=["inventory"])

ReadInventory = Annotated[TenantContext, Depends(require(Perm.INVENTORY_NUMBER_READ))]
ManageInventory = Annotated[TenantContext, Depends(require(Perm.INVENTORY_NUMBER_MANAGE))]


@router.get("/number-types", response_model=list[NumberTypeRead])
def list_number_types(db: DB, ctx: ReadInventory) -> list[NumberTypeRead]:
    return [NumberTypeRead.model_validate(t) for t in service.list_number_types(db, ctx)]


@router.post("/number-types", response_model=NumberTypeRead, status_code=201)
def create_number_type(data: NumberTypeCreate, db: DB, ctx: ManageInventory) -> NumberTypeRead:
    number_type = service.create_number_type(db, ctx, data=data)
    db.commit()
    return NumberTypeRead.model_validate(number_type)


@router.get("/race-numbers", response_model=Page[RaceNumberRead])
def list_race_numbers(
    db: DB,
    ctx: ReadInventory,
    number_type_id: Annotated[uuid.UUID | None, Query(alias="numberTypeId")] = None,
    q: Annotated[str | None, Query(description="Start of a number, a tag code or a sequence")]
    = None,
    state: RaceNumberState | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[RaceNumberRead]:
    if number_type_id is not None:
        service.get_number_type_or_raise(db, ctx, number_type_id=number_type_id,
                                         field="numberTypeId")
    rows, next_cursor = service.list_race_numbers(
        db, ctx, number_type_id=number_type_id, q=q, state=state, cursor=cursor, limit=limit)
    return Page[RaceNumberRead](items=[RaceNumberRead.model_validate(r) for r in rows],
                                next_cursor=next_cursor)


@router.get("/race-numbers/templates/manufactured-numbers.csv",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def manufactured_numbers_template(ctx: ReadInventory) -> Response:
    """The fixed-schema CSV a manufacturer's file must follow, with one example row."""
    return Response(service.MANUFACTURED_TEMPLATE, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             'attachment; filename="manufactured-numbers.csv"'})


@router.get("/race-numbers/{race_number_id}", response_model=RaceNumberDetail)
def read_race_number(race_number_id: uuid.UUID, db: DB, ctx: ReadInventory) -> RaceNumberDetail:
    race_number = service.get_race_number_or_raise(db, ctx, race_number_id=race_number_id)
    log = service.list_race_number_log(db, ctx, race_number_id=race_number_id)
    return RaceNumberDetail.model_validate(
        {**RaceNumberRead.model_validate(race_number).model_dump(),
         "log": [RaceNumberLogRead.model_validate(e) for e in log]})
