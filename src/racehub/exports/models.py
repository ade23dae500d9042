"""An export of a list view: what was asked (view, filters, sort, columns, format, cutoff)
and where its file is. Status, stage and progress live on its JobRun."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from racehub.db.base import Base, TenantMixin, TimestampMixin, UUIDPrimaryKey
from racehub.jobs.models import JobRun


class Export(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    __tablename__ = "exports"
    __table_args__ = (
        # "My exports": newest first per user.
        Index("ix_exports_tenant_id_requested_by_user_id_created_at", "tenant_id",
              "requested_by_user_id", "created_at"),
        # The hourly expiry job looks only at files still kept.
        Index("ix_exports_expires_at_live", "expires_at",
              postgresql_where=text("expired_at IS NULL AND expires_at IS NOT NULL")),
    )

    view_key: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(300))
    # The list as the operator saw it: filters (API names), sort and its direction.
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    sort: Mapped[str | None] = mapped_column(String(60))
    descending: Mapped[bool] = mapped_column(default=False)
    columns: Mapped[list[str]] = mapped_column(JSONB)
    file_format: Mapped[str] = mapped_column(String(10))
    # Snapshot: rows created after this instant are left out, on every attempt.
    cutoff_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    requested_by_token_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL"))
    retry_of_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("exports.id", ondelete="SET NULL"))
    job_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job_runs.id", ondelete="RESTRICT"))
    storage_backend: Mapped[str] = mapped_column(String(20))
    storage_key: Mapped[str | None] = mapped_column(String(500))
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    row_count: Mapped[int | None] = mapped_column(Integer)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    job_run: Mapped[JobRun] = relationship()
