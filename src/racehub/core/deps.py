"""FastAPI dependencies: the database session, the caller, and permission checks.

Every route declares ``Depends(require(Perm.X))`` (or ``require_page`` for HTML pages);
the returned ``TenantContext`` is what services take.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from racehub.core import audit
from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.exceptions import Forbidden, Invalid, NotAuthenticated, TenantNotChosen
from racehub.core.models import Membership, Role, User, UserSession
from racehub.core.rbac import Perm, permissions_for
from racehub.settings import Settings

SESSION_COOKIE = "racehub_session"
CSRF_COOKIE = "racehub_csrf"

# What the app opens a request's session with: a sessionmaker, or in tests a factory
# lending the test's own session (left open).
SessionFactory = Callable[[], AbstractContextManager[Session]]


# The dependencies that only read what the gate put on the request are ``async def``: a
# plain ``def`` dependency costs a hop to the thread pool and back on every request (the
# issue measured 7 hops for one GET). Anything that may touch the database stays ``def``
# (tests/web/test_routes.py lists the async ones).


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> Session:
    """The request's one session, opened on first use by the request gate
    (``web/gate.py``), which also resolved the caller on it and closes it after the
    response. Creating the session does no I/O: it connects on its first query."""
    request_session: RequestSession = request.state.db
    return request_session.get()


DB = Annotated[Session, Depends(get_db)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]


def login_policy(settings: Settings) -> core_service.LoginPolicy:
    return core_service.LoginPolicy(
        max_failures=settings.login_max_failures,
        lockout=timedelta(minutes=settings.login_lockout_minutes),
        session_lifetime=timedelta(hours=settings.session_hours),
    )


@dataclass
class Principal:
    """The authenticated caller: a browser session's user, or an API token."""

    user: User | None = None
    session: UserSession | None = None
    token: core_service.TokenCaller | None = None
    # A session's membership in its active tenant, looked up with the session (None: not a
    # member, or no active tenant), so that the permission check does no I/O of its own.
    membership: Membership | None = None

    @property
    def label(self) -> str:
        if self.token is not None:
            return f"token:{self.token.prefix}"
        assert self.user is not None
        return self.user.email


def client_ip(request: Request) -> str | None:
    host = request.client.host if request.client else None
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None  # a unix socket or test client name: the INET columns take addresses only


class RequestSession:
    """One database session per request, opened on first use: a request that never needs
    the database (a static file, an anonymous page) opens none."""

    def __init__(self, factory: SessionFactory) -> None:
        self._factory = factory
        self._opened: AbstractContextManager[Session] | None = None
        self._db: Session | None = None

    def get(self) -> Session:
        if self._db is None:
            self._opened = self._factory()
            self._db = self._opened.__enter__()
        return self._db

    @property
    def opened(self) -> bool:
        return self._opened is not None

    def close(self) -> None:
        if self._opened is not None:
            opened, self._opened, self._db = self._opened, None, None
            opened.__exit__(None, None, None)


@dataclass
class Authentication:
    """Who sent a request, as the gate found it before reading the body: a principal, or
    nobody (``principal`` None), or credentials that were refused (``error``)."""

    principal: Principal | None = None
    error: str | None = None
    # The session's expiry slid: the middleware sends the cookie again with a new Max-Age.
    refreshed_cookie: str | None = None


def authenticate(
    db: Session, settings: Settings, *, authorization: str, session_cookie: str | None
) -> Authentication:
    """Resolve the caller from the Authorization header or the session cookie: one lookup,
    made once per request by the gate and handed to every dependency."""
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return Authentication(error="Authorization header must be 'Bearer <token>'")
        token = core_service.resolve_api_token(db, secret=secret.strip())
        if token is None:
            return Authentication(error="API token is unknown, expired or revoked")
        if core_service.note_token_use(db, token):
            # Committed alone, like a session's slide: a GET commits nothing, so the
            # stamp was never saved and every request wrote it again, holding the token's
            # row lock to its end; requests of one token (a display polling) queued on it.
            db.commit()
        return Authentication(principal=Principal(token=token))
    if session_cookie:
        session = core_service.resolve_session(db, token=session_cookie)
        if session is not None:
            membership = (None if session.active_tenant_id is None else
                          core_service.get_membership(db, user_id=session.user_id,
                                                      tenant_id=session.active_tenant_id))
            principal = Principal(user=session.user, session=session, membership=membership)
            if core_service.slide_session(session, policy=login_policy(settings)):
                # The first write of the request, so this commits the slide alone: a page
                # view commits nothing else, and the slide must outlive it.
                db.commit()
                return Authentication(principal=principal, refreshed_cookie=session_cookie)
            return Authentication(principal=principal)
    return Authentication()


async def get_principal(request: Request) -> Principal | None:
    """The caller the gate resolved (no second lookup); refused credentials are a 401."""
    authentication: Authentication = request.state.authentication
    if authentication.error:
        raise NotAuthenticated(authentication.error)
    return authentication.principal


