"""The timing round trip in Chromium, against the ChronoTrack and Copernico simulators over
HTTP: an event manager links a timing race to an event (ChronoTrack: picked from the races
a discovery found, on the connection's Provider events page; Copernico: typed by its id),
pushes the start list from the event's Sync tab (preview, then confirm), the race is run on
the timing system (the simulator's finish control, as the demo does it), the manager pulls
the results, and the event's results page fills with them."""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from functools import partial
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.crypto import Keyring, keyring_from_settings
from racehub.events import service as events_service
from racehub.events.models import Event, Gender, TimingIdentifier
from racehub.events.schemas import ParticipantCreate, PersonIn
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.jobs.runner import run_job
from racehub.providers.chronotrack import simulator as ct_sim
from racehub.providers.copernico import simulator as cop_sim
from racehub.providers.simulator import serve_in_thread
from racehub.settings import Settings
from racehub.sync import discovery, results_pull, service, timing_push
from racehub.sync.models import SyncRun, SyncStatus
from racehub.sync.schemas import ConnectionCreate
from racehub.timing.models import Result
from tests.e2e.helpers import Seed, login
from tests.factories import system_ctx

pytestmark = pytest.mark.e2e

WAIT_S = 20
RUNNERS = 12


def _work(committed_db: sessionmaker[Session], job_id: str, body: Any) -> None:
    """A worker's part: run the job in a thread of this process, to its end."""
    worker = threading.Thread(target=run_job, args=(None, job_id, body),
                              kwargs={"factory": committed_db, "retry": PROVIDER_OUTAGES},
                              daemon=True)
    worker.start()
    worker.join(WAIT_S)
    assert not worker.is_alive(), "the job never finished"


def _runners(committed_db: sessionmaker[Session], seed: Seed) -> None:
    """The event's start list: RUNNERS participants with bibs, under EPID ids."""
    with committed_db() as db:
        db.execute(update(Event).where(Event.id == seed.event.id).values(
            preferred_timing_identifier=TimingIdentifier.EPID))
        ctx = system_ctx(seed.tenant)
        for n in range(1, RUNNERS + 1):
            events_service.create_participant(
                db, ctx, event_id=seed.event.id, data=ParticipantCreate(
                    person=PersonIn(first_name=f"Runner{n:02d}", last_name="Lac",
                                    gender=Gender.FEMALE if n % 2 else Gender.MALE),
                    bib=str(n)))
        db.commit()


def _connect(committed_db: sessionmaker[Session], seed: Seed, keyring: Keyring, provider: str,
             base_url: str, credentials: dict[str, str], **settings: Any) -> str:
    with committed_db() as db:
        platform = dataclasses.replace(system_ctx(seed.tenant), is_platform_admin=True)
        connection = service.create_connection(
            db, platform, keyring=keyring, data=ConnectionCreate(
                provider=provider, name=f"{provider.title()} (simulator)", base_url=base_url,
                credentials=dict(credentials), settings=settings))
        db.flush()
        if provider == "CHRONOTRACK":
            discovery.discover_events(db, system_ctx(seed.tenant), connection_id=connection.id,
                                      keyring=keyring)
        db.commit()
        return str(connection.id)


def _push_pull_and_see_the_results(page: Page, seed: Seed, committed_db: sessionmaker[Session],
                                   keyring: Keyring, finish_url: str, *,
                                   no_show_rows: bool) -> None:
    """From the event's Sync tab: push (preview, confirm), run the race, pull, read."""
    page.goto(f"/events/{seed.event.id}")
    page.get_by_role("link", name="Sync", exact=True).click()
    page.get_by_role("link", name="Push start list").click()
    expect(page.locator(".push-counts")).to_contain_text(f"new: {RUNNERS}")
    expect(page.locator('table.push-rows tr[data-action="new"]')).to_have_count(RUNNERS)
    page.get_by_role("button", name="Confirm and push").click()
    expect(page.locator(".flash")).to_have_text("Start list push started")
    run_id = re.search(r"/sync/runs/([0-9a-f-]{36})", page.url)
    assert run_id is not None
    with committed_db() as db:
        push = db.get_one(SyncRun, uuid.UUID(run_id.group(1)))
        job_id = str(push.job_run_id)
    _work(committed_db, job_id, partial(timing_push.run_start_list_push, keyring=keyring))
    expect(page.locator("dl.facts")).to_contain_text(f"{RUNNERS} new", timeout=WAIT_S * 1000)

    # The race is run on the timing system: the athletes racehub pushed cross the line.
    ran = httpx.post(finish_url, timeout=10).json()
    assert sum(ran.values()) == RUNNERS, ran
    # ChronoTrack sends no row for a no-show, Copernico one with status dns.
    with_result = ran["finished"] + ran["dnf"] + (ran["dns"] if no_show_rows else 0)

    page.goto(f"/events/{seed.event.id}/sync")
    page.get_by_role("button", name="Pull results").click()
    expect(page.locator(".flash")).to_have_text("Results pull started")
    with committed_db() as db:
        pull = db.scalars(select(SyncRun).where(SyncRun.sync_type == "results_pull")).one()
        pull_id, job_id = pull.id, str(pull.job_run_id)
    _work(committed_db, job_id, partial(results_pull.run_results_pull, keyring=keyring))
    with committed_db() as db:
        done = db.get_one(SyncRun, pull_id)
        assert done.status == SyncStatus.SUCCEEDED, done.error
        stored = db.scalars(select(Result).where(Result.event_id == seed.event.id)).all()
        assert len(stored) == with_result
    page.reload()
    expect(page.locator(f'tr[data-run-id="{pull_id}"]')).to_contain_text("succeeded")

    page.goto(f"/events/{seed.event.id}/results")
    rows = page.locator("table.results tbody tr[data-result-id]")
    expect(rows).to_have_count(with_result)
    expect(rows.nth(0).locator(".name")).to_contain_text("Runner")
    expect(page.locator('tr[data-status="DNF"]')).to_have_count(ran["dnf"])
    # The timing system's places, over its whole race (athletes it holds that racehub did
    # not send included), in order.
    finishers = page.locator('table.results tr[data-status="finished"]')
    expect(finishers).to_have_count(ran["finished"])
    # ChronoTrack gives chip and gun times, Copernico its finish (gun) time.
    expect(finishers.first.locator(".gun")).to_have_text(re.compile(r"^\d+:\d\d:\d\d"))
    places = [int(p) for p in finishers.locator(".place").all_inner_texts()]
    assert places == sorted(places) and len(set(places)) == len(places) and places[0] >= 1


