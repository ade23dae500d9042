"""Login/logout, tenant switch, API tokens page and audit log page."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated
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
    client_ip,
    login_policy,
    require,
)
from racehub.core.exceptions import Invalid, NotAuthenticated, TooManyRequests
from racehub.core.models import Role
from racehub.core.rbac import Perm
from racehub.core.schemas import ApiTokenCreate
from racehub.web.pages import render
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


@router.post("/tenant")
def switch_tenant(
    db: DB,
    principal: CurrentPrincipal,
    tenant_id: Annotated[uuid.UUID, Form()],
) -> Response:
    if principal is None or principal.session is None:
        raise NotAuthenticated("log in first")
    core_service.switch_tenant(db, session=principal.session, tenant_id=tenant_id)
    db.commit()
    return RedirectResponse("/events", status_code=303)


# --- API tokens ----------------------------------------------------------------------------

ManageTokens = Annotated[TenantContext, Depends(require(Perm.CORE_TOKEN_MANAGE))]


@router.get("/settings/tokens")
def tokens_page(request: Request, db: DB, ctx: ManageTokens) -> Response:
    return render(request, db, ctx, "core/tokens.html",
                  tokens=core_service.list_api_tokens(db, ctx), roles=list(Role), created=None)


@router.post("/settings/tokens")
def create_token(
    request: Request,
    db: DB,
    ctx: ManageTokens,
    name: Annotated[str, Form()],
    role: Annotated[Role, Form()],
) -> Response:
    if not name.strip():
        raise Invalid("give the token a name", field="name")
    token, secret = core_service.create_api_token(
        db, ctx, data=ApiTokenCreate(name=name.strip(), role=role)
    )
    db.commit()
    # Rendered, not redirected: the secret is shown this once and never stored.
    return render(request, db, ctx, "core/tokens.html", status_code=201,
                  tokens=core_service.list_api_tokens(db, ctx), roles=list(Role),
                  created={"name": token.name, "secret": secret})


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(token_id: uuid.UUID, db: DB, ctx: ManageTokens) -> Response:
    core_service.revoke_api_token(db, ctx, token_id=token_id)
    db.commit()
    return RedirectResponse("/settings/tokens?" + urlencode({"flash": "Token revoked"}),
                            status_code=303)


# --- audit log -----------------------------------------------------------------------------


@router.get("/audit")
def audit_page(
    request: Request,
    db: DB,
    ctx: Annotated[TenantContext, Depends(require(Perm.AUDIT_LOG_READ))],
    action: str | None = None,
    target_type: Annotated[str | None, Query(alias="targetType")] = None,
    target_id: Annotated[str | None, Query(alias="targetId")] = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
) -> Response:
    def parse(value: str | None, field: str) -> datetime | None:
        if not value:
            return None
        try:
            return datetime.fromisoformat(value)
        except ValueError as exc:
            raise Invalid(f"{field} must be a date like 2026-05-01", field=field) from exc

    filters = {"action": action or "", "targetType": target_type or "",
               "targetId": target_id or "", "since": since or "", "until": until or ""}
    rows, next_cursor = audit.list_entries(
        db, ctx, action=action or None, target_type=target_type or None,
        target_id=target_id or None, since=parse(since, "since"), until=parse(until, "until"),
        cursor=cursor, limit=50,
    )
    next_url = None
    if next_cursor:
        next_url = "/audit?" + urlencode({**{k: v for k, v in filters.items() if v},
                                          "cursor": next_cursor})
    template = "core/_audit_rows.html" if is_htmx(request) else "core/audit.html"
    return render(request, db, ctx, template, entries=rows, filters=filters,
                  next_url=next_url)


