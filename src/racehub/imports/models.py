"""Uploaded files going through the generic import pipeline (C05), and where each of
their rows ended up."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from racehub.db.base import Base, TenantMixin, TimestampMixin, UUIDPrimaryKey
from racehub.jobs.models import JobRun


class Import(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """One uploaded file; its JobRun carries status, stage, progress and bucket counts."""

    __tablename__ = "imports"
    __table_args__ = (
        Index("ix_imports_tenant_id_import_type_created_at", "tenant_id", "import_type",
              "created_at"),
    )

    import_type: Mapped[str] = mapped_column(String(60))
    filename: Mapped[str] = mapped_column(String(255))
    # Relative to the data folder: web and worker processes must share it.
    stored_path: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    file_format: Mapped[str] = mapped_column(String(10))
    encoding: Mapped[str | None] = mapped_column(String(20))
    delimiter: Mapped[str | None] = mapped_column(String(2))
    header: Mapped[list[str]] = mapped_column(JSONB)
    # Field name -> column index in the file (Stage 1, Columns). While the import waits
    # for the operator's mapping it holds the detection's proposal, which is not applied.
    column_map: Mapped[dict[str, int]] = mapped_column(JSONB)
    # How Stage 1 got its map: auto_applied (fixed schema), auto_detected, needs_mapping
    # (the job is paused in Columns until POST .../mapping), mapped (by the operator).
    mapping_state: Mapped[str] = mapped_column(String(20), server_default="auto_applied")
    # The first data rows as cells, shown under the mapping form.
    sample_rows: Mapped[list[list[str]]] = mapped_column(JSONB, server_default="[]")
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    rows_total: Mapped[int | None] = mapped_column(Integer)
    job_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job_runs.id", ondelete="RESTRICT"))

    job_run: Mapped[JobRun] = relationship()


class ImportRowResult(Base):
    """Where one row of the file ended up (its bucket), with its values and the reason."""

    __tablename__ = "import_row_results"
    __table_args__ = (
        # One result per row: a retried batch cannot record a row twice.
        Index("uq_import_row_results_import_id_row_number", "import_id", "row_number",
              unique=True),
        Index("ix_import_row_results_import_id_bucket_row_number", "import_id", "bucket",
              "row_number"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[str] = mapped_column(String(40))
    values: Mapped[dict[str, str]] = mapped_column(JSONB)
    reason: Mapped[str] = mapped_column(Text, default="")
    target_id: Mapped[uuid.UUID | None] = mapped_column()
