"""Publishing results in Chromium: an event manager prepares a version from the event's
Sync tab, reads its diff, approves it and sees what RunSignUp (the simulator over HTTP)
answered, row by row."""

from __future__ import annotations

import re
import threading
from functools import partial
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.crypto import Keyring, keyring_from_settings
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.jobs.runner import run_job
from racehub.settings import Settings
from racehub.sync import engine, publications, publish, runs
from racehub.sync.models import ResultPublication, SyncedRecord, SyncRun, SyncStatus
from racehub.timing.models import Result, ResultStatus
from tests.e2e.helpers import Seed, login
from tests.factories import system_ctx
from tests.sync.engine_helpers import connect, event_ref, link, simulator

pytestmark = pytest.mark.e2e

WAIT_S = 20


def _work(committed_db: sessionmaker[Session], job_id: str, body: Any, **kwargs: Any) -> None:
    """A worker's part: run the job in a thread of this process, to its end."""
    worker = threading.Thread(target=run_job, args=(None, job_id, body),
                              kwargs={"factory": committed_db, **kwargs}, daemon=True)
    worker.start()
    worker.join(WAIT_S)
    assert not worker.is_alive(), "the job never finished"


def test_a_manager_prepares_reads_the_diff_approves_and_sees_the_platforms_answer(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], e2e_settings: Settings,
) -> None:
    keyring: Keyring = keyring_from_settings(e2e_settings)
    with simulator(participants_per_event=4, with_results=False) as (sim, url):
        with committed_db() as db:
            connection = connect(db, system_ctx(seed.tenant), keyring, url)
            event_link = link(db, connection, seed.event, event_ref(sim), "Lake Run")
            pull = runs.request_link_sync(db, system_ctx(seed.tenant), connection=connection,
                                          link=event_link)
            db.commit()
            link_id = event_link.id
        _work(committed_db, str(pull.run.job_run_id),
              partial(engine.run_participant_sync, keyring=keyring), retry=PROVIDER_OUTAGES)
        with committed_db() as db:
            eps = db.scalars(select(SyncedRecord.participant_id).where(
                SyncedRecord.link_id == link_id).order_by(SyncedRecord.source_ref)).all()
            assert len(eps) == 4
            for place, ep in enumerate(eps, start=1):
                db.add(Result(tenant_id=seed.tenant.id, event_id=seed.event.id,
                              event_participant_id=ep, status=ResultStatus.FINISHED,
                              chip_ms=1_500_000 + place * 1_000,
                              gun_ms=1_504_000 + place * 1_000, overall_place=place,
                              splits={}, warning=""))
            db.commit()

        login(page, seed.admin.email)
        page.goto(f"/events/{seed.event.id}/sync")
        page.get_by_role("button", name="Prepare publication").click()
        expect(page.locator(".flash")).to_have_text("Preparing 1 results version(s)")
        with committed_db() as db:
            prepare = db.scalars(select(SyncRun).where(
                SyncRun.sync_type == "results_publish_prepare")).one()
        _work(committed_db, str(prepare.job_run_id), publications.run_prepare)
        with committed_db() as db:
            done = db.get(SyncRun, prepare.id)
            assert done is not None and done.status == SyncStatus.SUCCEEDED, done.error

        page.reload()
        version = page.locator('#publications tr[data-version="1"]')
        expect(version).to_contain_text("ready")
        expect(version).to_contain_text("+4 ~0 −0")
        version.get_by_role("link", name="v1").click()
        expect(page).to_have_url(re.compile(rf"/events/{seed.event.id}/publications/1$"))
        expect(page.locator(".diff-counts")).to_contain_text("4 added, 0 changed, 0 removed")
        expect(page.locator('tr[data-change="added"]')).to_have_count(4)
        expect(page.locator("#validation")).to_contain_text("Passes")
        page.get_by_role("button", name="Approve and publish").click()
        expect(page.locator(".flash")).to_have_text("Version 1 approved: publishing")
        expect(page.locator(".approval")).to_contain_text(seed.admin.email)

        with committed_db() as db:
            approved = db.scalars(select(ResultPublication)).one()
            job_id = str(approved.publish_job_run_id)
        _work(committed_db, job_id, partial(publish.run_publish, keyring=keyring),
              retry=PROVIDER_OUTAGES)

    # The page follows the publish job, then shows the platform's answer row by row.
    expect(page.locator(".publish-answer")).to_contain_text("4 accepted, 0 refused",
                                                            timeout=WAIT_S * 1000)
    expect(page.locator("h1 .pill")).to_have_text("published")
    expect(page.locator("td.answer-accepted")).to_have_count(4)
    expect(page.locator("td.answer-accepted").first).to_contain_text("#")
    expect(page.get_by_role("button", name="Approve and publish")).to_have_count(0)
    stored = [r for s in sim.result_sets[int(event_ref(sim).split(":")[1])]
              for r in s["results"]]
    assert sorted(r["place"] for r in stored) == [1, 2, 3, 4]
