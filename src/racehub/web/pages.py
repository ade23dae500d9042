"""Helpers shared by every domain's HTML pages."""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_snake
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.exceptions import DomainError, Invalid
from racehub.core.rbac import Perm
from racehub.web.templating import templates

ModelT = TypeVar("ModelT", bound=BaseModel)
EnumT = TypeVar("EnumT", bound=enum.Enum)


async def _posted_form(request: Request) -> FormData:
    return await request.form()  # cached by Starlette: the CSRF check read it already


# The submitted form, read on the event loop, so that the route itself can be a plain
# ``def``: FastAPI runs those in its thread pool, and their database work never blocks the
# loop (an ``async def`` route doing sync queries stalls every other request meanwhile).
PostedForm = Annotated[FormData, Depends(_posted_form)]


def top_bar(request: Request, db: Session, ctx: TenantContext) -> dict[str, Any]:
    principal = getattr(request.state, "principal", None)
    user = principal.user if principal else None
    memberships = core_service.list_memberships(db, user_id=user.id) if user else []
    current = next((m.tenant for m in memberships if m.tenant_id == ctx.tenant_id), None)
    if current is None and ctx.cross_tenant:
        current = core_service.get_tenant(db, tenant_id=ctx.tenant_id)
    return {
        "email": user.email if user else (principal.label if principal else ""),
        "role": ctx.role.value if ctx.role else "PLATFORM_ADMIN",
        "tenant_id": ctx.tenant_id,
        "tenant_name": current.name if current else "",
        "memberships": memberships,
        "is_platform_admin": bool(user and user.is_platform_admin),
        # A platform admin in a tenant they are no member of: every page says so.
        "cross_tenant": ctx.cross_tenant,
        # Several tenants to act in: the top bar leads to the picker (GET /tenant).
        "can_switch": bool(user and (user.is_platform_admin or len(memberships) > 1)),
        "can_read_audit": ctx.can(Perm.AUDIT_LOG_READ),
        "can_manage_tokens": ctx.can(Perm.CORE_TOKEN_MANAGE),
        "can_manage_members": ctx.can(Perm.CORE_MEMBER_MANAGE),
        "can_read_inventory": ctx.can(Perm.INVENTORY_NUMBER_READ),
        "can_read_jobs": ctx.can(Perm.JOBS_RUN_READ),
        "can_read_imports": ctx.can(Perm.IMPORTS_IMPORT_READ),
    }


def top_bar_without_tenant(request: Request, db: Session) -> dict[str, Any]:
    """The top bar of a browser session with no tenant to act in (the tenant picker): the
    way to the picker and Log out, no tenant's pages."""
    principal = getattr(request.state, "principal", None)
    user = principal.user if principal else None
    memberships = core_service.list_memberships(db, user_id=user.id) if user else []
    return {
        "email": user.email if user else "", "no_tenant": True,
        "role": "PLATFORM_ADMIN" if user and user.is_platform_admin else "NONE",
        "tenant_id": None, "tenant_name": "", "memberships": memberships,
        "is_platform_admin": bool(user and user.is_platform_admin), "cross_tenant": False,
        "can_switch": True,
    }


def form_page_address(request: Request) -> str | None:
    """The GET address of the page a form was posted from, for a page rendered in answer
    to the POST (a refused form shown again, a token's one-time secret): the browser shows
    that address instead of the POST's (``data-page-url``, applied by racehub.js with
    ``history.replaceState``), so a reload asks for the page again rather than posting the
    form twice or getting a 405 from a POST-only path. The page is the form's Referer
    (sent for same-origin requests, ``Referrer-Policy: same-origin``) without its one-off
    ``flash``; None for anything but a full page answering a same-origin POST."""
    if request.method != "POST" or request.headers.get("hx-request") == "true":
        return None
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or not referer.path.startswith("/"):
        return None
    query = urlencode([(k, v) for k, v in parse_qsl(referer.query, keep_blank_values=True)
                       if k != "flash"])
    return referer.path + (f"?{query}" if query else "")


def render(
    request: Request,
    db: Session,
    ctx: TenantContext | None,
    template: str,
    status_code: int = 200,
    **context: Any,
) -> Response:
    if ctx is not None:
        context.setdefault("me", top_bar(request, db, ctx))
    context.setdefault("page_url", form_page_address(request))
    flash = request.query_params.get("flash")
    if flash:
        context.setdefault("flashes", [{"kind": "ok", "text": flash}])
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def parse_form(schema: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate a create form with the API's schema; empty inputs mean "not given"."""
    return validate_model(schema, {k: v for k, v in data.items() if v is not None and v != ""})


class InvalidForm(Invalid):
    """Every problem a schema found in one form, so the page can show each beside its input.

    ``detail`` and ``field`` name the first, like any other ``Invalid``.
    """

    def __init__(self, problems: dict[str, str]) -> None:
        field, message = next(iter(problems.items()))
        more = len(problems) - 1
        detail = f"{field}: {message}" + (f" (and {more} more below)" if more else "")
        super().__init__(detail, field=field)
        self.problems = problems


def validate_model(schema: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate with the API's schema; its problems become an ``InvalidForm`` naming each
    field, so pages show them like any other domain error."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            field = ".".join(str(p) for p in error.get("loc", ())) or "form"
            # A validator's own ValueError reads "Value error, <its message>".
            message = error.get("msg", "invalid").removeprefix("Value error, ")
            problems.setdefault(field, message)
        raise InvalidForm(problems) from exc


def _input_name(field: str) -> str:
    # Nested schema fields (``person.email``) are plain inputs (``email``) in the forms, and
    # services name fields as the API does (``categoryId``) where inputs say ``category_id``.
    return to_snake(field.rsplit(".", 1)[-1])


def form_error(exc: DomainError) -> dict[str, Any]:
    """Template context for a refused form: the banner, and each problem by input name."""
    problems = exc.problems if isinstance(exc, InvalidForm) else (
        {exc.field: exc.detail} if exc.field else {})
    return {"error": exc.detail, "error_field": exc.field,
            "field_errors": {_input_name(f): m for f, m in problems.items()}}


def query_uuid(value: str | None, name: str) -> uuid.UUID | None:
    """An optional id from a list page's query string; a malformed one is a 422 naming it."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise Invalid(f"{name} is not a valid id", field=name) from exc


def query_enum(value: str | None, enum_type: type[EnumT], name: str) -> EnumT | None:
    """An optional choice from a list page's query string, by its value."""
    if not value:
        return None
    try:
        return enum_type(value)
    except ValueError as exc:
        choices = ", ".join(str(m.value) for m in enum_type)
        raise Invalid(f"{name} must be one of {choices}", field=name) from exc
