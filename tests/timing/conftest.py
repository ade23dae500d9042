"""Fixtures for E08: upload a result file for an event and run its import in-process on
the test's own (rolled back) session."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.imports import service as imports_service
from racehub.imports.models import Import
from racehub.jobs.runner import run_job
from racehub.settings import Settings

UploadResults = Callable[..., Response]
RunImport = Callable[..., None]


@pytest.fixture
def upload_results(client: TestClient) -> UploadResults:
    def send(event_id: Any, content: bytes | str, *, headers: dict[str, str],
             filename: str = "results.csv") -> Response:
        data = content.encode() if isinstance(content, str) else content
        return client.post("/api/imports", params={"importType": "TIMING_RESULTS",
                                                   "eventId": str(event_id)},
                           headers=headers, files={"file": (filename, data)})
    return send


@pytest.fixture
def run_import(db: Session, settings: Settings) -> RunImport:
    """Run an import's job through the real runner, on the test's session."""
    def run(import_id: str | uuid.UUID, *, batch_size: int = 500) -> None:
        imp = db.get(Import, uuid.UUID(str(import_id)))
        assert imp is not None

        def body(handle, session, ctx, **params):  # type: ignore[no-untyped-def]
            imports_service.run_import(handle, session, ctx, import_id=params["import_id"],
                                       batch_size=batch_size, data_dir=settings.data_dir)

        with contextlib.suppress(Exception):  # a failing run is asserted on its JobRun
            run_job(None, str(imp.job_run_id), body, factory=lambda: contextlib.nullcontext(db))
        db.expire_all()
    return run


def system(tenant_id: uuid.UUID) -> TenantContext:
    return TenantContext.system(tenant_id, label="test")
