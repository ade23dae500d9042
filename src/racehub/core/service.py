"""Tenants, users, memberships, login sessions and API tokens."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.exceptions import Conflict, Invalid, NotAuthenticated, NotFound, TooManyRequests
from racehub.core.models import (
    ApiToken,
    LoginAttempt,
    Membership,
    Role,
    Tenant,
    User,
    UserSession,
)
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import contains_pattern
from racehub.core.rbac import permissions_for
from racehub.core.schemas import ApiTokenCreate, MemberCreate, TenantRead, construct_trusted
from racehub.core.security import hash_password, new_token, token_digest, verify_password

TOKEN_PREFIX = "rh_"
MIN_PASSWORD_LENGTH = 10
# A token lives at most this long: an expiry years away is a typo, or a secret meant to
# outlive anyone's memory of it.
MAX_TOKEN_LIFETIME = timedelta(days=5 * 366)


def _now() -> datetime:
    return datetime.now(UTC)


# --- tenants and users -------------------------------------------------------------------


def create_tenant(db: Session, *, name: str, slug: str | None = None) -> Tenant:
    slug = slug or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64]
    if not slug:
        raise Invalid("tenant slug must contain letters or digits", field="slug")
    if db.scalar(select(Tenant.id).where(Tenant.slug == slug)):
        raise Conflict(f"a tenant with slug {slug!r} exists already", field="slug")
    tenant = Tenant(name=name, slug=slug)
    db.add(tenant)
    db.flush()  # the id is needed for the audit entry
    audit.record(db, None, action="tenant.create", target_type="tenant", target_id=tenant.id,
                 tenant_id=tenant.id, after={"name": name, "slug": slug})
    return tenant


def get_tenant_by_slug(db: Session, slug: str) -> Tenant | None:
    return db.scalar(select(Tenant).where(Tenant.slug == slug))


def get_user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def create_user(
    db: Session,
    *,
    email: str,
    password: str,
    full_name: str = "",
    is_platform_admin: bool = False,
) -> User:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters",
                      field="password")
    if get_user_by_email(db, email):
        raise Conflict(f"a user with e-mail {email} exists already", field="email")
    user = User(email=email.strip(), full_name=full_name, password_hash=hash_password(password),
                is_platform_admin=is_platform_admin)
    db.add(user)
    db.flush()
    audit.record(db, None, action="user.create", target_type="user", target_id=user.id,
                 after={"email": user.email, "platform_admin": is_platform_admin})
    return user


def set_membership(db: Session, *, tenant: Tenant, user: User, role: Role) -> Membership:
    membership = db.scalar(
        select(Membership).where(Membership.tenant_id == tenant.id, Membership.user_id == user.id)
    )
    before = None
    if membership is None:
        membership = Membership(tenant_id=tenant.id, user_id=user.id, role=role)
        db.add(membership)
    else:
        before = {"role": membership.role.value}
        membership.role = role
    db.flush()
    audit.record(db, None, action="membership.set", target_type="user", target_id=user.id,
                 tenant_id=tenant.id, before=before, after={"role": role.value})
    return membership


def get_membership(db: Session, *, user_id: uuid.UUID, tenant_id: uuid.UUID) -> Membership | None:
    return db.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.tenant_id == tenant_id)
    )


def list_memberships(db: Session, *, user_id: uuid.UUID) -> list[Membership]:
    return list(
        db.scalars(
            select(Membership)
            .where(Membership.user_id == user_id)
            .options(selectinload(Membership.tenant))
            .join(Tenant)
            .order_by(Tenant.name)
        )
    )


def list_tenants(db: Session) -> list[Tenant]:
    return list(db.scalars(select(Tenant).order_by(Tenant.name)))


@dataclass(frozen=True)
class TenantChoice:
    """A tenant the user may act in, with their role there (None: a platform admin who is
    no member of it; acting there is audit-logged)."""

    tenant: Tenant
    role: Role | None


TENANT_SORT = SortKey((Tenant.name, Tenant.id))


def search_tenants(
    db: Session, *, user: User, q: str | None = None, cursor: str | None = None,
    limit: int = 25,
) -> tuple[list[TenantChoice], str | None]:
    """The tenants ``user`` may switch to, by name (keyset-paged): their memberships, or
    every tenant for a platform admin. ``q`` matches the name or the slug, anywhere."""
    check_limit(limit)
    # Two columns; apply_keyset is typed for one-entity selects (the row shape is unchanged).
    stmt = cast("Select[Any]", select(Tenant, Membership.role).outerjoin(
        Membership, and_(Membership.tenant_id == Tenant.id, Membership.user_id == user.id)))
    if not user.is_platform_admin:
        stmt = stmt.where(Membership.user_id.is_not(None))
    term = (q or "").strip()
    if term:
        pattern = contains_pattern(term)
        stmt = stmt.where(or_(Tenant.name.ilike(pattern), Tenant.slug.ilike(pattern)))
    rows = db.execute(apply_keyset(stmt, TENANT_SORT, cursor, limit)).all()
    page, next_cursor = split_page(rows, limit, lambda r: (r[0].name, r[0].id))
    return [TenantChoice(tenant=row[0], role=row[1]) for row in page], next_cursor


# --- login, sessions, throttling ---------------------------------------------------------


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int
    lockout: timedelta
    session_lifetime: timedelta


def _recent_failures(db: Session, *, email: str, ip: str | None, since: datetime) -> int:
    by_email = db.scalar(
        select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.email == email, LoginAttempt.succeeded.is_(False), LoginAttempt.at >= since
        )
    ) or 0
    by_ip = 0
    if ip:
        # An address gets a wider allowance (offices share one), but not an unlimited one.
        by_ip = (db.scalar(
            select(func.count()).select_from(LoginAttempt).where(
                LoginAttempt.ip == ip, LoginAttempt.succeeded.is_(False), LoginAttempt.at >= since
            )
        ) or 0) // 4
    return max(by_email, by_ip)


def authenticate(
    db: Session, *, email: str, password: str, ip: str | None, policy: LoginPolicy
) -> User:
    """Check a password, throttling by e-mail and address. Records the attempt either way.

    The caller commits even on failure, so that failed attempts count.
    """
    email = email.strip().lower()
    since = _now() - policy.lockout
    if _recent_failures(db, email=email, ip=ip, since=since) >= policy.max_failures:
        minutes = int(policy.lockout.total_seconds() // 60)
        raise TooManyRequests(
            f"Too many failed logins. Try again in {minutes} minutes.",
            retry_after=int(policy.lockout.total_seconds()),
        )
    user = get_user_by_email(db, email)
    ok = verify_password(password, user.password_hash if user else None)
    ok = ok and user is not None and user.is_active
    db.add(LoginAttempt(email=email, ip=ip, succeeded=ok))
    if not ok or user is None:
        audit.record(db, None, action="auth.login_failed", actor_label=email,
                     after={"email": email, "ip": ip})
        raise NotAuthenticated("E-mail or password is wrong.", field="password")
    user.last_login_at = _now()
    return user


def start_session(
    db: Session, *, user: User, ip: str | None, user_agent: str | None, policy: LoginPolicy
) -> str:
    """Create a login session; returns the cookie value (only its hash is stored)."""
    token = new_token()
    memberships = list_memberships(db, user_id=user.id)
    session = UserSession(
        token_hash=token_digest(token),
        user_id=user.id,
        active_tenant_id=memberships[0].tenant_id if memberships else None,
        expires_at=_now() + policy.session_lifetime,
        ip=ip,
        user_agent=(user_agent or "")[:400],
    )
    db.add(session)
    db.flush()
    audit.record(db, None, action="auth.login", target_type="user", target_id=user.id,
                 tenant_id=session.active_tenant_id, actor_user_id=user.id,
                 actor_label=user.email, after={"ip": ip})
    return token


# Sliding expiry is written at most this often, to keep page views read-only otherwise.
SESSION_SLIDE_EVERY = timedelta(minutes=1)


def resolve_session(db: Session, *, token: str) -> UserSession | None:
    session = db.scalar(
        select(UserSession)
        .where(UserSession.token_hash == token_digest(token))
        .options(selectinload(UserSession.user))
    )
    if session is None or session.expires_at <= _now() or not session.user.is_active:
        return None
    return session


def slide_session(session: UserSession, *, policy: LoginPolicy) -> bool:
    """Push the idle expiry ``session_lifetime`` past now, if it was last pushed more than
    ``SESSION_SLIDE_EVERY`` ago. Returns whether it moved (the caller commits it and sends
    the browser a cookie with the new lifetime, or the browser would drop it first)."""
    now = _now()
    if now - session.last_seen_at <= SESSION_SLIDE_EVERY:
        return False
    session.last_seen_at = now
    session.expires_at = now + policy.session_lifetime
    return True


def end_session(db: Session, *, token: str) -> None:
    session = db.scalar(select(UserSession).where(UserSession.token_hash == token_digest(token))
                        .options(selectinload(UserSession.user)))
    if session is None:
        return
    # Labelled by e-mail like every other entry of a user, so the actor filter and the
    # page read the same for login and logout.
    audit.record(db, None, action="auth.logout", target_type="user", target_id=session.user_id,
                 tenant_id=session.active_tenant_id, actor_user_id=session.user_id,
                 actor_label=session.user.email)
    db.execute(delete(UserSession).where(UserSession.id == session.id))


def switch_tenant(db: Session, *, session: UserSession, tenant_id: uuid.UUID) -> None:
    user = session.user
    if get_membership(db, user_id=user.id, tenant_id=tenant_id) is None:
        if not user.is_platform_admin or db.get(Tenant, tenant_id) is None:
            raise NotFound("tenant not found", field="tenant_id")
        audit.record(db, None, action="platform.tenant_switch", target_type="tenant",
                     target_id=tenant_id, tenant_id=tenant_id, actor_user_id=user.id,
                     actor_label=user.email, after={"_platform_admin_cross_tenant": True})
    session.active_tenant_id = tenant_id


# --- API tokens --------------------------------------------------------------------------


def create_api_token(
    db: Session, ctx: TenantContext, *, data: ApiTokenCreate
) -> tuple[ApiToken, str]:
    """Returns the row and the secret; the secret is never stored or shown again. An
    expiry without an offset is UTC."""
    expires_at = audit.as_utc(data.expires_at) if data.expires_at is not None else None
    if expires_at is not None and expires_at <= _now():
        raise Invalid("the expiry must be in the future", field="expiresAt")
    if expires_at is not None and expires_at > _now() + MAX_TOKEN_LIFETIME:
        raise Invalid("the expiry must be at most 5 years from now", field="expiresAt")
    secret = new_token(TOKEN_PREFIX)
    token = ApiToken(
        tenant_id=ctx.tenant_id,
        name=data.name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=token_digest(secret),
        role=data.role,
        created_by_user_id=ctx.user_id,
        expires_at=expires_at,
    )
    db.add(token)
    db.flush()
    audit.record(db, ctx, action="token.create", target_type="api_token", target_id=token.id,
                 after={"name": data.name, "role": data.role.value, "prefix": token.prefix})
    return token, secret


def list_api_tokens(db: Session, ctx: TenantContext) -> list[ApiToken]:
    return list(
        db.scalars(
            select(ApiToken)
            .where(ApiToken.tenant_id == ctx.tenant_id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id)
        )
    )


def revoke_api_token(db: Session, ctx: TenantContext, *, token_id: uuid.UUID) -> ApiToken:
    token = db.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.tenant_id == ctx.tenant_id)
    )
    if token is None:
        raise NotFound("API token not found")
    if token.revoked_at is None:
        token.revoked_at = _now()
        audit.record(db, ctx, action="token.revoke", target_type="api_token", target_id=token.id,
                     before={"name": token.name, "prefix": token.prefix})
    return token


TOKEN_USE_RESOLUTION = timedelta(minutes=1)


@dataclass
class TokenCaller:
    """An API token as the caller of a request: the columns authentication and the tenant
    context read. Every API request resolves one, so it is read as plain columns, not
    loaded as an ORM ``ApiToken`` (identity map, instance state: about half again the
    cost of the lookup itself)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    prefix: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


