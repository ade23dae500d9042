"""E08 in Chromium: from the event page to its results page, the result-file upload, the
C05 progress page handing back to the summary (buckets, suggestion link), and the
results page with its ranking by category, search and the E11 export button."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.models import Role
from racehub.events import service as events_service
from racehub.events.models import Gender, TimingIdentifier
from racehub.events.schemas import ParticipantCreate, PersonIn
from racehub.imports import service as imports_service
from racehub.imports.models import Import
from racehub.jobs.runner import run_job
from racehub.settings import Settings
from tests.e2e.helpers import login
from tests.factories import make_category, make_event, make_tenant, make_user


@pytest.fixture
def seeded(committed_db: sessionmaker[Session]) -> dict[str, str]:
    with committed_db() as db:
        tenant = make_tenant(db, name="Lakeside Timing")
        make_user(db, tenant, Role.RESULTS_OFFICER, email="results@lakeside.test")
        event = make_event(db, tenant, name="Lakeside Half",
                           preferred_timing_identifier=TimingIdentifier.REGISTRATION_ID)
        half = make_category(db, event, "Half")
        ctx = TenantContext.system(tenant.id, label="test")
        ids = {"event": str(event.id)}
        for first, last, gender, bib, reg in [("Ada", "Lovelace", Gender.FEMALE, "1", "R-1"),
                                              ("Alan", "Turing", Gender.MALE, "2", "R-2"),
                                              ("Grace", "Hopper", Gender.FEMALE, "3", "R-3")]:
            ep = events_service.create_participant(
                db, ctx, event_id=event.id, data=ParticipantCreate(
                    person=PersonIn(first_name=first, last_name=last, gender=gender),
                    bib=bib, registration_id=reg, category_id=half.id))
            ids[first.lower()] = str(ep.id)
        db.commit()
    return ids


def run_the_job(committed_db: sessionmaker[Session], settings: Settings, import_id: str) -> None:
    with committed_db() as db:
        job_run_id = db.get_one(Import, uuid.UUID(import_id)).job_run_id

    def body(handle, session, ctx: TenantContext, **params):  # type: ignore[no-untyped-def]
        imports_service.run_import(handle, session, ctx, import_id=params["import_id"],
                                   batch_size=2, data_dir=settings.data_dir)

    run_job(None, str(job_run_id), body, factory=committed_db)


def test_upload_summary_and_results_page(page: Page, seeded: dict[str, str], tmp_path: Path,
                                         committed_db: sessionmaker[Session],
                                         e2e_settings: Settings) -> None:
    login(page, "results@lakeside.test")
    page.goto(f"/events/{seeded['event']}")
    page.get_by_role("link", name="Results", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/events/{seeded['event']}/results$"))
    expect(page.get_by_role("button", name="Export to timing system")).to_be_enabled()
    page.get_by_role("link", name="Import results").click()

    expect(page.locator(".identifier-mode")).to_have_text("REGISTRATION_ID")
    upload = page.get_by_role("button", name="Upload")
    expect(upload).to_be_disabled()
    path = tmp_path / "lakeside-results.csv"
    path.write_bytes(("\ufeffBib;Chip Time;External Reference ID;Status\r\n"
                      "1;1:35:00;R-1;finished\r\n"
                      "2;1:31:10.5;R-2;Finished\r\n"
                      "3;1:50:00;R-99;finished\r\n").encode())
    page.locator("input[type=file]").set_input_files(str(path))
    expect(upload).to_be_enabled()
    upload.click()

    expect(page).to_have_url(re.compile(r"/imports/[0-9a-f-]{36}$"))
    import_id = page.url.rsplit("/", 1)[1]
    assert page.evaluate(f"localStorage.getItem('importCaller:{import_id}')") == "e08"
    run_the_job(committed_db, e2e_settings, import_id)

    expect(page).to_have_url(re.compile(rf"/results/imports/{import_id}/summary$"))
    summary = page.locator(".bucket-summary")
    for key, count in [("imported", "2"), ("unmatched", "1"), ("bib_mismatch", "0")]:
        expect(summary.locator(f"tr[data-bucket={key}] .count")).to_have_text(count)
    unmatched = page.locator("#section-unmatched")
    expect(unmatched).to_contain_text("R-99")
    expect(unmatched).to_contain_text("Grace Hopper")
    expect(unmatched.get_by_role("link", name="Open")).to_have_attribute(
        "href", f"/participants/{seeded['grace']}/edit")
    expect(page.locator("#reconciliation")).to_contain_text("Without a result: 1")

    page.get_by_role("link", name="Results", exact=True).click()
    rows = page.locator("table.results tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".name")).to_have_text("Alan Turing")
    expect(rows.nth(0).locator(".chip")).to_have_text("1:31:10.500")
    expect(rows.nth(0).locator(".place")).to_have_text("1")
    page.get_by_label("Category").select_option(label="Half")
    expect(page).to_have_url(re.compile(r"category="))
    expect(rows.nth(1).locator(".name")).to_have_text("Ada Lovelace")
    page.get_by_label("Search").fill("lovelace")
    expect(rows).to_have_count(1)
    expect(rows.nth(0).locator(".place")).to_have_text("2")
