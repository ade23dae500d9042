"""The manufactured-number import in Chromium: the T06 upload screen, the C05 progress
page, and the hand-back to the T07 summary when the job ends."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.models import Role
from racehub.imports import service as imports_service
from racehub.imports.models import Import
from racehub.jobs.runner import run_job
from racehub.settings import Settings
from tests.e2e.helpers import ConsoleWatch, login
from tests.factories import make_number_type, make_tenant, make_user

UPLOAD = "/inventory/numbers/onboard/import"
FILE = ("sequence,number,barcode\r\n"
        "1,0001,012345678901\r\n"
        "2,0002,\r\n"
        "2,0002,\r\n"
        "x,0004,E4\r\n")


@pytest.fixture
def admin_email(committed_db: sessionmaker[Session]) -> str:
    with committed_db() as db:
        tenant = make_tenant(db, name="Alpine Timing")
        make_user(db, tenant, Role.TENANT_ADMIN, email="stock@alpine.test")
        make_number_type(db, tenant, name="Road bibs 2027")
        db.commit()
    return "stock@alpine.test"


def run_the_job(committed_db: sessionmaker[Session], settings: Settings, import_id: str) -> None:
    """What the worker would do, in this process (deterministic for the test)."""
    with committed_db() as db:
        job_run_id = db.get(Import, uuid.UUID(import_id)).job_run_id

    def body(handle, session, ctx: TenantContext, **params):  # type: ignore[no-untyped-def]
        imports_service.run_import(handle, session, ctx, import_id=params["import_id"],
                                   batch_size=2, data_dir=settings.data_dir)

    run_job(None, str(job_run_id), body, factory=committed_db)


def test_upload_progress_and_summary(page: Page, admin_email: str, tmp_path: Path,
                                     committed_db: sessionmaker[Session],
                                     e2e_settings: Settings) -> None:
    login(page, admin_email)
    page.goto(UPLOAD)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Import manufactured numbers — Alpine Timing")
    expect(page.get_by_role("note")).to_contain_text(
        "This import expects a fixed schema. Required columns: sequence, number, barcode. "
        "Other columns are ignored. No mapping step required.")
    expect(page.get_by_role("link", name="Download template")).to_have_attribute(
        "href", "/api/race-numbers/templates/manufactured-numbers.csv")
    expect(page.get_by_text(re.compile("source system", re.I))).to_have_count(0)

    upload = page.get_by_role("button", name="Upload")
    expect(upload).to_be_disabled()
    expect(upload).to_have_attribute(
        "title", "Choose the manufacturer's file and Choose the number type")
    path = tmp_path / "batch-17.csv"
    path.write_text(FILE)
    page.locator("input[type=file]").set_input_files(str(path))
    expect(upload).to_be_disabled()
    expect(upload).to_have_attribute("title", "Choose the number type")
    page.get_by_label("Number type").select_option(label="Road bibs 2027")
    expect(upload).to_be_enabled()

    upload.click()
    expect(page).to_have_url(re.compile(r"/imports/[0-9a-f-]{36}$"))
    import_id = page.url.rsplit("/", 1)[1]
    assert page.evaluate(f"localStorage.getItem('importCaller:{import_id}')") == "t06"
    columns = page.locator(".stage[data-stage=Columns]")
    expect(columns).to_contain_text("Auto-applied")
    verifying = page.locator(".stage[data-stage=Verifying]")
    expect(verifying).to_contain_text("SKIPPED")
    expect(verifying).to_have_attribute(
        "title", "Skipped — manufactured-number imports do not need fingerprint verification.")

    run_the_job(committed_db, e2e_settings, import_id)
    # The polling fragment sees the end and hands back to the caller's summary page.
    expect(page).to_have_url(re.compile(
        rf"/inventory/numbers/onboard/imports/{import_id}/summary$"))
    assert page.evaluate(f"localStorage.getItem('importCaller:{import_id}')") is None
    summary = page.locator(".bucket-summary")
    for label, count in [("Rows imported", "1"), ("Rows imported without a tag", "0"),
                         ("Rows already on file", "0"), ("Duplicate sequence", "2"),
                         ("Other issues", "1")]:
        expect(summary.locator("tr", has=page.get_by_role("rowheader", name=label,
                                                          exact=True))
               .locator(".count")).to_have_text(count)
    expect(page.locator("#section-other_issue")).to_contain_text(
        "sequence 'x' is not a positive whole number")
    expect(page.locator("#section-imported")).to_contain_text("012345678901")

    page.goto(UPLOAD)  # the recent imports list opens the summary
    page.get_by_role("row", name=re.compile("batch-17.csv")).get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/summary$"))


def test_a_file_without_the_barcode_column_is_refused_inline(
    page: Page, admin_email: str, tmp_path: Path, console: ConsoleWatch
) -> None:
    console.expect("status of 400")  # the browser logs the refused upload
    login(page, admin_email)
    page.goto(UPLOAD)
    path = tmp_path / "no-barcode.csv"
    path.write_text("sequence,number\r\n1,0001\r\n")
    page.locator("input[type=file]").set_input_files(str(path))
    page.get_by_label("Number type").select_option(label="Road bibs 2027")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("alert")).to_contain_text('the file has no "barcode" column')
    expect(page).to_have_url(re.compile(UPLOAD + "$"))


def test_the_about_panel_remembers_being_closed(page: Page, admin_email: str) -> None:
    login(page, admin_email)
    page.goto(UPLOAD)
    about = page.locator("details.about")
    expect(about).to_have_attribute("open", "")
    about.locator("summary").click()
    expect(about).not_to_have_attribute("open", "")
    page.reload()
    expect(page.locator("details.about")).not_to_have_attribute("open", "")
