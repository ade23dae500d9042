"""HTML pages for the number and tag inventory."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.exceptions import DomainError
from racehub.core.rbac import Perm
from racehub.imports import service as imports_service
from racehub.imports.summary import summary_context
from racehub.inventory import service
from racehub.inventory.importers import NUMBER_ONBOARDING
from racehub.inventory.models import RaceNumberState
from racehub.inventory.schemas import NumberTypeCreate
from racehub.web.pages import (
    PostedForm,
    form_error,
    parse_form,
    query_enum,
    query_uuid,
    render,
)
from racehub.web.templating import is_htmx

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadInventory = Annotated[TenantContext, Depends(require(Perm.INVENTORY_NUMBER_READ))]
ManageInventory = Annotated[TenantContext, Depends(require(Perm.INVENTORY_NUMBER_MANAGE))]

PAGE_SIZE = 50


@router.get("/inventory/number-types")
def number_types_page(request: Request, db: DB, ctx: ReadInventory) -> Response:
    return _number_types(request, db, ctx)


def _number_types(request: Request, db: DB, ctx: TenantContext, status_code: int = 200,
                  **context: Any) -> Response:
    context.setdefault("values", {})
    return render(request, db, ctx, "inventory/number_types.html", status_code=status_code,
                  number_types=service.list_number_types(db, ctx),
                  can_manage=ctx.can(Perm.INVENTORY_NUMBER_MANAGE), **context)


@router.post("/inventory/number-types")
def create_number_type(
    request: Request, db: DB, ctx: ManageInventory, form: PostedForm
) -> Response:
    values = dict(form)
    try:
        service.create_number_type(db, ctx, data=parse_form(NumberTypeCreate, values))
    except DomainError as exc:
        db.rollback()
        return _number_types(request, db, ctx, status_code=exc.status_code, values=values,
                             **form_error(exc))
    db.commit()
    return RedirectResponse("/inventory/number-types?flash=Number+type+added", status_code=303)


@router.get("/inventory/numbers")
def race_numbers_page(request: Request, db: DB, ctx: ReadInventory) -> Response:
    params = dict(request.query_params)
    q = params.get("q", "").strip()
    number_type_id = query_uuid(params.get("numberTypeId"), "numberTypeId")
    state = query_enum(params.get("state"), RaceNumberState, "state")
    if number_type_id is not None:
        service.get_number_type_or_raise(db, ctx, number_type_id=number_type_id,
                                         field="numberTypeId")
    rows, next_cursor = service.list_race_numbers(
        db, ctx, number_type_id=number_type_id, q=q or None, state=state,
        cursor=params.get("cursor") or None, limit=PAGE_SIZE)
    filters = {"q": q, "numberTypeId": str(number_type_id or ""),
               "state": state.value if state else ""}
    next_url = None
    if next_cursor:
        next_url = "/inventory/numbers?" + urlencode({**filters, "cursor": next_cursor})
    table = {"race_numbers": rows, "next_url": next_url, "filters": filters,
             "first_url": ("/inventory/numbers?" + urlencode(filters))
             if params.get("cursor") else None}
    if is_htmx(request) and request.headers.get("hx-target") == "race-numbers":
        return render(request, db, ctx, "inventory/_race_numbers.html", **table)
    return render(request, db, ctx, "inventory/race_numbers.html",
                  number_types=service.list_number_types(db, ctx),
                  states=list(RaceNumberState), can_manage=ctx.can(Perm.INVENTORY_NUMBER_MANAGE),
                  **table)


@router.get("/inventory/numbers/{race_number_id}")
def race_number_page(
    race_number_id: uuid.UUID, request: Request, db: DB, ctx: ReadInventory
) -> Response:
    race_number = service.get_race_number_or_raise(db, ctx, race_number_id=race_number_id)
    log = service.list_race_number_log(db, ctx, race_number_id=race_number_id)
    return render(request, db, ctx, "inventory/race_number.html", race_number=race_number,
                  log=log)


# --- T06 upload and T07 summary ----------------------------------------------------------------


@router.get("/inventory/numbers/onboard/import")
def onboard_import_page(request: Request, db: DB, ctx: ManageInventory) -> Response:
    number_types = service.list_number_types(db, ctx)
    names = {str(t.id): t.name for t in number_types}
    recent = imports_service.list_imports(db, ctx, import_type=NUMBER_ONBOARDING, size=10)
    return render(request, db, ctx, "inventory/onboard_import.html",
                  number_types=number_types, recent=recent, type_names=names,
                  import_type=imports_service.get_import_type(NUMBER_ONBOARDING),
                  selected=request.query_params.get("numberTypeId", ""))


@router.get("/inventory/numbers/onboard/imports/{import_id}/summary")
def onboard_summary_page(
    import_id: uuid.UUID, request: Request, db: DB, ctx: ReadInventory
) -> Response:
    context, one_bucket = summary_context(request, db, ctx, import_id=import_id,
                                          import_type=NUMBER_ONBOARDING)
    if one_bucket:
        return render(request, db, ctx, "inventory/_summary_bucket.html",
                      section=context["sections"][0], **context)
    number_type = service.get_number_type_or_raise(
        db, ctx, number_type_id=uuid.UUID(context["imp"].params["numberTypeId"]))
    return render(request, db, ctx, "inventory/onboard_summary.html",
                  number_type=number_type, **context)
