"""Exports in Chromium: start one from the participants list with the list's filters, watch
its progress, get the notice on another page when it completes, download it, see it in
"My exports"; a viewer gets no Export button."""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.jobs.runner import JobHandle
from racehub.settings import Settings
from tests.e2e.helpers import Seed, login
from tests.exports.conftest import csv_rows, run_export_job
from tests.factories import make_participant

pytestmark = pytest.mark.e2e

WAIT_S = 20


@pytest.fixture
def field(seed: Seed, committed_db: sessionmaker[Session]) -> None:
    with committed_db() as db:
        for bib, last, team in [("12", "Lovelace", "=cmd"), ("3", "Hopper", "Navy"),
                                ("7", "Curie", ""), ("40", "Noether", ""), ("5", "Meitner", ""),
                                ("21", "Franklin", ""), ("9", "Germain", "")]:
            make_participant(db, seed.event, first_name="X", last_name=last, bib=bib, team=team)
        make_participant(db, seed.event, first_name="Not", last_name="Shown", bib="2",
                         team="Other club")
        db.commit()


def test_export_from_the_participants_list_with_progress_notice_and_download(
    page: Page, seed: Seed, field: None, committed_db: sessionmaker[Session],
    e2e_settings: Settings, tmp_path: Path
) -> None:
    login(page, seed.admin.email)
    # The list as the operator sees it: sorted by bib, searching "X" (first names).
    page.goto(f"/events/{seed.event.id}?q=X&sort=bib")
    expect(page.locator("#participant-total")).to_have_text("7")
    page.get_by_role("link", name="Export", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Export Participants — Lake Run 2026")
    expect(page.locator(".export-form")).to_contain_text("q = X")
    page.get_by_label("E-mail").uncheck()
    page.get_by_label("Date of birth").uncheck()
    page.get_by_role("button", name="Start export").click()

    expect(page).to_have_url(re.compile(r"/exports/[0-9a-f-]{36}$"))
    export_id = uuid.UUID(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Export: Participants — Lake Run 2026")
    expect(page.get_by_test_id("export-stage")).to_have_text("Queued")

    # The worker's part, in a thread of this process, held after its first page of rows.
    reached, proceed = threading.Event(), threading.Event()

    def hold_after_first_page(handle: JobHandle) -> None:
        if handle.run.done == 3:
            reached.set()
            proceed.wait(WAIT_S)

    worker = threading.Thread(target=run_export_job, args=(
        committed_db, export_id, e2e_settings.model_copy(update={"export_batch_size": 3})),
        kwargs={"hook": hold_after_first_page}, daemon=True)
    worker.start()
    try:
        assert reached.wait(WAIT_S), "the export never reached its first page"
        expect(page.get_by_test_id("export-stage")).to_have_text("Exporting")
        expect(page.locator("#export-status .rows")).to_have_text("3 / 7 rows")
        expect(page.locator("#export-status .percent")).to_have_text("43%")

        page.get_by_role("link", name="Back to the list").click()
        expect(page).to_have_url(re.compile(rf"/events/{seed.event.id}\?q=X&sort=bib$"))
    finally:
        proceed.set()
        worker.join(WAIT_S)

    notice = page.locator("#export-notices .notice")
    expect(notice).to_contain_text("Export ready: Participants — Lake Run 2026 (7 rows)")
    with page.expect_download() as download:
        notice.get_by_role("link", name="Download").click()
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    rows = csv_rows(saved.read_bytes())
    assert rows[0] == ["Bib", "Last name", "First name", "Category", "Registration ID",
                       "Team", "Status", "Gender", "City", "Region", "Country"]
    assert [r[0] for r in rows[1:]] == ["3", "5", "7", "9", "12", "21", "40"]
    assert rows[5][5] == "'=cmd"  # neutralized
    notice.get_by_role("button", name="Dismiss").click()
    expect(notice).to_have_count(0)

    page.goto(f"/exports/{export_id}")
    expect(page.get_by_test_id("export-stage")).to_have_text("Completed")
    expect(page.get_by_role("link", name=re.compile(r"^Download participants-.*\.csv$"))
           ).to_be_visible()
    page.get_by_role("link", name="My exports").first.click()
    row = page.locator(f'tr[data-export-id="{export_id}"]')
    expect(row).to_contain_text("Participants — Lake Run 2026")
    expect(row).to_contain_text("Completed")
    expect(row.get_by_role("link", name="Download")).to_be_visible()


def test_a_viewer_gets_no_export_button_and_no_exports_link(page: Page, seed: Seed) -> None:
    login(page, seed.viewer.email)
    page.goto(f"/events/{seed.event.id}")
    expect(page.locator("#participant-total")).to_have_text("0")
    expect(page.locator("[data-export-menu]")).to_have_count(0)
    expect(page.get_by_role("link", name="My exports")).to_have_count(0)


def test_a_failed_export_shows_the_reason_and_retry_starts_a_new_one(
    page: Page, seed: Seed, field: None, committed_db: sessionmaker[Session],
    e2e_settings: Settings, tmp_path: Path
) -> None:
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    page.get_by_role("link", name="Export", exact=True).click()
    page.get_by_role("button", name="Start export").click()
    expect(page).to_have_url(re.compile(r"/exports/[0-9a-f-]{36}$"))
    first_id = uuid.UUID(page.url.rsplit("/", 1)[1])
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the export folder should be")

    run_export_job(committed_db, first_id, e2e_settings.model_copy(
        update={"export_dir": blocked}))

    expect(page.get_by_test_id("export-stage")).to_have_text("Failed")
    expect(page.locator("#export-status .job-message")).to_contain_text(
        f"cannot write to the export folder {blocked}")
    expect(page.locator("#export-status [data-stage=Uploading]")).to_have_class(
        re.compile("stage-failed"))
    page.get_by_role("button", name="Retry").click()
    expect(page).not_to_have_url(re.compile(str(first_id)))
    expect(page.get_by_test_id("export-stage")).to_have_text("Queued")
