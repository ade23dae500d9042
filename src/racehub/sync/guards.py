"""What of the sync keeps an event or a category from being deleted: the provider events
linked to the event, its active sync runs, and the provider races mapped to a category
(moved with its entries when it is deleted into another)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.events.models import Category, Event
from racehub.sync.models import (
    ACTIVE_SYNC_STATUSES,
    CategoryLink,
    EventLink,
    ProviderConnection,
    SyncRun,
)


def event_blockers(db: Session, ctx: TenantContext, event: Event) -> list[str]:
    reasons = []
    links = db.scalar(select(func.count()).where(
        EventLink.tenant_id == ctx.tenant_id, EventLink.event_id == event.id)) or 0
    if links:
        reasons.append(f"it is linked to {links} provider event{'' if links == 1 else 's'} "
                       "(unlink them first)")
    runs = db.scalar(select(func.count()).where(
        SyncRun.tenant_id == ctx.tenant_id, SyncRun.event_id == event.id,
        SyncRun.status.in_(ACTIVE_SYNC_STATUSES))) or 0
    if runs:
        reasons.append(f"{runs} sync run{' is' if runs == 1 else 's are'} not finished")
    return reasons


def category_blockers(db: Session, ctx: TenantContext, category: Category) -> list[str]:
    rows = db.execute(
        select(CategoryLink.provider_name, CategoryLink.provider_ref, ProviderConnection.name)
        .join(EventLink, EventLink.id == CategoryLink.link_id)
        .join(ProviderConnection, ProviderConnection.id == EventLink.connection_id)
        .where(CategoryLink.tenant_id == ctx.tenant_id,
               CategoryLink.category_id == category.id)
        .order_by(ProviderConnection.name, CategoryLink.provider_ref)).all()
    if not rows:
        return []
    names = ", ".join(f"{name or ref} ({connection})" for name, ref, connection in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return [f"the provider race{'' if len(rows) == 1 else 's'} {names}{more} "
            f"{'is' if len(rows) == 1 else 'are'} mapped to it"]


def move_category(db: Session, ctx: TenantContext, category: Category,
                  target: Category) -> None:
    """The provider races mapped to ``category`` now feed ``target``, so the next sync
    keeps the moved entries where they went."""
    db.execute(update(CategoryLink)
               .where(CategoryLink.tenant_id == ctx.tenant_id,
                      CategoryLink.category_id == category.id)
               .values(category_id=target.id))
