"""The append-only audit log: write entries, read them keyset-paged."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.models import ApiToken, AuditEntry, User
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page


def record(
    db: Session,
    ctx: TenantContext | None,
    *,
    action: str,
    target_type: str | None = None,
    target_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    tenant_id: uuid.UUID | None = None,
    actor_label: str | None = None,
    actor_user_id: uuid.UUID | None = None,
) -> AuditEntry:
    """Add an entry to the caller's transaction: it commits (or not) with the change it records."""
    entry = AuditEntry(
        tenant_id=tenant_id if tenant_id is not None else (ctx.tenant_id if ctx else None),
        actor_user_id=(
            actor_user_id if actor_user_id is not None else (ctx.user_id if ctx else None)
        ),
        actor_token_id=ctx.token_id if ctx else None,
        actor_label=actor_label or (ctx.actor_label if ctx else "system"),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=_jsonable(before),
        after=_jsonable(after),
        request_id=ctx.request_id if ctx else None,
        ip=ctx.ip if ctx else None,
    )
    if ctx is not None and ctx.cross_tenant:
        entry.after = {**(entry.after or {}), "_platform_admin_cross_tenant": True}
    db.add(entry)
    return entry


def _jsonable(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = _jsonable(value)
        elif value is None or isinstance(value, bool | int | float | str | list):
            out[key] = value
        else:
            out[key] = str(value)
    return out


ACTOR_FILTER_HELP = (
    "Who acted: a user's e-mail, an API token's prefix (rh_…, as in 'token:rh_…') or name, "
    "or a user or token id"
)


def actor_filter(tenant_id: uuid.UUID, actor: str) -> ColumnElement[bool]:
    """Entries of one actor, named as ``ACTOR_FILTER_HELP`` says. Users are matched by id
    (their e-mail at the time is only a label); tokens only among the tenant's own."""
    actor = actor.strip()
    try:
        actor_id = uuid.UUID(actor)
    except ValueError:
        pass
    else:
        return or_(AuditEntry.actor_user_id == actor_id, AuditEntry.actor_token_id == actor_id)
    prefix = actor.removeprefix("token:").rstrip("…")
    users = select(User.id).where(func.lower(User.email) == actor.lower())
    tokens = select(ApiToken.id).where(
        ApiToken.tenant_id == tenant_id,
        or_(ApiToken.prefix == prefix, func.lower(ApiToken.name) == actor.lower()))
    return or_(AuditEntry.actor_user_id.in_(users), AuditEntry.actor_token_id.in_(tokens))


def as_utc(value: datetime) -> datetime:
    """A time without an offset is UTC, as the audit pages show it (not the server's zone)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def day_end(day: date) -> datetime:
    """The exclusive bound that makes a "To" day inclusive: the next midnight, UTC."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def entries_query(
    ctx: TenantContext,
    *,
    action: str | None = None,
    actor: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[AuditEntry]:
    """The tenant's entries matching the audit filters (the API, the page, the export).
    ``until`` is exclusive; times without an offset are UTC."""
    stmt = select(AuditEntry).where(AuditEntry.tenant_id == ctx.tenant_id)
    if action:
        # "event." lists every event action; a full name matches exactly.
        if action.endswith("."):
            stmt = stmt.where(AuditEntry.action.startswith(action, autoescape=True))
        else:
            stmt = stmt.where(AuditEntry.action == action)
    if actor and actor.strip():
        stmt = stmt.where(actor_filter(ctx.tenant_id, actor))
    if target_type:
        stmt = stmt.where(AuditEntry.target_type == target_type)
    if target_id:
        stmt = stmt.where(AuditEntry.target_id == target_id)
    if since:
        stmt = stmt.where(AuditEntry.at >= as_utc(since))
    if until:
        stmt = stmt.where(AuditEntry.at < as_utc(until))
    return stmt


def list_entries(
    db: Session,
    ctx: TenantContext,
    *,
    cursor: str | None = None,
    limit: int = 50,
    **filters: Any,
) -> tuple[list[AuditEntry], str | None]:
    """One keyset page of ``entries_query(ctx, **filters)``, newest first."""
    check_limit(limit)
    stmt = entries_query(ctx, **filters)
    key = SortKey(columns=[AuditEntry.id], descending=True)
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    return split_page(rows, limit, lambda e: [e.id])
