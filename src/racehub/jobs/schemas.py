"""API shapes of job runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from racehub.core.schemas import APIModel
from racehub.jobs.models import JobStatus


class JobRunRead(APIModel):
    id: uuid.UUID
    kind: str
    status: JobStatus
    stage: str
    percent: float
    done: int
    total: int | None
    counts: dict[str, Any]
    message: str
    # The failure's last line only (JobRun.error_summary), never the traceback.
    error: str | None = Field(validation_alias="error_summary")
    log: list[dict[str, Any]]
    params: dict[str, Any]
    requested_by_user_id: uuid.UUID | None
    requested_by_label: str
    cancel_requested: bool
    pause_requested: bool
    attempts: int
    # Failed attempts retried by the kind's policy; while waiting, when the next is due.
    retries: int
    retry_at: datetime | None
    priority: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
