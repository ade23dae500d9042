"""Login/logout, tenant switch, members page, API tokens page and audit log page."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from racehub.core import audit
from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.deps import (
    DB,
    SESSION_COOKIE,
    AppSettings,
    CurrentPrincipal,
    Principal,
    build_context,
    client_ip,
    login_policy,
    no_tenant_message,
    require,
)
from racehub.core.exceptions import (
    DomainError,
    Invalid,
    NotAuthenticated,
    NotFound,
    TenantNotChosen,
    TooManyRequests,
)
from racehub.core.models import Role
from racehub.core.rbac import Perm
from racehub.core.schemas import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    ApiTokenCreate,
    MemberCreate,
    MemberUpdate,
    sane_year,
)
from racehub.web.pages import form_error, render, top_bar, top_bar_without_tenant, validate_model
from racehub.web.templating import is_htmx

router = APIRouter(tags=["pages"], include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only local paths: never bounce a fresh login to another site.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/events"


@router.get("/")
def home() -> Response:
    return RedirectResponse("/events", status_code=303)


@router.get("/login")
def login_form(
    request: Request, db: DB, principal: CurrentPrincipal, next: str | None = None
) -> Response:
    if principal is not None and principal.user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, db, None, "core/login.html", next=_safe_next(next), email="")


@router.post("/login")
def login(
    request: Request,
    db: DB,
    settings: AppSettings,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/events",
) -> Response:
    policy = login_policy(settings)
    try:
        user = core_service.authenticate(db, email=email, password=password,
                                         ip=client_ip(request), policy=policy)
    except (NotAuthenticated, TooManyRequests) as exc:
        db.commit()  # the failed attempt must count towards throttling
        status = 429 if isinstance(exc, TooManyRequests) else 401
        response = render(request, db, None, "core/login.html", status_code=status,
                          error=exc.detail, next=_safe_next(next), email=email)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    token = core_service.start_session(db, user=user, ip=client_ip(request),
                                       user_agent=request.headers.get("user-agent"),
                                       policy=policy)
    db.commit()
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=settings.session_hours * 3600, httponly=True,
        samesite="lax", secure=request.url.scheme == "https" or settings.secure_cookies,
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, db: DB) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        core_service.end_session(db, token=cookie)
        db.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- tenant picker and switch ----------------------------------------------------------------


def _current_context(request: Request, principal: Principal) -> TenantContext | None:
    """The session's tenant context, or None while it has no tenant to act in."""
    try:
        return build_context(request, principal)
    except TenantNotChosen:
        return None


def _tenant_picker(request: Request, db: DB, principal: Principal, *, q: str | None,
                   cursor: str | None, next_page: str, status_code: int = 200,
                   error: str | None = None) -> Response:
    assert principal.user is not None and principal.session is not None
    user = principal.user
    ctx = _current_context(request, principal)
    q = (q or "").strip()
    choices, next_cursor = core_service.search_tenants(db, user=user, q=q or None,
                                                       cursor=cursor, limit=TENANTS_PER_PAGE)
    base = {k: v for k, v in (("q", q), ("next", next_page)) if v and v != "/events"}
    next_url = "/tenant?" + urlencode({**base, "cursor": next_cursor}) if next_cursor else None
    first_url = "/tenant" + ("?" + urlencode(base) if base else "") if cursor else None
    me = top_bar(request, db, ctx) if ctx is not None else top_bar_without_tenant(request, db)
    message = None if ctx is not None else no_tenant_message(user)
    if ctx is None and principal.session.active_tenant_id is not None:
        message = "You are no longer a member of this tenant. Choose another one."
    return render(request, db, None, "core/tenant_picker.html", status_code=status_code,
                  me=me, choices=choices, q=q, next=next_page, next_url=next_url,
                  first_url=first_url, message=message, error=error,
                  current_id=principal.session.active_tenant_id)


TENANTS_PER_PAGE = 25


@router.get("/tenant")
def tenant_picker(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    q: str | None = None,
    cursor: str | None = None,
    next: str | None = None,
) -> Response:
    """Choose the tenant to act in: a platform admin searches every tenant, a member of
    several picks one of theirs. A session without a tenant lands here from any page."""
    if principal is None or principal.session is None:
        raise NotAuthenticated("log in first")
    return _tenant_picker(request, db, principal, q=q, cursor=cursor,
                          next_page=_safe_next(next))


