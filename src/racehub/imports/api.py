"""JSON API of the import pipeline (C05). Thin: the service holds the rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from racehub.core.context import TenantContext
from racehub.core.deps import DB, AppSettings, require
from racehub.core.exceptions import Invalid
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.imports import listing, service
from racehub.imports.models import Import
from racehub.imports.registry import load_import_types
from racehub.imports.schemas import (
    BucketRead,
    FieldRead,
    ImportRead,
    ImportRowRead,
    MappingWrite,
    StageRead,
)
from racehub.jobs.models import JobStatus

router = APIRouter(prefix="/api", tags=["imports"])

ReadImports = Annotated[TenantContext, Depends(require(Perm.IMPORTS_IMPORT_READ))]
RunImports = Annotated[TenantContext, Depends(require(Perm.IMPORTS_IMPORT_RUN))]


def import_read(imp: Import) -> ImportRead:
    run = imp.job_run
    import_type = service.get_import_type(imp.import_type)
    return ImportRead(
        id=imp.id, import_type=imp.import_type, filename=imp.filename,
        size_bytes=imp.size_bytes, file_format=imp.file_format, encoding=imp.encoding,
        delimiter=imp.delimiter, header=imp.header, column_map=imp.column_map,
        mapping_state=imp.mapping_state,
        mapping_required=imp.mapping_state == service.NEEDS_MAPPING,
        mapping=service.mapping_of(imp), mapping_problems=service.mapping_problems(imp),
        fields=[FieldRead(name=f, required=f in import_type.columns)
                for f in import_type.fields],
        sample_rows=imp.sample_rows, params=imp.params, status=run.status, stage=run.stage,
        stages=[StageRead(name=s.name, state=s.state, tooltip=s.tooltip)
                for s in service.stages_of(imp)],
        percent=run.percent, rows_total=imp.rows_total, rows_done=run.done,
        buckets=[BucketRead(key=k, label=label, count=n)
                 for k, label, n in service.bucket_counts(imp)],
        message=run.message, error=run.error_summary, job_id=run.id,
        requested_by=run.requested_by_label, created_at=imp.created_at,
        started_at=run.started_at, finished_at=run.finished_at,
        summary_url=import_type.summary_url.format(import_id=imp.id),
    )


@router.post("/imports", response_model=ImportRead, status_code=201)
def create_import(
    request: Request,
    db: DB,
    ctx: RunImports,
    settings: AppSettings,
    file: Annotated[UploadFile, File(description="The CSV or XLSX file")],
    import_type: Annotated[str | None, Query(alias="importType")] = None,
) -> ImportRead:
    """Store the upload and queue its import. Further query parameters are the import
    type's own (NUMBER_ONBOARDING: ``numberTypeId``)."""
    params = {k: v for k, v in request.query_params.items() if k != "importType"}
    imp = service.create_import(db, ctx, settings=settings, import_type_key=import_type,
                                params=params, filename=file.filename or "upload",
                                upload=file.file)
    db.commit()
    return import_read(imp)


@router.get("/imports", response_model=Page[ImportRead])
def list_imports(
    db: DB,
    ctx: ReadImports,
    import_type: Annotated[str | None, Query(alias="importType")] = None,
    status: Annotated[JobStatus | None, Query(description="The state of the import's run")
                      ] = None,
    event_id: Annotated[uuid.UUID | None, Query(
        alias="eventId", description="The imports into this event (result files)")] = None,
    who: Annotated[str | None, Query(
        max_length=320, description="Who uploaded it (`requestedByLabel`, any case)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Page[ImportRead]:
    """The imports the caller may read (the rule of their runs), newest first,
    keyset-paged: the /imports page's list."""
    types = load_import_types()
    if import_type and import_type not in types:
        raise Invalid(f"importType must be one of {', '.join(sorted(types))}",
                      field="importType")
    if event_id is not None:  # another tenant's event is not found (404), like the page
        events_service.get_event_or_raise(db, ctx, event_id=event_id)
    rows, next_cursor = listing.page_imports(
        db, ctx, filters=listing.ImportFilters(import_type=import_type or None, status=status,
                                               event_id=event_id, requested_by=who or None),
        cursor=cursor, limit=limit)
    return Page[ImportRead](items=[import_read(i) for i in rows], next_cursor=next_cursor)


@router.get("/imports/{import_id}", response_model=ImportRead)
def read_import(import_id: uuid.UUID, db: DB, ctx: ReadImports) -> ImportRead:
    return import_read(service.get_import_or_raise(db, ctx, import_id=import_id))


@router.get("/imports/{import_id}/rows", response_model=Page[ImportRowRead])
def list_import_rows(
    import_id: uuid.UUID,
    db: DB,
    ctx: ReadImports,
    bucket: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[ImportRowRead]:
    rows, next_cursor = service.list_row_results(db, ctx, import_id=import_id, bucket=bucket,
                                                 cursor=cursor, limit=limit)
    return Page[ImportRowRead](items=[ImportRowRead.model_validate(r) for r in rows],
                               next_cursor=next_cursor)


@router.get("/imports/{import_id}/rows.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def download_import_rows(
    import_id: uuid.UUID, db: DB, ctx: ReadImports, bucket: str | None = None
) -> StreamingResponse:
    imp = service.get_import_or_raise(db, ctx, import_id=import_id)
    chunks = service.row_results_csv(db, ctx, import_id=import_id, bucket=bucket)
    first = next(chunks)  # bad bucket names fail here, before the 200 is sent
    name = f"import-{imp.id}-{bucket or 'all'}.csv"

    def body() -> Iterator[str]:
        yield first
        yield from chunks

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/imports/{import_id}/mapping", response_model=ImportRead)
def map_import_columns(import_id: uuid.UUID, data: MappingWrite, db: DB,
                       ctx: RunImports) -> ImportRead:
    """Stage 1 (Columns) of an import waiting for its mapping: check the field -> header
    choice (422 naming the field) and queue the rest of the pipeline. The import type's
    own permission applies, as for cancel/pause/resume."""
    imp = service.apply_mapping(db, ctx, import_id=import_id, mapping=data.mapping)
    db.commit()
    db.refresh(imp.job_run)
    return import_read(imp)


def _control(action: str):  # type: ignore[no-untyped-def]
    def control(import_id: uuid.UUID, db: DB, ctx: RunImports) -> ImportRead:
        imp = service.control_import(db, ctx, import_id=import_id, action=action)
        db.commit()
        db.refresh(imp.job_run)
        return import_read(imp)

    control.__name__ = f"{action}_import"
    control.__doc__ = f"Ask the import to {action} (cooperative: at the next batch boundary)."
    return control


for _action in ("cancel", "pause", "resume"):
    router.post(f"/imports/{{import_id}}/{_action}", response_model=ImportRead)(
        _control(_action))