# Built once: every API request runs it, and a statement built per call is composed and
# its cache key computed again each time (a prebuilt one memoizes its key).
_TOKEN_BY_DIGEST = select(
    ApiToken.id, ApiToken.tenant_id, ApiToken.role, ApiToken.prefix, ApiToken.expires_at,
    ApiToken.last_used_at, ApiToken.revoked_at,
).where(ApiToken.token_hash == bindparam("digest"))


def resolve_api_token(db: Session, *, secret: str) -> TokenCaller | None:
    """The live token with this secret (one indexed lookup, no write)."""
    row = db.connection().execute(_TOKEN_BY_DIGEST, {"digest": token_digest(secret)}).first()
    if row is None:
        return None
    token = TokenCaller(*row)
    if token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= _now():
        return None
    return token


def note_token_use(db: Session, token: TokenCaller) -> bool:
    """Record that ``token`` was used, at most once a minute; True when it wrote (the
    caller commits that write at once: see core.deps.authenticate)."""
    now = _now()
    if token.last_used_at is not None and now - token.last_used_at <= TOKEN_USE_RESOLUTION:
        return False
    db.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    token.last_used_at = now
    return True


# Built once, read as plain columns: ``GET /api/me`` (polled by displays to check their
# token) needs the tenant's three fields, not an ORM object in the session's identity map
# (the ORM load cost about twice the Core read).
_TENANT_READ = select(Tenant.id, Tenant.name, Tenant.slug).where(Tenant.id == bindparam("id"))


