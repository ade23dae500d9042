"""JSON API of list exports. Thin: the service holds the rules."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from racehub.core.context import TenantContext
from racehub.core.deps import DB, AppSettings, require
from racehub.core.rbac import Perm
from racehub.exports import service
from racehub.exports.models import Export
from racehub.exports.schemas import ExportColumnRead, ExportCreate, ExportRead, ExportViewRead
from racehub.exports.views import load_views

router = APIRouter(prefix="/api", tags=["exports"])

Exporter = Annotated[TenantContext, Depends(require(Perm.EXPORTS_EXPORT_RUN))]


def export_read(exp: Export) -> ExportRead:
    run = exp.job_run
    return ExportRead(
        id=exp.id, view=exp.view_key, title=exp.title, status=service.state_of(exp),
        stage=service.stage_of(exp), percent=run.percent, rows_total=run.total,
        rows_done=run.done, row_count=exp.row_count, format=exp.file_format,
        columns=exp.columns, column_labels=service.column_labels(exp), filters=exp.filters,
        sort=exp.sort, descending=exp.descending, filename=exp.filename,
        size_bytes=exp.size_bytes, message=run.message, requested_by=run.requested_by_label,
        cutoff_at=exp.cutoff_at, created_at=exp.created_at, started_at=run.started_at,
        completed_at=exp.completed_at, expires_at=exp.expires_at, expired_at=exp.expired_at,
        retry_of_id=exp.retry_of_id, job_id=run.id, status_url=f"/exports/{exp.id}",
        list_url=service.list_url(exp), download_url=service.download_url(exp),
    )


CREATE_DESCRIPTION = """
Capture a list as it is now and queue its export. `view` is one of `GET /api/exports/views`;
`filters` take the view's filter names, `sort`/`descending` its sorts, `columns` its column
keys in the order wanted (default: the view's default columns), `format` is `csv` (UTF-8
with BOM, formula cells neutralized with a leading `'`) or `xlsx`.

Snapshot: rows created after this request are left out, however long the export takes.
Each view needs its own read permission too (participants: `events:participant:read`...).
Poll `GET /api/exports/{id}` for `stage` and `percent`; download from `downloadUrl`.
"""


@router.get("/exports/views", response_model=list[ExportViewRead])
def list_export_views(ctx: Exporter) -> list[ExportViewRead]:
    """The lists that can be exported, with their columns, filters and sorts."""
    return [ExportViewRead(
        key=v.key, label=v.label, permission=v.permission.value,
        columns=[ExportColumnRead(key=c.key, label=c.label, default=c.default) for c in v.columns],
        filters=[f.alias or name for name, f in v.filters.model_fields.items()],
        sorts=list(v.sorts), default_descending=v.default_descending,
    ) for v in load_views().values() if ctx.can(v.permission)]


@router.post("/exports", response_model=ExportRead, status_code=201,
             description=CREATE_DESCRIPTION, summary="Start an export")
def create_export(data: ExportCreate, db: DB, ctx: Exporter,
                  settings: AppSettings) -> ExportRead:
    exp = service.create_export(db, ctx, settings=settings, data=data)
    db.commit()
    return export_read(exp)


@router.get("/exports", response_model=list[ExportRead])
def list_exports(
    db: DB, ctx: Exporter,
    active: Annotated[bool, Query(description="Only queued or running ones")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = service.LIST_LIMIT,
) -> list[ExportRead]:
    """The caller's own exports, newest first."""
    return [export_read(e) for e in service.list_my_exports(db, ctx, limit=limit,
                                                            active_only=active)]


@router.get("/exports/{export_id}", response_model=ExportRead)
def read_export(export_id: uuid.UUID, db: DB, ctx: Exporter) -> ExportRead:
    return export_read(service.get_export_or_raise(db, ctx, export_id=export_id))


@router.get("/exports/{export_id}/download", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}},
                       409: {"description": "not completed"},
                       410: {"description": "expired: the file was deleted"}})
def download_export(export_id: uuid.UUID, db: DB, ctx: Exporter,
                    settings: AppSettings) -> StreamingResponse:
    exp, chunks = service.open_download(db, ctx, settings=settings, export_id=export_id)
    db.commit()  # the audit entry of the download
    return StreamingResponse(chunks, media_type=service.media_type(exp), headers={
        "Content-Disposition": f'attachment; filename="{exp.filename}"'})


@router.post("/exports/{export_id}/cancel", response_model=ExportRead)
def cancel_export(export_id: uuid.UUID, db: DB, ctx: Exporter) -> ExportRead:
    """Stop at the next page of rows; the partial file is removed."""
    exp = service.cancel_export(db, ctx, export_id=export_id)
    db.commit()
    db.refresh(exp.job_run)
    return export_read(exp)


@router.post("/exports/{export_id}/retry", response_model=ExportRead, status_code=201)
def retry_export(export_id: uuid.UUID, db: DB, ctx: Exporter,
                 settings: AppSettings) -> ExportRead:
    """A new export of the same list, filters and columns (a fresh snapshot)."""
    exp = service.retry_export(db, ctx, settings=settings, export_id=export_id)
    db.commit()
    return export_read(exp)
