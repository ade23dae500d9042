"""What deleting a provider connection takes with it, said before it goes.

A connection's provider events (EventLink rows) go with it (ON DELETE CASCADE), and with
them each stream's cursor, state and category mappings. What stays: the sync runs and
their changes (their connection and link become NULL; provider, event, counts and changes
stay readable), the synced records (keyed by provider and registration id, so a new
connection to the same account takes the EPs over instead of adding them twice), and the
EPs. A deletion is refused while a run of one of its links is queued, running or
retrying: that run would lose its link halfway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.sync.exceptions import ConnectionSyncing
from racehub.sync.models import (
    ACTIVE_SYNC_STATUSES,
    CategoryLink,
    EventLink,
    ProviderConnection,
    SyncedRecord,
    SyncRun,
    WebhookDelivery,
)


@dataclass
class ConnectionDeletion:
    """What a deletion removes (links, category links, webhook deliveries) and keeps."""

    links: list[dict[str, Any]] = field(default_factory=list)  # each link as the audit keeps it
    linked_events: int = 0  # links feeding a racehub event
    category_links: int = 0
    webhook_deliveries: int = 0
    runs_kept: int = 0
    records_kept: int = 0

    def summary(self) -> str:
        if not self.links:
            return "no provider events"
        return (f"{len(self.links)} provider event(s), {self.linked_events} of them linked to "
                f"a racehub event (their cursors and {self.category_links} category "
                f"mapping(s) go; {self.runs_kept} sync run(s) and {self.records_kept} synced "
                "record(s) stay)")


def _count(db: Session, stmt: Any) -> int:
    return int(db.scalar(stmt) or 0)


def describe(db: Session, ctx: TenantContext, connection: ProviderConnection, *,
             lock: bool = False) -> ConnectionDeletion:
    """What deleting ``connection`` would take. ``lock``: hold its links (FOR UPDATE) and
    refuse while one has an active run; a run request inserting meanwhile waits on the
    lock (its row refers to the link) and then finds the link gone."""
    # Plain rows, not ORM objects: the session holds no link the cascade then deletes.
    stmt = (select(EventLink.id, EventLink.provider_event_ref, EventLink.provider_event_name,
                   EventLink.event_id, EventLink.cursor, EventLink.last_success_at)
            .where(EventLink.tenant_id == ctx.tenant_id,
                   EventLink.connection_id == connection.id)
            .order_by(EventLink.provider_event_ref, EventLink.id))
    found = db.execute(stmt.with_for_update() if lock else stmt).all()
    ids = [link.id for link in found]
    if lock and ids:
        active = db.execute(
            select(EventLink.provider_event_ref, SyncRun.id, SyncRun.status)
            .join(SyncRun, SyncRun.link_id == EventLink.id)
            .where(SyncRun.tenant_id == ctx.tenant_id, SyncRun.link_id.in_(ids),
                   SyncRun.status.in_(ACTIVE_SYNC_STATUSES))
            .order_by(EventLink.provider_event_ref)).first()
        if active is not None:
            ref, run_id, status = active
            raise ConnectionSyncing(
                f"provider event {ref!r} of this connection is syncing (run {run_id} is "
                f"{status.value}): delete the connection once the run has ended")
    return ConnectionDeletion(
        links=[{"providerEventRef": link.provider_event_ref,
                "providerEventName": link.provider_event_name,
                "eventId": str(link.event_id) if link.event_id else None,
                "cursor": link.cursor.isoformat() if link.cursor else None,
                "lastSuccessAt": (link.last_success_at.isoformat()
                                  if link.last_success_at else None)} for link in found],
        linked_events=sum(1 for link in found if link.event_id is not None),
        category_links=_count(db, select(func.count()).select_from(CategoryLink).where(
            CategoryLink.tenant_id == ctx.tenant_id, CategoryLink.link_id.in_(ids)))
        if ids else 0,
        webhook_deliveries=_count(db, select(func.count()).select_from(WebhookDelivery).where(
            WebhookDelivery.tenant_id == ctx.tenant_id,
            WebhookDelivery.connection_id == connection.id)),
        runs_kept=_count(db, select(func.count()).select_from(SyncRun).where(
            SyncRun.tenant_id == ctx.tenant_id, SyncRun.connection_id == connection.id)),
        records_kept=_count(db, select(func.count()).select_from(SyncedRecord).where(
            SyncedRecord.tenant_id == ctx.tenant_id,
            SyncedRecord.connection_id == connection.id)),
    )


