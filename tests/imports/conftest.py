"""Fixtures for the import pipeline tests: uploads of a manufacturer's file, and a
way to run an import's job in-process on the test's own (rolled back) session."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.imports import service
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
