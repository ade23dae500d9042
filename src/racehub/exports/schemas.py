"""API shapes of exports and of the registry of exportable views."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from racehub.core.schemas import APIModel


class ExportCreate(APIModel):
    """What to export: a view, its filters and sort as the list shows them, the columns
    (keys, in order; default: the view's default ones) and the format."""

    view: str
    filters: dict[str, Any] = Field(default_factory=dict)
    sort: str | None = None
    descending: bool | None = None  # default: the view's own direction
    columns: list[str] | None = None
    file_format: str = Field(default="csv", alias="format")


class ExportRead(APIModel):
    id: uuid.UUID
    view: str
    title: str
    status: str  # queued, running, paused, completed, failed, cancelled, expired
    stage: str  # Queued, Counting, Exporting, Uploading, Completed, Failed, ...
    percent: float
    rows_total: int | None
    rows_done: int
    row_count: int | None
    format: str
    columns: list[str]
    column_labels: list[str]
    filters: dict[str, Any]
    sort: str | None
    descending: bool
    filename: str
    size_bytes: int | None
    message: str
    requested_by: str
    cutoff_at: datetime
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime | None
    expired_at: datetime | None
    retry_of_id: uuid.UUID | None
    job_id: uuid.UUID
    status_url: str
    list_url: str
    download_url: str | None


class ExportColumnRead(APIModel):
    key: str
    label: str
    default: bool


class ExportViewRead(APIModel):
    key: str
    label: str
    permission: str
    columns: list[ExportColumnRead]
    filters: list[str]
    sorts: list[str]
    default_descending: bool