@router.post("/tenant")
def switch_tenant(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    tenant_id: Annotated[uuid.UUID, Form()],
    next: Annotated[str, Form()] = "/events",
) -> Response:
    if principal is None or principal.session is None:
        raise NotAuthenticated("log in first")
    try:
        core_service.switch_tenant(db, session=principal.session, tenant_id=tenant_id)
    except NotFound as exc:  # raised before anything was written: nothing to roll back
        return _tenant_picker(request, db, principal, q=None, cursor=None,
                              next_page=_safe_next(next), status_code=exc.status_code,
                              error=exc.detail)
    db.commit()
    return RedirectResponse(_safe_next(next), status_code=303)


# --- API tokens ----------------------------------------------------------------------------

ManageTokens = Annotated[TenantContext, Depends(require(Perm.CORE_TOKEN_MANAGE))]


def _tokens_page(request: Request, db: DB, ctx: TenantContext, *, status_code: int = 200,
                 **context: Any) -> Response:
    context.setdefault("values", {})
    context.setdefault("created", None)
    return render(request, db, ctx, "core/tokens.html", status_code=status_code,
                  tokens=core_service.list_api_tokens(db, ctx), roles=list(Role),
                  now=datetime.now(UTC), **context)


@router.get("/settings/tokens")
def tokens_page(request: Request, db: DB, ctx: ManageTokens) -> Response:
    return _tokens_page(request, db, ctx)


@router.post("/settings/tokens")
def create_token(
    request: Request,
    db: DB,
    ctx: ManageTokens,
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    expires_at: Annotated[str, Form()] = "",
) -> Response:
    values = {"name": name, "role": role, "expires_at": expires_at}
    try:
        if not name.strip():
            raise Invalid("give the token a name", field="name")
        data = validate_model(ApiTokenCreate, {"name": name.strip(), "role": role,
                                               "expires_at": expires_at or None})
        token, secret = core_service.create_api_token(db, ctx, data=data)
    except DomainError as exc:
        db.rollback()
        return _tokens_page(request, db, ctx, status_code=exc.status_code, values=values,
                            **form_error(exc))
    db.commit()
    # Rendered, not redirected: the secret is shown this once and never stored.
    response = _tokens_page(request, db, ctx, status_code=201,
                            created={"name": token.name, "secret": secret,
                                     "expires_at": token.expires_at})
    response.headers["Cache-Control"] = "no-store"  # no copy of the secret in any cache
    return response


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(token_id: uuid.UUID, db: DB, ctx: ManageTokens) -> Response:
    core_service.revoke_api_token(db, ctx, token_id=token_id)
    db.commit()
    return RedirectResponse("/settings/tokens?" + urlencode({"flash": "Token revoked"}),
                            status_code=303)


# --- audit log -----------------------------------------------------------------------------