NO_TENANT_MEMBER = "You are not a member of any tenant yet. Ask a tenant admin to add you."
NO_TENANT_ADMIN = ("No tenant chosen: as a platform admin, choose the tenant to act in "
                   "(POST /tenant with its tenant_id; the page /tenant lists them).")


def no_tenant_message(user: User) -> str:
    return NO_TENANT_ADMIN if user.is_platform_admin else NO_TENANT_MEMBER


def build_context(request: Request, principal: Principal) -> TenantContext:
    """The caller's tenant context, from what the gate resolved (no I/O)."""
    request_id = getattr(request.state, "request_id", None)
    ip = client_ip(request)
    if principal.token is not None:
        token = principal.token
        return TenantContext(
            tenant_id=token.tenant_id,
            role=token.role,
            permissions=permissions_for(token.role),
            token_id=token.id,
            actor_label=principal.label,
            request_id=request_id,
            ip=ip,
        )
    assert principal.user is not None and principal.session is not None
    user, session = principal.user, principal.session
    if session.active_tenant_id is None:
        raise TenantNotChosen(no_tenant_message(user))
    membership = principal.membership
    role: Role | None = membership.role if membership else None
    cross_tenant = membership is None and user.is_platform_admin
    if membership is None and not user.is_platform_admin:
        raise TenantNotChosen("You are no longer a member of this tenant.")
    return TenantContext(
        tenant_id=session.active_tenant_id,
        role=role,
        permissions=permissions_for(role, platform_admin=user.is_platform_admin),
        user_id=user.id,
        actor_label=principal.label,
        is_platform_admin=user.is_platform_admin,
        cross_tenant=cross_tenant,
        request_id=request_id,
        ip=ip,
    )


class PermissionDependency:
    """``Depends(require(Perm.X))``: authenticates, picks the tenant, checks the permission.

    Kept as a class so tests (and the OpenAPI description) can read which permission a
    route declares.
    """

    def __init__(self, permission: Perm) -> None:
        self.permission = permission

    # ``async``: it reads what the gate resolved and does no I/O, so it runs on the loop
    # instead of costing a thread-pool hop per request; the one write it may make (a
    # platform admin's cross-tenant trace, rare) goes to the thread pool.
    async def __call__(
        self,
        request: Request,
        db: DB,
        principal: Annotated[Principal | None, Depends(get_principal)],
    ) -> TenantContext:
        if principal is None:
            raise NotAuthenticated("Log in or send 'Authorization: Bearer <token>'.")
        ctx = build_context(request, principal)
        structlog.contextvars.bind_contextvars(tenant_id=str(ctx.tenant_id))
        request.state.ctx = ctx
        if not ctx.can(self.permission):
            raise Forbidden(
                f"Your role ({ctx.role.value if ctx.role else 'none'}) lacks the "
                f"'{self.permission.value}' permission."
            )
        if ctx.cross_tenant and not getattr(request.state, "cross_tenant_logged", False):
            # Platform admins act across tenants; every such request leaves a trace.
            request.state.cross_tenant_logged = True
            await run_in_threadpool(self._trace_cross_tenant, request, db, ctx)
        return ctx

    def _trace_cross_tenant(self, request: Request, db: Session, ctx: TenantContext) -> None:
        audit.record(db, ctx, action="platform.cross_tenant_request",
                     target_type="route", target_id=request.url.path[:100],
                     after={"method": request.method, "permission": self.permission.value})
        # Committed now, alone (nothing else is written yet): the trace must outlive a
        # request that fails or is refused after this point.
        db.commit()


def require(permission: Perm) -> PermissionDependency:
    return PermissionDependency(permission)


class TenantOptionalDependency(PermissionDependency):
    """``require(...)`` for the routes that answer a browser session with no tenant chosen
    yet (``GET /api/me``): such a session gets None instead of a 403, anything else is
    checked as ``require`` checks it."""

    async def __call__(  # type: ignore[override]
        self,
        request: Request,
        db: DB,
        principal: Annotated[Principal | None, Depends(get_principal)],
    ) -> TenantContext | None:
        if (principal is not None and principal.session is not None
                and principal.session.active_tenant_id is None):
            return None
        return await super().__call__(request, db, principal)


def require_unless_no_tenant(permission: Perm) -> TenantOptionalDependency:
    return TenantOptionalDependency(permission)


CurrentPrincipal = Annotated[Principal | None, Depends(get_principal)]


async def refuse_hostile_input(request: Request) -> None:
    """App-wide: a query string, path or plain form value holding a NUL character (which
    PostgreSQL text refuses) is a 422 naming it, for every route and role. JSON bodies are
    checked by the schemas (``APIModel``); uploads by their readers."""
    values = [*request.query_params.multi_items(), *request.path_params.items()]
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = await request.form()  # parsed once per request; the route reads the same
        values += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    for name, value in values:
        if "\x00" in name or "\x00" in str(value):
            field = name.replace("\x00", "")
            raise Invalid(f"{field} must not contain a NUL character", field=field)