def get_tenant_read(db: Session, *, tenant_id: uuid.UUID) -> TenantRead:
    row = db.connection().execute(_TENANT_READ, {"id": tenant_id}).one_or_none()
    if row is None:
        raise NotFound("tenant not found")
    return construct_trusted(TenantRead, row._asdict())


# --- tenant members ----------------------------------------------------------------------


def _members(ctx: TenantContext) -> Select[Membership]:
    return select(Membership).where(Membership.tenant_id == ctx.tenant_id)


def list_members(db: Session, ctx: TenantContext) -> list[Membership]:
    return list(db.scalars(
        _members(ctx).join(User, User.id == Membership.user_id)
        .options(selectinload(Membership.user))
        .order_by(func.lower(User.email))
    ))


def get_member_or_raise(db: Session, ctx: TenantContext, *, user_id: uuid.UUID) -> Membership:
    membership = db.scalar(_members(ctx).where(Membership.user_id == user_id)
                           .options(selectinload(Membership.user)))
    if membership is None:
        raise NotFound("member not found")
    return membership


def _lock_tenant_members(db: Session, ctx: TenantContext) -> None:
    # One member change per tenant at a time, so two admins demoting each other cannot
    # both see the other as the remaining admin. FOR NO KEY UPDATE leaves inserts of rows
    # referencing the tenant (their FK checks) unblocked.
    db.execute(select(Tenant.id).where(Tenant.id == ctx.tenant_id)
               .with_for_update(key_share=True))


