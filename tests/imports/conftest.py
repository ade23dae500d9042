"""Fixtures for the import pipeline tests: uploads of a manufacturer's file, and a
way to run an import's job in-process on the test's own (rolled back) session."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.core.rbac import Perm
from racehub.imports import service
from racehub.imports.registry import IMPORT_TYPES, Bucket, ImportRow, ImportType, RowOutcome
from racehub.inventory.models import NumberType
from racehub.jobs.runner import run_job
from racehub.settings import Settings
from tests.factories import auth


@pytest.fixture
def headers(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.TENANT_ADMIN)


Upload = Callable[..., Response]


@pytest.fixture
def upload(client: TestClient, headers: dict[str, str], number_type: NumberType) -> Upload:
    def send(content: bytes | str, *, filename: str = "batch.csv",
             import_type: str | None = "NUMBER_ONBOARDING", number_type_id: Any = None,
             as_headers: dict[str, str] | None = None) -> Response:
        data = content.encode() if isinstance(content, str) else content
        params = {}
        if import_type is not None:
            params["importType"] = import_type
        params["numberTypeId"] = str(number_type_id or number_type.id)
        return client.post("/api/imports", params=params, headers=as_headers or headers,
                           files={"file": (filename, data)})
    return send


RunImport = Callable[..., None]


@pytest.fixture
def run_import(db: Session, settings: Settings) -> RunImport:
    """Run an import's job through the real runner, on the test's session."""
    def run(import_id: str | uuid.UUID, *, batch_size: int = 500) -> None:
        imp = service.get_import_or_raise(db, _ctx(db, import_id), import_id=uuid.UUID(
            str(import_id)))

        def body(handle, session, ctx, **params):  # type: ignore[no-untyped-def]
            service.run_import(handle, session, ctx, import_id=params["import_id"],
                               batch_size=batch_size, data_dir=settings.data_dir)

        with contextlib.suppress(Exception):  # a failing run is asserted on its JobRun
            run_job(None, str(imp.job_run_id), body, factory=lambda: contextlib.nullcontext(db))
        db.expire_all()
    return run


def _ctx(db: Session, import_id: str | uuid.UUID):  # type: ignore[no-untyped-def]
    from racehub.core.context import TenantContext
    from racehub.imports.models import Import

    imp = db.get(Import, uuid.UUID(str(import_id)))
    assert imp is not None
    return TenantContext.system(imp.tenant_id, label="test")


# --- a test-only import type without a fixed schema (like E08's result files) --------------

SPLIT_RESULTS = "TEST_SPLIT_RESULTS"


def _process_split_rows(db: Session, ctx: Any, *, params: dict[str, Any],
                        survey: dict[str, Any], rows: list[ImportRow],
                        job_run_id: Any = None) -> list[RowOutcome]:
    outcomes = []
    for row in rows:
        missing = [f for f in ("Bib", "ChipTime") if not row.values.get(f)]
        bucket = "rejected" if missing else "timed"
        reason = f"{', '.join(missing)} is empty" if missing else ""
        # The extras (splits) travel with the row so that the tests can see them arrive.
        outcomes.append(RowOutcome(row.number, bucket, {**row.values, **row.extras}, reason))
    return outcomes


def split_results_type(**changes: Any) -> ImportType:
    """Bib and ChipTime required, Name optional, every other column kept as a split."""
    import_type = ImportType(
        key=SPLIT_RESULTS,
        label="Import test results",
        permission=Perm.IMPORTS_IMPORT_RUN,
        columns=("Bib", "ChipTime"),
        optional_columns=("Name",),
        column_aliases={"Bib": ("Dossard", "Race No"), "ChipTime": ("Net Time",)},
        keep_unmapped_columns=True,
        fixed_schema=False,
        buckets=(Bucket("timed", "Timed rows", "Rows with a bib and a chip time."),
                 Bucket("rejected", "Rejected rows", "Rows missing a bib or a time.")),
        check_params=lambda db, ctx, params: {},
        survey=lambda rows: {"rows": sum(1 for _ in rows)},
        process=_process_split_rows,
        summary_url="/imports/{import_id}",
    )
    return dataclasses.replace(import_type, **changes)


@contextlib.contextmanager
def registered(import_type: ImportType) -> Iterator[ImportType]:
    """Register a type for the duration of a test (the registry is a process-wide dict)."""
    previous = IMPORT_TYPES.get(import_type.key)
    IMPORT_TYPES[import_type.key] = import_type
    try:
        yield import_type
    finally:
        if previous is None:
            IMPORT_TYPES.pop(import_type.key, None)
        else:
            IMPORT_TYPES[import_type.key] = previous


@pytest.fixture
def split_results() -> Iterator[ImportType]:
    with registered(split_results_type()) as import_type:
        yield import_type