def _page_time(value: str | None, field: str, *, day_end: bool = False) -> datetime | None:
    """A filter time of the audit page, UTC when it names no offset. A bare day is its
    start, or with ``day_end`` the end of it (the exclusive next midnight): "To" includes
    the day chosen."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = sane_year(date.fromisoformat(value))
            return audit.day_end(day) if day_end else datetime(day.year, day.month, day.day,
                                                               tzinfo=UTC)
        return audit.as_utc(sane_year(datetime.fromisoformat(value)))
    except ValueError as exc:
        raise Invalid(f"{field} must be a date like 2026-05-01 (years {EARLIEST_YEAR} to "
                      f"{LATEST_YEAR})", field=field) from exc


@router.get("/audit")
def audit_page(
    request: Request,
    db: DB,
    ctx: Annotated[TenantContext, Depends(require(Perm.AUDIT_LOG_READ))],
    action: str | None = None,
    actor: str | None = None,
    target_type: Annotated[str | None, Query(alias="targetType")] = None,
    target_id: Annotated[str | None, Query(alias="targetId")] = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
) -> Response:
    actor = (actor or "").strip()
    filters = {"action": action or "", "actor": actor, "targetType": target_type or "",
               "targetId": target_id or "", "since": since or "", "until": until or ""}
    rows, next_cursor = audit.list_entries(
        db, ctx, action=action or None, actor=actor or None, target_type=target_type or None,
        target_id=target_id or None, since=_page_time(since, "since"),
        until=_page_time(until, "until", day_end=True), cursor=cursor, limit=50,
    )
    next_url = None
    if next_cursor:
        next_url = "/audit?" + urlencode({**{k: v for k, v in filters.items() if v},
                                          "cursor": next_cursor})
    if is_htmx(request):
        return render(request, db, ctx, "core/_audit_rows.html", entries=rows,
                      filters=filters, next_url=next_url)
    # Suggestions for the "Who" input: the members, then the tokens as the log names them.
    actors = [m.user.email for m in core_service.list_members(db, ctx)]
    actors += [f"token:{t.prefix}" for t in core_service.list_api_tokens(db, ctx)]
    return render(request, db, ctx, "core/audit.html", entries=rows, filters=filters,
                  next_url=next_url, actors=actors)


# --- members -------------------------------------------------------------------------------

ManageMembers = Annotated[TenantContext, Depends(require(Perm.CORE_MEMBER_MANAGE))]


def _members_page(request: Request, db: DB, ctx: TenantContext, *, status_code: int = 200,
                  **context: Any) -> Response:
    context.setdefault("values", {})
    return render(request, db, ctx, "core/members.html", status_code=status_code,
                  members=core_service.list_members(db, ctx), roles=list(Role), **context)


def _flash(text: str, target: str = "/settings/members") -> Response:
    return RedirectResponse(f"{target}?" + urlencode({"flash": text}), status_code=303)


@router.get("/settings/members")
def members_page(request: Request, db: DB, ctx: ManageMembers) -> Response:
    return _members_page(request, db, ctx)


@router.post("/settings/members")
def add_member(
    request: Request,
    db: DB,
    ctx: ManageMembers,
    email: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    full_name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    values = {"email": email, "role": role, "full_name": full_name}  # never the password
    try:
        data = validate_model(MemberCreate, {"email": email, "role": role,
                                             "full_name": full_name.strip(),
                                             "password": password or None})
        membership, created = core_service.add_member(db, ctx, data=data)
    except DomainError as exc:
        db.rollback()
        return _members_page(request, db, ctx, status_code=exc.status_code, values=values,
                             **form_error(exc))
    db.commit()
    note = "a new account" if created else "an existing account; its password is unchanged"
    return _flash(f"{membership.user.email} added as {membership.role.value} ({note})")


def _member_refused(request: Request, db: DB, ctx: TenantContext, user_id: uuid.UUID,
                    exc: DomainError) -> Response:
    """A refused change of one row: the banner, and the problem beside that row."""
    db.rollback()
    if exc.status_code == 404:
        raise exc
    return _members_page(request, db, ctx, status_code=exc.status_code, error=exc.detail,
                         row_error={"user_id": user_id, "message": exc.detail})


@router.post("/settings/members/{user_id}/role")
def change_member_role(
    user_id: uuid.UUID,
    request: Request,
    db: DB,
    ctx: ManageMembers,
    role: Annotated[str, Form()] = "",
) -> Response:
    try:
        data = validate_model(MemberUpdate, {"role": role})
        membership = core_service.update_member_role(db, ctx, user_id=user_id, role=data.role)
    except DomainError as exc:
        return _member_refused(request, db, ctx, user_id, exc)
    db.commit()
    text = f"{membership.user.email} is now {membership.role.value}"
    if user_id == ctx.user_id and not ctx.is_platform_admin and data.role != Role.TENANT_ADMIN:
        return _flash(text, "/events")  # this page is no longer theirs to see
    return _flash(text)


@router.post("/settings/members/{user_id}/remove")
def remove_member(user_id: uuid.UUID, request: Request, db: DB, ctx: ManageMembers) -> Response:
    try:
        email = core_service.get_member_or_raise(db, ctx, user_id=user_id).user.email
        core_service.remove_member(db, ctx, user_id=user_id)
    except DomainError as exc:
        return _member_refused(request, db, ctx, user_id, exc)
    db.commit()
    text = f"{email} removed from this tenant"
    if user_id == ctx.user_id:
        return _flash(text, "/events")  # their session moved to another tenant, or none
    return _flash(text)
