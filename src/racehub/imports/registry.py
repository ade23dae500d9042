"""Import types: what a domain plugs into the generic pipeline (C05).

A domain describes its file (required columns, fixed schema or not), its buckets, how to
survey the whole file before writing (Stage 2, Cells) and how to process one batch of
rows (Stage 4). The pipeline does the rest: storing the upload, stages, progress,
checkpoints, pause/cancel, row results and their CSV downloads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from racehub import domains
from racehub.core.context import TenantContext
from racehub.core.rbac import Perm
from racehub.jobs.registry import Owner


@dataclass(frozen=True)
class Bucket:
    key: str
    label: str
    description: str


@dataclass(frozen=True)
class ImportRow:
    """A data row with its cells by field name (per the column map) and the reader's issues.

    ``extras`` holds the cells of the columns no field is mapped to (header -> cell), for
    types with ``keep_unmapped_columns``; it is empty otherwise."""

    number: int
    values: dict[str, str]
    issues: tuple[str, ...]
    extras: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RowOutcome:
    row_number: int
    bucket: str
    values: dict[str, str]
    reason: str = ""
    target_id: Any = None


@dataclass(frozen=True)
class ImportType:
    key: str
    label: str
    permission: Perm
    columns: tuple[str, ...]  # required, in template order
    fixed_schema: bool  # mapping auto-applied: the operator never maps columns
    buckets: tuple[Bucket, ...]
    # params from the upload's query string -> what the job keeps (raises DomainError)
    check_params: Callable[[Session, TenantContext, dict[str, str]], dict[str, Any]]
    # Stage 2 (Cells): one pass over all rows before any write -> JSON kept in the checkpoint
    survey: Callable[[Iterable[ImportRow]], dict[str, Any]]
    # Stage 4 (Processing): one batch, inside the batch's transaction
    process: Callable[..., list[RowOutcome]]
    # None when the type carries identity flags and Stage 3 (Verifying) really runs
    verifying_skipped_because: str | None = None
    caller: str = ""  # the importCaller:{uuid} value its upload page writes
    summary_url: str = ""  # "/.../{import_id}/summary", where the progress page ends
    describe_params: Callable[[Session, TenantContext, dict[str, Any]], str] | None = None
    # Fields used when the file has them (after the required ones in the mapping form).
    optional_columns: tuple[str, ...] = ()
    # Further header names per field, for Stage 1's detection (see service.normalize_header).
    column_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Every column no field is mapped to reaches ``process`` in ``ImportRow.extras``
    # (result files carry one column per split, named by the timing system).
    keep_unmapped_columns: bool = False
    # What an import of this type belongs to (the event, the number type), from its
    # params: its page, and its job's page, link back there.
    belongs_to: Callable[[Session, TenantContext, dict[str, Any]], list[Owner]] | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """Required fields, then optional ones: the rows of the mapping form."""
        return self.columns + tuple(c for c in self.optional_columns if c not in self.columns)

    def bucket(self, key: str) -> Bucket:
        return next(b for b in self.buckets if b.key == key)


IMPORT_TYPES: dict[str, ImportType] = {}


def register(import_type: ImportType) -> ImportType:
    IMPORT_TYPES[import_type.key] = import_type
    return import_type


def load_import_types() -> dict[str, ImportType]:
    """Every import type: the modules registering them are declared in racehub.domains."""
    domains.load_import_types()
    return IMPORT_TYPES
