"""Fixtures for the export tests: an event with participants, and a way to run an
export's job in-process through the real runner."""

from __future__ import annotations

import contextlib
import csv
import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.models import Tenant
from racehub.events.models import Event
from racehub.exports import service
from racehub.exports.models import Export
from racehub.exports.storage import get_storage
from racehub.jobs.runner import JobHandle, run_job
from racehub.settings import Settings
from tests.factories import make_event

# Called after each page of rows, before pause/cancel is checked (a batch boundary).
BatchHook = Callable[[JobHandle], None]
RunExport = Callable[..., Export]


@pytest.fixture
def event(db: Session, tenant: Tenant) -> Event:
    return make_event(db, tenant, name="Lake Run 2026")


def run_export_job(factory: Any, export_id: uuid.UUID, settings: Settings, *,
                   hook: BatchHook | None = None) -> None:
    """What the worker does, in this process; ``hook`` runs at each batch boundary."""
    with factory() as db:
        job_run_id = db.get(Export, export_id).job_run_id

    def body(handle: JobHandle, session: Session, ctx: TenantContext, **params: Any) -> None:
        if hook is not None:
            check = handle.check_control

            def hooked() -> None:
                hook(handle)
                check()
            handle.check_control = hooked  # type: ignore[method-assign]
        service.run_export(handle, session, ctx, export_id=params["export_id"],
                           settings=settings, progress_seconds=0)  # every page

    with contextlib.suppress(Exception):  # a failing run is asserted on its JobRun
        run_job(None, str(job_run_id), body, factory=factory)


@pytest.fixture
def run_export(db: Session, settings: Settings) -> RunExport:
    """Run an export's job on the test's own (rolled back) session."""
    def run(exp: Export, *, hook: BatchHook | None = None,
            with_settings: Settings | None = None) -> Export:
        run_export_job(lambda: contextlib.nullcontext(db), exp.id, with_settings or settings,
                       hook=hook)
        db.expire_all()
        return db.get(Export, exp.id)  # type: ignore[return-value]
    return run


def stored_bytes(settings: Settings, exp: Export) -> bytes:
    assert exp.storage_key is not None
    return b"".join(get_storage(settings, exp.storage_backend).read(exp.storage_key))


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "a UTF-8 BOM starts the file"
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))
