"""The tenant's sync runs, newest first, with the filters of ``GET /api/sync/runs`` (the
same query: sync.runs.runs_query): what each run read and changed, how it ended."""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.pagination import SortKey
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import Event
from racehub.exports.views import ExportColumn, ExportFilters, ExportView, ViewQuery, register
from racehub.sync import runs
from racehub.sync import service as sync_service
from racehub.sync.models import EventLink, ProviderConnection, SyncRun, SyncStatus, SyncTrigger

run = SyncRun


class SyncRunExportFilters(ExportFilters):
    connection_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None
    status: SyncStatus | None = None
    trigger: SyncTrigger | None = None


def _query(ctx: TenantContext, flt: SyncRunExportFilters, sort: str, descending: bool,
           cutoff: datetime) -> ViewQuery:
    stmt = (runs.runs_query(ctx, runs.RunFilter(connection_id=flt.connection_id,
                                                event_id=flt.event_id, status=flt.status,
                                                trigger=flt.trigger))
            # A run keeps its counts when its connection, link or event is deleted (the
            # ids are set null): those columns are then empty, the provider stays.
            .outerjoin(ProviderConnection, (ProviderConnection.id == run.connection_id)
                       & (ProviderConnection.tenant_id == ctx.tenant_id))
            .outerjoin(EventLink, (EventLink.id == run.link_id)
                       & (EventLink.tenant_id == ctx.tenant_id))
            .outerjoin(Event, (Event.id == run.event_id) & (Event.tenant_id == ctx.tenant_id))
            .where(run.created_at <= cutoff))
    return ViewQuery(stmt, SortKey(columns=[run.created_at, run.id], descending=descending))


def _describe(db: Session, ctx: TenantContext, flt: SyncRunExportFilters) -> str:
    parts = []
    if flt.connection_id is not None:
        connection = sync_service.get_connection_or_raise(db, ctx,
                                                          connection_id=flt.connection_id)
        parts.append(connection.name)
    if flt.event_id is not None:
        parts.append(events_service.get_event_or_raise(db, ctx, event_id=flt.event_id).name)
    parts += [v.value for v in (flt.status, flt.trigger) if v is not None]
    return "Sync runs" + "".join(f" — {p}" for p in parts)


def _list_url(flt: SyncRunExportFilters, sort: str, descending: bool) -> str:
    """The Sync tab whose history these filters show (its status and trigger filters)."""
    query = urlencode({k: v.value for k, v in (("status", flt.status),
                                               ("trigger", flt.trigger)) if v is not None})
    if flt.event_id is not None:
        base = f"/events/{flt.event_id}/sync"
    elif flt.connection_id is not None:
        base = f"/connections/{flt.connection_id}/sync"
    else:
        return "/connections"
    return f"{base}?{query}" if query else base


VIEW = register(ExportView(
    key="sync_runs",
    label="Sync runs",
    permission=Perm.SYNC_RUN_READ,
    columns=(
        ExportColumn("created_at", "Requested at (UTC)", run.created_at),
        ExportColumn("connection", "Connection", ProviderConnection.name),
        ExportColumn("provider", "Provider", run.provider),
        ExportColumn("provider_event", "Provider event", EventLink.provider_event_ref),
        ExportColumn("event", "Event", Event.name),
        ExportColumn("sync_type", "Sync", run.sync_type),
        ExportColumn("trigger", "Trigger", run.trigger),
        ExportColumn("status", "Status", run.status),
        ExportColumn("requested_by", "Requested by", run.requested_by_label),
        ExportColumn("started_at", "Started at (UTC)", run.started_at),
        ExportColumn("finished_at", "Finished at (UTC)", run.finished_at),
        ExportColumn("fetched", "Fetched", run.fetched),
        ExportColumn("created", "Created", run.created),
        ExportColumn("updated", "Updated", run.updated),
        ExportColumn("unchanged", "Unchanged", run.unchanged),
        ExportColumn("withdrawn", "Withdrawn", run.withdrawn),
        ExportColumn("conflicts", "Conflicts", run.conflicts),
        ExportColumn("problems", "Problems", run.problems),
        ExportColumn("error", "Error", run.error),
        ExportColumn("attempts", "Attempts", run.attempts, default=False),
        ExportColumn("full_refresh", "Full refresh", run.full_refresh, default=False),
        ExportColumn("id", "Run ID", run.id, default=False),
    ),
    filters=SyncRunExportFilters,
    sorts=("created_at",),
    query=_query,
    describe=_describe,
    list_url=_list_url,
    default_descending=True,
))
