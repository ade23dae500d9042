"""The event's Sync tab in Chromium: an event manager starts a sync, watches it read,
reviews its preview and applies it, sees its changes and the run in the history, and
resolves a conflict; a viewer reads the same tab without the buttons."""

from __future__ import annotations

import re
import threading
from functools import partial

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.crypto import Keyring, keyring_from_settings
from racehub.events.models import EventParticipant
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.jobs.runner import run_job
from racehub.settings import Settings
from racehub.sync import engine
from racehub.sync.models import SyncConflict, SyncRun
from tests.e2e.helpers import Seed, login
from tests.factories import system_ctx
from tests.sync.engine_helpers import connect, event_ref, link, simulator

pytestmark = pytest.mark.e2e

WAIT_S = 20


def test_a_manager_syncs_an_event_watches_it_and_resolves_a_conflict(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], e2e_settings: Settings,
) -> None:
    keyring = keyring_from_settings(e2e_settings)
    with simulator(participants_per_event=3) as (sim, url):
        with committed_db() as db:
            connection = connect(db, system_ctx(seed.tenant), keyring, url)
            link(db, connection, seed.event, event_ref(sim), "Lake Run (RunSignUp)")
            db.commit()
        login(page, seed.admin.email)
        page.goto(f"/events/{seed.event.id}")
        page.get_by_role("link", name="Sync", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("sync")
        expect(page.locator("#sync-status")).to_contain_text("Lake Run (RunSignUp)")
        expect(page.locator("#sync-status")).to_contain_text("idle")

        page.get_by_role("button", name="Sync now").click()
        expect(page.locator(".flash")).to_have_text("1 sync run(s) started")
        expect(page.locator("#sync-status .pill")).to_have_text("queued")

        # The worker's part, in a thread of this process; the page polls, then reloads.
        with committed_db() as db:
            run = db.scalars(select(SyncRun)).one()
            job_id, run_id = str(run.job_run_id), run.id
        _work(committed_db, keyring, job_id)

    # Sync now asks for a preview: the read waits for the manager, who applies it.
    expect(page.locator("#sync-status")).to_contain_text("review and apply",
                                                         timeout=WAIT_S * 1000)
    page.get_by_role("link", name="review and apply").click()
    expect(page).to_have_url(re.compile(rf"/sync/runs/{run_id}#review$"))
    expect(page.locator(".preview-counts")).to_contain_text("created: 3")
    expect(page.locator('#sync-preview tr[data-action="created"]')).to_have_count(3)
    page.get_by_role("button", name="Apply all").click()
    expect(page.locator(".flash")).to_have_text("Applying all of it")
    with committed_db() as db:
        applying = db.get(SyncRun, run_id)
        assert applying is not None
        _work(committed_db, keyring, str(applying.job_run_id))
    # The run's page follows its job and shows the changes once it is done.
    expect(page.locator("dl.facts")).to_contain_text("3 read: 3 created",
                                                     timeout=WAIT_S * 1000)
    expect(page.locator('#sync-changes tr[data-action="created"]')).to_have_count(3)
    page.get_by_role("link", name=re.compile("sync$")).click()
    history = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(history).to_contain_text("succeeded")
    expect(page.locator("#sync-status")).to_contain_text("idle")

    with committed_db() as db:
        ep = db.scalars(select(EventParticipant).where(
            EventParticipant.event_id == seed.event.id)).first()
        assert ep is not None
        db.add(SyncConflict(tenant_id=seed.tenant.id, event_id=seed.event.id,
                            participant_id=ep.id, field="team", local_value="Harriers",
                            provider_value="Harriers B"))
        db.commit()
    page.reload()
    conflict = page.locator("#conflicts tr[data-conflict-id]")
    expect(conflict).to_contain_text("Harriers B")
    conflict.get_by_role("button", name="Take theirs").click()
    expect(page.locator(".flash")).to_have_text("team: the provider's value taken")
    expect(page.locator("#conflicts")).to_contain_text("No open conflict.")


def _work(committed_db: sessionmaker[Session], keyring: Keyring, job_id: str) -> None:
    """A worker's part: run the sync job in a thread of this process, to its end."""
    body = partial(engine.run_participant_sync, keyring=keyring)
    worker = threading.Thread(target=run_job, args=(None, job_id, body),
                              kwargs={"factory": committed_db, "retry": PROVIDER_OUTAGES},
                              daemon=True)
    worker.start()
    worker.join(WAIT_S)
    assert not worker.is_alive(), "the sync job never finished"


def test_a_viewer_reads_the_tab_without_its_buttons(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], e2e_settings: Settings,
) -> None:
    with committed_db() as db:
        connection = connect(db, system_ctx(seed.tenant), keyring_from_settings(e2e_settings),
                             "http://127.0.0.1:9/Rest")  # never called
        link(db, connection, seed.event, "1:2", "Lake Run (RunSignUp)")
        db.commit()
    login(page, seed.viewer.email)
    page.goto(f"/events/{seed.event.id}/sync")
    expect(page.locator("#sync-status")).to_contain_text("Lake Run (RunSignUp)")
    expect(page.get_by_role("button", name="Sync now")).to_have_count(0)
    expect(page.locator("#conflicts")).to_contain_text("No open conflict.")