def _refuse_losing_last_admin(db: Session, ctx: TenantContext, membership: Membership,
                              *, removing: bool) -> None:
    if membership.role != Role.TENANT_ADMIN:
        return
    admins = db.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == ctx.tenant_id, Membership.role == Role.TENANT_ADMIN)) or 0
    if admins > 1:
        return
    who = "you are" if membership.user_id == ctx.user_id else f"{membership.user.email} is"
    verb = "removed" if removing else "given another role"
    raise Conflict(
        f"{who} the only TENANT_ADMIN of this tenant and cannot be {verb}: make another "
        "member TENANT_ADMIN first, so someone can still manage members and API tokens.",
        field=None if removing else "role",
    )


def _revoke_member_tokens(db: Session, ctx: TenantContext, *, user_id: uuid.UUID,
                          keep_role: Role | None, reason: str) -> list[str]:
    """Revoke the tokens ``user_id`` created in this tenant (all of them, or those acting
    with more rights than ``keep_role``). Tokens carry their own role, so they would
    otherwise outlive the membership that let their creator make them."""
    tokens = db.scalars(select(ApiToken).where(
        ApiToken.tenant_id == ctx.tenant_id, ApiToken.created_by_user_id == user_id,
        ApiToken.revoked_at.is_(None)).order_by(ApiToken.created_at, ApiToken.id)).all()
    allowed = permissions_for(keep_role) if keep_role is not None else frozenset()
    revoked = []
    for token in tokens:
        if keep_role is not None and permissions_for(token.role) <= allowed:
            continue
        token.revoked_at = _now()
        audit.record(db, ctx, action="token.revoke", target_type="api_token",
                     target_id=token.id, before={"name": token.name, "prefix": token.prefix},
                     after={"reason": reason})
        revoked.append(token.prefix)
    return revoked


