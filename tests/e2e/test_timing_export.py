"""E11 in Chromium: the export modal locks the identifier on the first export, the locked
label's "Unlock to change" override, the AF-2 warning, and the disabled button for viewers."""

from __future__ import annotations

import csv
import io
import re

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.models import AuditEntry
from racehub.events.models import Event, TimingIdentifier
from tests.e2e.helpers import Seed, login
from tests.factories import make_participant

CONFIRM = ("I understand the timing system will use this identifier as its stable foreign key "
           "for this event.")


def reload_event(committed_db: sessionmaker[Session], seed: Seed) -> Event:
    with committed_db() as db:
        event = db.get(Event, seed.event.id)
        assert event is not None
        return event


def open_modal(page: Page, seed: Seed) -> None:
    page.goto(f"/events/{seed.event.id}")
    page.get_by_role("button", name="Export to timing system").click()
    expect(page.get_by_role("dialog", name="Export to timing system")).to_be_visible()


def test_first_export_locks_mode_then_unlock_overrides(
    page: Page, seed: Seed, committed_db: sessionmaker[Session]
) -> None:
    with committed_db() as db:
        ep = make_participant(db, db.get(Event, seed.event.id), first_name="Ada",
                              last_name="Lovelace", bib="7")
        db.commit()
    login(page, seed.admin.email)
    open_modal(page, seed)
    dialog = page.get_by_role("dialog", name="Export to timing system")
    mode = dialog.get_by_label("Identifier mode (ExternalReferenceID)")
    expect(mode).to_have_value("PERSON_ID")
    expect(dialog.get_by_text("1 participant(s) will be exported.")).to_be_visible()

    # Before the lock the mode is a dropdown; choosing one PATCHes the event.
    with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        mode.select_option("EPID")
    assert patched.value.status == 200
    expect(mode).to_have_value("EPID")
    assert reload_event(committed_db, seed).preferred_timing_identifier is TimingIdentifier.EPID

    generate = dialog.get_by_role("button", name="Generate CSV")
    expect(generate).to_be_disabled()
    dialog.get_by_label(CONFIRM).check()
    expect(generate).to_be_enabled()
    with page.expect_download() as download_info:
        generate.click()
    download = download_info.value
    assert download.suggested_filename.endswith("-EPID.csv")
    with open(download.path(), encoding="utf-8") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read())))
    assert [(r["ExternalReferenceID"], r["Number"], r["Name"]) for r in rows] == [
        (str(ep.id), "7", "Ada Lovelace")]
    locked = reload_event(committed_db, seed)
    assert locked.preferred_timing_identifier_locked_at is not None

    # After the lock: a read-only label and "Unlock to change".
    open_modal(page, seed)
    expect(mode).to_be_hidden()
    expect(dialog.get_by_text(re.compile(r"Identifier mode: EPID\s+locked"))).to_be_visible()
    dialog.get_by_role("button", name="Unlock to change").click()
    unlock = page.get_by_role("dialog", name="Change the locked identifier mode?")
    expect(unlock).to_be_visible()
    expect(unlock).to_contain_text("duplicate ExternalReferenceID rows")
    unlock.get_by_role("button", name="Keep the current mode").click()
    expect(unlock).to_be_hidden()
    assert reload_event(committed_db, seed).preferred_timing_identifier_locked_at is not None

    dialog.get_by_role("button", name="Unlock to change").click()
    unlock.get_by_label("New identifier mode").select_option("PERSON_ID")
    with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        unlock.get_by_role("button", name="Unlock and change").click()
    assert patched.value.status == 200
    expect(unlock).to_be_hidden()
    expect(mode).to_be_visible()
    expect(mode).to_have_value("PERSON_ID")
    expect(dialog.get_by_label(CONFIRM)).not_to_be_checked()
    event = reload_event(committed_db, seed)
    assert event.preferred_timing_identifier is TimingIdentifier.PERSON_ID
    assert event.preferred_timing_identifier_locked_at is None
    with committed_db() as db:
        [override] = db.scalars(select(AuditEntry).where(
            AuditEntry.action == "event.timing_identifier_override")).all()
        assert override.before["preferred_timing_identifier"] == "EPID"
        assert override.actor_user_id == seed.admin.id
        [exported] = db.scalars(select(AuditEntry).where(
            AuditEntry.action == "event.timing_export")).all()
        assert exported.after["row_count"] == 1


def test_missing_registration_ids_need_explicit_acceptance(
    page: Page, seed: Seed, committed_db: sessionmaker[Session]
) -> None:
    with committed_db() as db:
        event = db.get(Event, seed.event.id)
        event.preferred_timing_identifier = TimingIdentifier.REGISTRATION_ID
        make_participant(db, event, first_name="Has", last_name="Id", bib="1",
                         registration_id="R-1")
        missing = make_participant(db, event, first_name="No", last_name="Id", bib="2")
        db.commit()
    login(page, seed.admin.email)
    open_modal(page, seed)
    dialog = page.get_by_role("dialog", name="Export to timing system")
    warning = dialog.get_by_role("alert").filter(has_text="have no registration id")
    expect(warning).to_be_visible()
    expect(warning.get_by_role("link", name="No Id (bib 2)")).to_have_attribute(
        "href", f"/participants/{missing.id}/edit")
    generate = dialog.get_by_role("button", name="Generate CSV")
    dialog.get_by_label(CONFIRM).check()
    expect(generate).to_be_disabled()
    dialog.get_by_label(re.compile("Proceed anyway")).check()
    expect(generate).to_be_enabled()
    with page.expect_download() as download_info:
        generate.click()
    with open(download_info.value.path(), encoding="utf-8") as fh:
        ids = [r["ExternalReferenceID"] for r in csv.DictReader(fh)]
    assert ids == ["R-1", ""]
    with committed_db() as db:
        [exported] = db.scalars(select(AuditEntry).where(
            AuditEntry.action == "event.timing_export")).all()
        assert exported.after["accepted_missing_ids"] is True


def test_viewer_sees_the_export_button_disabled(page: Page, seed: Seed) -> None:
    login(page, seed.viewer.email)
    tile_button = page.locator(f'[data-event-id="{seed.event.id}"]').get_by_role(
        "button", name="Export to timing system")
    expect(tile_button).to_be_disabled()
    expect(tile_button).to_have_attribute("title", re.compile(
        r"needs the RESULTS_OFFICER, EVENT_MANAGER or TENANT_ADMIN role \(yours: VIEWER\)"))
    page.goto(f"/events/{seed.event.id}")
    button = page.get_by_role("button", name="Export to timing system")
    expect(button).to_be_disabled()
    expect(button).to_have_attribute("title", re.compile("RESULTS_OFFICER"))
    button.click(force=True)
    expect(page.get_by_role("dialog", name="Export to timing system")).to_be_hidden()
