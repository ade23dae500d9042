"""The tenant's audit log, newest first, with the filters of the audit page."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.models import AuditEntry
from racehub.core.pagination import SortKey
from racehub.core.rbac import Perm
from racehub.exports.views import ExportColumn, ExportFilters, ExportView, ViewQuery, register


class AuditExportFilters(ExportFilters):
    action: str | None = None  # "event." = every event action
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _query(ctx: TenantContext, flt: AuditExportFilters, sort: str, descending: bool,
           cutoff: datetime) -> ViewQuery:
    # Audit rows have no TenantMixin (tenant_id may be NULL for platform rows).
    stmt = select(AuditEntry).where(AuditEntry.tenant_id == ctx.tenant_id,
                                    AuditEntry.at <= cutoff)
    if flt.action:
        stmt = stmt.where(AuditEntry.action.startswith(flt.action, autoescape=True)
                          if flt.action.endswith(".") else AuditEntry.action == flt.action)
    if flt.target_type:
        stmt = stmt.where(AuditEntry.target_type == flt.target_type)
    if flt.target_id:
        stmt = stmt.where(AuditEntry.target_id == flt.target_id)
    if flt.since:
        stmt = stmt.where(AuditEntry.at >= flt.since)
    if flt.until:
        stmt = stmt.where(AuditEntry.at < flt.until)
    return ViewQuery(stmt, SortKey(columns=[AuditEntry.id], descending=descending))


def _describe(db: Session, ctx: TenantContext, flt: AuditExportFilters) -> str:
    return "Audit log" + (f" — {flt.action}" if flt.action else "")


def _list_url(flt: AuditExportFilters, sort: str, descending: bool) -> str:
    params = {"action": flt.action, "targetType": flt.target_type, "targetId": flt.target_id,
              "since": flt.since.date().isoformat() if flt.since else None,
              "until": flt.until.date().isoformat() if flt.until else None}
    return "/audit?" + urlencode({k: v for k, v in params.items() if v})


VIEW = register(ExportView(
    key="audit",
    label="Audit log",
    permission=Perm.AUDIT_LOG_READ,
    columns=(
        ExportColumn("at", "At (UTC)", AuditEntry.at),
        ExportColumn("actor", "Who", AuditEntry.actor_label),
        ExportColumn("action", "Action", AuditEntry.action),
        ExportColumn("target_type", "Target type", AuditEntry.target_type),
        ExportColumn("target_id", "Target ID", AuditEntry.target_id),
        ExportColumn("before", "Before", AuditEntry.before),
        ExportColumn("after", "After", AuditEntry.after),
        ExportColumn("id", "Entry", AuditEntry.id, default=False),
    ),
    filters=AuditExportFilters,
    sorts=("id",),
    query=_query,
    describe=_describe,
    list_url=_list_url,
    default_descending=True,
))
