"""Uploaded imports (C05), newest first as the recent-imports lists show them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.pagination import SortKey
from racehub.core.query import scoped
from racehub.core.rbac import Perm
from racehub.exports.views import ExportColumn, ExportFilters, ExportView, ViewQuery, register
from racehub.imports import service as imports_service
from racehub.imports.exceptions import RejectedUpload
from racehub.imports.models import Import
from racehub.jobs.models import JobRun


class ImportExportFilters(ExportFilters):
    import_type: str | None = None


def _query(ctx: TenantContext, flt: ImportExportFilters, sort: str, descending: bool,
           cutoff: datetime) -> ViewQuery:
    stmt = (scoped(ctx, Import).join(JobRun, JobRun.id == Import.job_run_id)
            .where(Import.created_at <= cutoff))
    if flt.import_type:
        stmt = stmt.where(Import.import_type == flt.import_type)
    return ViewQuery(stmt, SortKey(columns=[Import.created_at, Import.id],
                                   descending=descending))


def _describe(db: Session, ctx: TenantContext, flt: ImportExportFilters) -> str:
    if not flt.import_type:
        return "Imports"
    try:
        import_type = imports_service.get_import_type(flt.import_type)
    except RejectedUpload as exc:
        raise Invalid(exc.detail, field="filters.importType") from exc
    return f"Imports — {import_type.label}"


def _list_url(flt: ImportExportFilters, sort: str, descending: bool) -> str:
    # The only list of imports today is the manufactured-number upload page's.
    if flt.import_type in (None, "NUMBER_ONBOARDING"):
        return "/inventory/numbers/onboard/import"
    return "/exports"


VIEW = register(ExportView(
    key="imports",
    label="Imports",
    permission=Perm.IMPORTS_IMPORT_READ,
    columns=(
        ExportColumn("created_at", "Uploaded at (UTC)", Import.created_at),
        ExportColumn("import_type", "Import type", Import.import_type),
        ExportColumn("filename", "File", Import.filename),
        ExportColumn("file_format", "Format", Import.file_format),
        ExportColumn("rows_total", "Rows", Import.rows_total),
        ExportColumn("status", "Status", JobRun.status),
        ExportColumn("message", "Result", JobRun.message),
        ExportColumn("requested_by", "Uploaded by", JobRun.requested_by_label),
        ExportColumn("size_bytes", "Size (bytes)", Import.size_bytes, default=False),
        ExportColumn("id", "Import ID", Import.id, default=False),
    ),
    filters=ImportExportFilters,
    sorts=("created_at",),
    query=_query,
    describe=_describe,
    list_url=_list_url,
    default_descending=True,
))
