"""Helpers shared by every domain's HTML pages."""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_snake
from pydantic.fields import FieldInfo
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from racehub.alerts import service as alerts_service
from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.exceptions import DomainError, Invalid
from racehub.core.rbac import Perm
from racehub.core.schemas import REQUIRED
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
    current = next((m.tenant.name for m in memberships if m.tenant_id == ctx.tenant_id), None)
    if current is None and ctx.cross_tenant:
        current = core_service.get_tenant_read(db, tenant_id=ctx.tenant_id).name
    return {
        "email": user.email if user else (principal.label if principal else ""),
        "role": ctx.role.value if ctx.role else "PLATFORM_ADMIN",
        "tenant_id": ctx.tenant_id,
        "tenant_name": current or "",
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
        # The badge: open alerts nobody acknowledged yet (a platform admin's include the
        # platform's); it leads to the alerts page.
        "alerts_open": (alerts_service.open_count(db, ctx)
                        if ctx.can(Perm.ALERTS_ALERT_READ) else None),
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

    ``problems`` maps each field's path (its machine name, as the API names it) to a
    sentence naming the field as the form labels it ("First name is required");
    ``detail`` is the first sentence, ``field`` the first path, like any other ``Invalid``.
    """

    def __init__(self, problems: dict[str, str]) -> None:
        field, message = next(iter(problems.items()))
        more = len(problems) - 1
        detail = message + (f" (and {more} more below)" if more else "")
        super().__init__(detail, field=field)
        self.problems = problems


def validate_model(schema: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate with the API's schema; its problems become an ``InvalidForm`` whose
    sentences name each field by its label, so pages show them like any other domain
    error."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            loc = tuple(str(p) for p in error.get("loc", ()))
            field = ".".join(loc) or "form"
            problems.setdefault(field, human_problem(schema, loc, error))
        raise InvalidForm(problems) from exc


# --- field labels: the words a form uses, for any schema ------------------------------------


def _field_of(model: type[BaseModel], name: str) -> tuple[str, FieldInfo] | None:
    fields = model.model_fields
    if name in fields:
        return name, fields[name]
    for key, info in fields.items():  # the API's name (an alias: ``firstName``)
        if info.alias == name:
            return key, info
    snake = to_snake(name)
    return (snake, fields[snake]) if snake in fields else None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def field_label(schema: type[BaseModel] | None, loc: tuple[str, ...]) -> str:
    """How a form labels the field at ``loc`` (``("person", "first_name")``): the schema
    field's ``title`` when it has one, else its name in words ("First name"). Nested models
    are plain inputs of the same form: the label is the innermost field's."""
    model = schema
    name = loc[-1] if loc else ""
    for i, part in enumerate(loc):
        found = _field_of(model, part) if model is not None else None
        if found is None:
            break
        key, info = found
        if i == len(loc) - 1:
            if info.title:
                return info.title
            name = key
        else:
            model = _nested_model(info.annotation)
    words = to_snake(name).replace("_", " ").strip()
    return (words[:1].upper() + words[1:]) or "This field"


def _predicate(error: Mapping[str, Any]) -> str:
    """What is wrong with a field, as the rest of a sentence after its label."""
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return REQUIRED
    if kind.endswith("_type") and error.get("input") is None:
        return REQUIRED  # an emptied form input: the page sends None
    if kind in ("string_too_long", "too_long") and "max_length" in ctx:
        return f"must be at most {ctx['max_length']} characters"
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} characters"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind.startswith("date") and "time" not in kind:
        return "must be a date like 2026-12-07"
    if kind.startswith("datetime"):
        return "must be a date and time like 2026-12-07 09:30"
    if kind == "enum":
        return f"must be one of {ctx.get('expected', 'the choices')}"
    if kind == "uuid_parsing":
        return "is not one of the choices"
    if kind == "value_error" and "email address" in message:
        return "must be an e-mail address like ada@example.com"
    return message


def human_problem(schema: type[BaseModel] | None, loc: tuple[str, ...],
                  error: Mapping[str, Any]) -> str:
    """One validation problem as a sentence naming the field by its label."""
    predicate = _predicate(error)
    if not loc:
        return predicate[:1].upper() + predicate[1:]
    label = field_label(schema, loc)
    if predicate.startswith(("is ", "must ", "cannot ")):
        return f"{label} {predicate}"
    return f"{label}: {predicate}"


def _input_name(field: str) -> str:
    # Nested schema fields (``person.email``) are plain inputs (``email``) in the forms, and
    # services name fields as the API does (``categoryId``) where inputs say ``category_id``.
    return to_snake(field.rsplit(".", 1)[-1])


_IDENTIFIER = re.compile(r"\b[a-z]+(?:[A-Z][a-z0-9]*)+(?:\.[a-z]+(?:[A-Z][a-z0-9]*)*)*\b")


def human_detail(detail: str, schema: type[BaseModel] | None) -> str:
    """A service's message with the machine field names in it (``bibRangeEnd``,
    ``person.firstName``) in the words of the form's labels."""
    if schema is None:
        return detail

    def label(match: re.Match[str]) -> str:
        loc = tuple(match.group(0).split("."))
        known = _field_of(schema, loc[0]) is not None
        return field_label(schema, loc) if known else match.group(0)

    text = _IDENTIFIER.sub(label, detail)
    return text[:1].upper() + text[1:]


def form_error(exc: DomainError, schema: type[BaseModel] | None = None) -> dict[str, Any]:
    """Template context for a refused form: the banner, and each problem by input name.
    ``schema``: the form's, whose labels name the fields in a service's message too."""
    if isinstance(exc, InvalidForm):
        problems = exc.problems
        detail = exc.detail
    else:
        detail = human_detail(exc.detail, schema)
        problems = {exc.field: detail} if exc.field else {}
    return {"error": detail, "error_field": exc.field,
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
