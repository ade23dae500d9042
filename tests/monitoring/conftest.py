"""Crafted connections, links and runs for the monitoring views: rows as the sync engine
leaves them, written directly so each test states exactly the history it counts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from racehub.core.models import Tenant
from racehub.events.models import Event
from racehub.providers.catalog import PROVIDERS
from racehub.sync.models import EventLink, ProviderConnection, SyncRun, SyncStatus

NOW = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)
_seq = itertools.count(1)


def connection(db: Session, tenant: Tenant, name: str | None = None, *,
               provider: str = "RUNSIGNUP", **fields: Any) -> ProviderConnection:
    row = ProviderConnection(
        tenant_id=tenant.id, provider=provider, name=name or f"{provider} {next(_seq)}",
        base_url="http://127.0.0.1:9/", credentials_encrypted="-", credentials_key_id="-",
        direction=PROVIDERS[provider].direction, settings={}, field_mapping=[], **fields)
    db.add(row)
    db.flush()
    return row


def link(db: Session, conn: ProviderConnection, event: Event | None, ref: str | None = None,
         **fields: Any) -> EventLink:
    row = EventLink(tenant_id=conn.tenant_id, connection_id=conn.id, provider=conn.provider,
                    provider_event_ref=ref or str(next(_seq)),
                    event_id=event.id if event else None,
                    linked_at=NOW - timedelta(days=30) if event else None, state={},
                    sync_settings={}, **fields)
    db.add(row)
    db.flush()
    return row


def run(db: Session, event_link: EventLink, status: SyncStatus, *, ago: timedelta,
        sync_type: str = "participants", now: datetime = NOW, **fields: Any) -> SyncRun:
    """A run requested ``ago`` before ``now``; a finished one ended a minute later. (The
    API reads the clock itself: its tests pass the real time, and windows of hours.)"""
    created = now - ago
    finished = (created + timedelta(minutes=1)
                if status in (SyncStatus.SUCCEEDED, SyncStatus.FAILED, SyncStatus.CANCELLED,
                              SyncStatus.DISCARDED) else None)
    row = SyncRun(tenant_id=event_link.tenant_id, connection_id=event_link.connection_id,
                  provider=event_link.provider, link_id=event_link.id,
                  event_id=event_link.event_id, sync_type=sync_type, trigger="schedule",
                  status=status, created_at=created, started_at=created,
                  finished_at=finished, **fields)
    db.add(row)
    db.flush()
    return row
