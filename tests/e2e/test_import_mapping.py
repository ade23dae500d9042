"""Stage 1 (Columns) in Chromium: an import whose file lacks a required column by name
waits with the mapping form; the operator picks the column, continues, and the import
runs to its end with the mapping shown read-only."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.models import Role
from racehub.imports import service as imports_service
from racehub.imports.models import Import
from racehub.imports.registry import ImportType
from racehub.jobs.runner import run_job
from racehub.settings import Settings
from tests.e2e.helpers import login
from tests.factories import make_tenant, make_user
from tests.imports.conftest import SPLIT_RESULTS, registered, split_results_type

FILE = ("Dossard;Athlete;Finish Clock;Split 1\r\n"
        "7;Ada;00:41:02;00:20:11\r\n"
        "8;Grace;00:43:10;00:21:40\r\n"
        "9;Alan;;00:22:00\r\n")


@pytest.fixture
def split_results() -> Iterator[ImportType]:
    # The live server runs in this process: it sees the test-only type too.
    with registered(split_results_type()) as import_type:
        yield import_type


@pytest.fixture
def waiting_import(committed_db: sessionmaker[Session], e2e_settings: Settings,
                   split_results: ImportType) -> str:
    """An uploaded result file waiting for its mapping, and its operator's login."""
    with committed_db() as db:
        tenant = make_tenant(db, name="Alpine Timing")
        make_user(db, tenant, Role.RESULTS_OFFICER, email="results@alpine.test")
        ctx = TenantContext.system(tenant.id, label="results@alpine.test")
        imp = imports_service.create_import(
            db, ctx, settings=e2e_settings, import_type_key=SPLIT_RESULTS, params={},
            filename="finish.csv", upload=io.BytesIO(FILE.encode()))
        db.commit()
        return str(imp.id)


def run_the_job(committed_db: sessionmaker[Session], settings: Settings, import_id: str) -> None:
    """What the worker would do, in this process (deterministic for the test)."""
    with committed_db() as db:
        job_run_id = db.get(Import, uuid.UUID(import_id)).job_run_id

    def body(handle, session, ctx: TenantContext, **params):  # type: ignore[no-untyped-def]
        imports_service.run_import(handle, session, ctx, import_id=params["import_id"],
                                   batch_size=2, data_dir=settings.data_dir)

    run_job(None, str(job_run_id), body, factory=committed_db)


def test_the_operator_maps_a_column_and_the_import_finishes(
    page: Page, waiting_import: str, committed_db: sessionmaker[Session],
    e2e_settings: Settings,
) -> None:
    login(page, "results@alpine.test")
    page.goto(f"/imports/{waiting_import}")

    columns = page.locator(".stage[data-stage=Columns]")
    expect(columns).to_contain_text("Mapping needed")
    form = page.locator("form.mapping-form")
    expect(page.locator(".mapping-problems")).to_contain_text(
        'required field "ChipTime" has no column')
    expect(form.get_by_label("Bib")).to_have_value("Dossard")  # detected by its alias
    expect(form.get_by_label("ChipTime")).to_have_value("")
    expect(form.locator("tr[data-field=ChipTime] .required")).to_have_text("required")
    expect(form.locator("tr[data-field=Name] .required")).to_have_count(0)
    expect(page.locator("table.sample-rows tbody tr")).to_have_count(3)
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)

    form.get_by_label("ChipTime").select_option("Finish Clock")
    form.get_by_label("Name").select_option("Athlete")
    form.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(re.compile(rf"/imports/{waiting_import}$"))
    expect(page.locator("form.mapping-form")).to_have_count(0)
    expect(columns).to_contain_text("Mapped")
    mapping = page.get_by_role("table", name="Column mapping")
    expect(mapping.locator("tr[data-field=ChipTime] td")).to_have_text("Finish Clock")
    expect(mapping.locator("tr[data-field=Name] td")).to_have_text("Athlete")

    run_the_job(committed_db, e2e_settings, waiting_import)
    # The polling fragment shows the end.
    expect(page.locator(".job-head .pill")).to_have_text("completed")
    buckets = page.locator(".bucket-counts")
    expect(buckets.locator("[data-bucket=timed]")).to_contain_text("2")
    expect(buckets.locator("[data-bucket=rejected]")).to_contain_text("1")
    expect(page.locator(".stage[data-stage=Columns]")).to_contain_text("Mapped")