def add_member(db: Session, ctx: TenantContext, *, data: MemberCreate) -> tuple[Membership, bool]:
    """Returns the membership and whether a new account was created for it."""
    _lock_tenant_members(db, ctx)
    user = get_user_by_email(db, data.email)
    created = user is None
    if user is None:
        if not data.password:
            raise Invalid(
                f"{data.email} has no racehub account yet: give a password (at least "
                f"{MIN_PASSWORD_LENGTH} characters) to create one", field="password")
        user = create_user(db, email=data.email, password=data.password,
                           full_name=data.full_name)
    elif get_membership(db, user_id=user.id, tenant_id=ctx.tenant_id) is not None:
        raise Conflict(f"{user.email} is already a member of this tenant", field="email")
    membership = Membership(tenant_id=ctx.tenant_id, user_id=user.id, role=data.role)
    db.add(membership)
    db.flush()  # created_at for the answer
    audit.record(db, ctx, action="member.add", target_type="user", target_id=user.id,
                 before=None, after={"email": user.email, "role": data.role.value,
                                     "account_created": created})
    return membership, created


def update_member_role(db: Session, ctx: TenantContext, *, user_id: uuid.UUID,
                       role: Role) -> Membership:
    _lock_tenant_members(db, ctx)
    membership = get_member_or_raise(db, ctx, user_id=user_id)
    if membership.role == role:
        return membership
    if role != Role.TENANT_ADMIN:
        _refuse_losing_last_admin(db, ctx, membership, removing=False)
    before = membership.role
    membership.role = role
    revoked = _revoke_member_tokens(db, ctx, user_id=user_id, keep_role=role,
                                    reason="member.role_change")
    audit.record(db, ctx, action="member.role_change", target_type="user", target_id=user_id,
                 before={"email": membership.user.email, "role": before.value},
                 after={"role": role.value, "revoked_tokens": revoked})
    return membership


def remove_member(db: Session, ctx: TenantContext, *, user_id: uuid.UUID) -> None:
    """Remove a member; their tokens in this tenant are revoked, and their browser sessions
    open on this tenant move to another of their tenants (or to none)."""
    _lock_tenant_members(db, ctx)
    membership = get_member_or_raise(db, ctx, user_id=user_id)
    _refuse_losing_last_admin(db, ctx, membership, removing=True)
    revoked = _revoke_member_tokens(db, ctx, user_id=user_id, keep_role=None,
                                    reason="member.remove")
    elsewhere = db.scalar(
        select(Membership.tenant_id).join(Tenant)
        .where(Membership.user_id == user_id, Membership.tenant_id != ctx.tenant_id)
        .order_by(Tenant.name).limit(1))
    db.execute(update(UserSession)
               .where(UserSession.user_id == user_id,
                      UserSession.active_tenant_id == ctx.tenant_id)
               .values(active_tenant_id=elsewhere))
    audit.record(db, ctx, action="member.remove", target_type="user", target_id=user_id,
                 before={"email": membership.user.email, "role": membership.role.value},
                 after={"revoked_tokens": revoked})
    db.delete(membership)
    db.flush()  # gone before the caller lists the members again
