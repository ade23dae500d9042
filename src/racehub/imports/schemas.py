"""API shapes of imports: the summary (stage, percent, counts, buckets) and row results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from racehub.core.schemas import APIModel
from racehub.jobs.models import JobStatus


class StageRead(APIModel):
    name: str
    state: str
    tooltip: str


class BucketRead(APIModel):
    key: str
    label: str
    count: int


class FieldRead(APIModel):
    name: str
    required: bool


class MappingWrite(APIModel):
    """Field -> header of the file; an optional field left out (or null) stays unmapped."""

    mapping: dict[str, str | None]


class ImportRead(APIModel):
    id: uuid.UUID
    import_type: str
    filename: str
    size_bytes: int
    file_format: str
    encoding: str | None
    delimiter: str | None
    header: list[str]
    column_map: dict[str, int]
    # Stage 1: auto_applied, auto_detected, needs_mapping or mapped.
    mapping_state: str
    mapping_required: bool
    # Field -> header: the applied mapping, or the detection's proposal while it waits.
    mapping: dict[str, str]
    mapping_problems: list[str]
    fields: list[FieldRead]
    sample_rows: list[list[str]]
    params: dict[str, Any]
    status: JobStatus
    stage: str
    stages: list[StageRead]
    percent: float
    rows_total: int | None
    rows_done: int
    buckets: list[BucketRead]
    message: str
    error: str | None
    job_id: uuid.UUID
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    summary_url: str


class ImportRowRead(APIModel):
    row_number: int
    bucket: str
    values: dict[str, str]
    reason: str
    target_id: uuid.UUID | None
