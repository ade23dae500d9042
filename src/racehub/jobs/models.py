"""JobRun: the one record every long task updates (status, stage, progress, checkpoint)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from racehub.db.base import Base, TenantMixin, TimestampMixin, UUIDPrimaryKey, pg_enum


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.CANCELLED, JobStatus.COMPLETED, JobStatus.FAILED)


class JobRun(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    __tablename__ = "job_runs"
    __table_args__ = (
        Index("ix_job_runs_tenant_id_created_at", "tenant_id", "created_at"),
        # "The runs working on this row" (an import's, an export's; the sync engine's).
        Index("ix_job_runs_tenant_id_subject_type_subject_id", "tenant_id", "subject_type",
              "subject_id"),
    )

    kind: Mapped[str] = mapped_column(String(80))
    # The row the run works on (an import, an export, a category...): its kind's subject
    # rule reads it to decide who may read and control the run (jobs.service.access_of).
    # No foreign key: subjects live in many tables; a missing subject is read as the
    # strictest case of its rule.
    subject_type: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[uuid.UUID | None] = mapped_column()
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    requested_by_label: Mapped[str] = mapped_column(String(400), default="system")
    status: Mapped[JobStatus] = mapped_column(
        pg_enum(JobStatus, "job_status"), default=JobStatus.QUEUED
    )
    stage: Mapped[str] = mapped_column(String(80), default="Queued")
    percent: Mapped[float] = mapped_column(Float, default=0.0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    message: Mapped[str] = mapped_column(String(1000), default="")
    error: Mapped[str | None] = mapped_column(Text)
    log: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # What the task has durably done so far; a retried or resumed run continues from here.
    checkpoint: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    queue_job_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Failed attempts its kind's retry policy retried (jobs.retry), and while the run waits
    # for the next one, when that is due (its stage says so too).
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The queue priority it was started with (higher runs first); a resumed run keeps it.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def error_summary(self) -> str | None:
        """What users are shown of a failure: the exception's last line (its type and
        message). The full traceback stays on the row and in the worker's log for whoever
        runs the service; it names server paths and code, which no tenant needs."""
        if not self.error:
            return None
        lines = [line for line in self.error.strip().splitlines() if line.strip()]
        return lines[-1].strip()[:1000] if lines else None
