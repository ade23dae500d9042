"""The tenant's audit log, newest first, with the filters of the audit page."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from pydantic import field_validator
from sqlalchemy.orm import Session

from racehub.core.audit import as_utc, day_end, entries_query
from racehub.core.context import TenantContext
from racehub.core.models import AuditEntry
from racehub.core.pagination import SortKey
from racehub.core.rbac import Perm
from racehub.core.schemas import SaneDate, SaneDateTime
from racehub.exports.views import ExportColumn, ExportFilters, ExportView, ViewQuery, register

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class AuditExportFilters(ExportFilters):
    """The audit page's filters. Times without an offset are UTC. ``until`` is exclusive,
    except a bare day (``2026-05-01``, the page's "To"), which includes that whole day."""

    action: str | None = None  # "event." = every event action
    actor: str | None = None  # e-mail, token prefix or name, user or token id
    target_type: str | None = None
    target_id: str | None = None
    since: SaneDateTime | None = None
    until: SaneDateTime | SaneDate | None = None

    @field_validator("until", mode="before")
    @classmethod
    def _bare_day(cls, value: Any) -> Any:
        # Kept a date (not midnight) so that it stays inclusive when stored and read back.
        if isinstance(value, str) and _DAY.match(value.strip()):
            return date.fromisoformat(value.strip())
        return value


def _until_bound(until: datetime | date) -> datetime:
    return as_utc(until) if isinstance(until, datetime) else day_end(until)


def _query(ctx: TenantContext, flt: AuditExportFilters, sort: str, descending: bool,
           cutoff: datetime) -> ViewQuery:
    stmt = entries_query(
        ctx, action=flt.action, actor=flt.actor, target_type=flt.target_type,
        target_id=flt.target_id, since=flt.since,
        until=_until_bound(flt.until) if flt.until else None,
    ).where(AuditEntry.at <= cutoff)
    return ViewQuery(stmt, SortKey(columns=[AuditEntry.id], descending=descending))


def _describe(db: Session, ctx: TenantContext, flt: AuditExportFilters) -> str:
    return "Audit log" + "".join(f" — {part}" for part in (flt.action, flt.actor) if part)


def _list_url(flt: AuditExportFilters, sort: str, descending: bool) -> str:
    until = None
    if flt.until is not None:
        # The page's "To" is an inclusive day: the last day before the exclusive bound.
        last = (as_utc(flt.until).astimezone(UTC) - timedelta(microseconds=1)).date() \
            if isinstance(flt.until, datetime) else flt.until
        until = last.isoformat()
    params = {"action": flt.action, "actor": flt.actor, "targetType": flt.target_type,
              "targetId": flt.target_id,
              "since": as_utc(flt.since).astimezone(UTC).date().isoformat() if flt.since else None,
              "until": until}
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