def test_a_chronotrack_race_picked_from_discovery_is_pushed_run_and_pulled(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], e2e_settings: Settings,
) -> None:
    keyring = keyring_from_settings(e2e_settings)
    sim = ct_sim.ChronoTrackSimulator(events=1, races_per_event=2, entries_per_race=3,
                                      results_per_race=2)
    race_id = min(sim.races)
    ref = f"{sim.event_of_race[race_id]}:{race_id}"
    _runners(committed_db, seed)
    with serve_in_thread(ct_sim.make_app(simulator=sim)) as url:
        connection_id = _connect(committed_db, seed, keyring, "CHRONOTRACK",
                                 url + ct_sim.BASE_PATH, ct_sim.DEMO_CREDENTIALS)
        login(page, seed.admin.email)
        page.goto(f"/connections/{connection_id}/links")
        race = page.locator(f'#candidates tr[data-ref="{ref}"]')
        expect(race).to_contain_text("5K")
        expect(race).to_contain_text("not linked")
        race.get_by_label("Event to feed").select_option(value=str(seed.event.id))
        race.get_by_role("button", name="Link").click()
        expect(page.locator(".flash")).to_contain_text(
            f"Lake Run 2026's start list now goes to {ref}")
        expect(page.locator(f'#candidates tr[data-ref="{ref}"]')).to_contain_text(
            "Lake Run 2026")

        _push_pull_and_see_the_results(page, seed, committed_db, keyring,
                                       f"{url}/_sim/races/{race_id}/finish",
                                       no_show_rows=False)
        # What racehub sent is what ChronoTrack holds: each entry under its EP's id.
        uploaded = [e for e in sim.entries[race_id] if e["entry_external_id"]]
        assert len(uploaded) == RUNNERS


def test_a_copernico_race_typed_by_id_is_pushed_run_and_pulled(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], e2e_settings: Settings,
) -> None:
    keyring = keyring_from_settings(e2e_settings)
    sim = cop_sim.CopernicoSimulator(races=1, registrations_per_event=4, finishers_per_event=2)
    ref = sim.race_ref()
    race_id, event_id = ref.split(":")
    _runners(committed_db, seed)
    with serve_in_thread(cop_sim.make_app(simulator=sim)) as url:
        connection_id = _connect(
            committed_db, seed, keyring, "COPERNICO", url, cop_sim.DEMO_CREDENTIALS,
            results_base_url=url + cop_sim.RESULTS_PATH, preset_owner=sim.preset_owner,
            preset=cop_sim.DEMO_PRESET)
        login(page, seed.admin.email)
        page.goto(f"/connections/{connection_id}/links")
        expect(page.locator("#discovery")).to_contain_text("link them by id below")
        form = page.locator("#link-form")
        form.get_by_label("Provider event id").fill(ref)
        form.get_by_label("Name (optional)").fill("Valencia 10K")
        form.get_by_label("Feeds").select_option(value=str(seed.event.id))
        form.get_by_role("button", name="Link a provider event").click()
        expect(page.locator(".flash")).to_contain_text(
            f"Lake Run 2026's start list now goes to {ref}")

        _push_pull_and_see_the_results(page, seed, committed_db, keyring,
                                       f"{url}/_sim/races/{race_id}/finish?event={event_id}",
                                       no_show_rows=True)
        assert len(sim.pushed[race_id]) == RUNNERS
