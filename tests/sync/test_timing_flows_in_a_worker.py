"""The timing round trip run by a real ``racehub worker`` process, to the end, with the jobs
that defer jobs from inside a job: a participant sync that changed an event in race week
pushes its start list on (the push job deferred by the sync job), the race is run on the
simulator, a results pull fills the results, and a prepared publication that auto-approval
lets through is published (the publish job deferred by the prepare job).

The RunSignUp and Copernico simulators run over HTTP in this process; everything the test
asks for is committed, and the worker does the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from racehub.core.context import TenantContext
from racehub.core.crypto import keyring_from_settings
from racehub.events.models import TimingIdentifier
from racehub.jobs.models import JobRun, JobStatus
from racehub.providers.copernico import simulator as cop_sim
from racehub.settings import Settings
from racehub.sync import publications, results_pull, runs
from racehub.sync.models import (
    PublicationStatus,
    ResultPublication,
    SyncRun,
    SyncStatus,
    SyncTrigger,
    SyncType,
    TimingPushState,
)
from racehub.timing.models import Result
from tests.factories import make_event, make_tenant
from tests.sync.engine_helpers import connect, event_ref, link, provider_event_id, simulator
from tests.sync.push_helpers import connect as connect_timing
from tests.sync.push_helpers import copernico
from tests.workers import Factory, Workers, alive, wait_for

pytestmark = pytest.mark.worker

RUNNERS = 12


def _run_of(factory: Factory, sync_type: SyncType) -> SyncRun | None:
    with factory() as db:
        return db.scalars(select(SyncRun).where(SyncRun.sync_type == sync_type.value)
                          .order_by(SyncRun.created_at.desc())).first()


def _ended(factory: Factory, sync_type: SyncType) -> SyncRun | None:
    run = _run_of(factory, sync_type)
    return run if run is not None and not run.status.is_active else None


def test_push_pull_and_an_auto_approved_publish_run_in_a_worker_to_the_end(
    committed_db: Factory, workers: Workers, database_url: str,
) -> None:
    keyring = keyring_from_settings(Settings(database_url=database_url))
    with simulator(participants_per_event=RUNNERS, with_results=False) as (rsu, rsu_url), \
            copernico(registrations_per_event=2, finishers_per_event=0) as (cop, cop_url):
        with committed_db() as db:
            tenant = make_tenant(db)
            ctx = TenantContext.system(tenant.id, label="test")
            # In race week by the real clock: a participant sync that changes it pushes on.
            event = make_event(db, tenant, name="Harbour 10K",
                               start_at=datetime.now(UTC) + timedelta(days=3),
                               preferred_timing_identifier=TimingIdentifier.EPID)
            registration = connect(db, ctx, keyring, rsu_url)
            feed = link(db, registration, event, event_ref(rsu), "Harbour 10K (RunSignUp)")
            # Auto-approve versions of fewer than 100 changed rows (no error, no warning).
            feed.sync_settings = {publications.AUTO_APPROVE_SETTING: 100}
            timing = connect_timing(db, ctx, keyring, "COPERNICO", cop_url)
            timing.settings = {**timing.settings,
                               "results_base_url": cop_url + cop_sim.RESULTS_PATH,
                               "preset_owner": cop.preset_owner, "preset": cop_sim.DEMO_PRESET}
            race = link(db, timing, event, cop.race_ref(), "Valencia 10K")
            for row in (feed, race):
                row.auto_sync = False  # only what the test asks for runs
            [sync] = runs.request_participant_sync(db, ctx, connection_id=registration.id)
            db.commit()
            event_id, race_link_id = event.id, race.id
            race_id, cop_event_id = cop.race_ref().split(":")

        process = workers.start("worker-1")
        check = alive(workers, "worker-1", process)

        # 1. The sync, then the push its job deferred, both to the end.
        synced = wait_for(lambda: _ended(committed_db, SyncType.PARTICIPANTS),
                          "the participant sync to end", check=check)
        assert synced.id == sync.run.id and synced.status == SyncStatus.SUCCEEDED, synced.error
        runners = synced.created  # what RunSignUp lists as registered (some rows are not)
        assert runners > 0
        push = wait_for(lambda: _ended(committed_db, SyncType.START_LIST_PUSH),
                        "the start list push the sync asked for to end", check=check)
        assert push.status == SyncStatus.SUCCEEDED, push.error
        assert (push.trigger, push.link_id, push.created) == (
            SyncTrigger.AFTER_SYNC.value, race_link_id, runners)
        assert len(cop.pushed[race_id]) == runners
        with committed_db() as db:
            assert db.scalar(select(func.count()).select_from(TimingPushState)) == runners

        # 2. The race is run on the timing system; a results pull fills the results.
        ran = cop.finish(race_id, cop_event_id)
        with committed_db() as db:
            [pull] = results_pull.request_results_pull(db, ctx, connection_id=timing.id,
                                                       event_id=event_id)
            db.commit()
        pulled = wait_for(lambda: _ended(committed_db, SyncType.RESULTS_PULL),
                          "the results pull to end", check=check)
        assert pulled.id == pull.run.id and pulled.status == SyncStatus.SUCCEEDED, pulled.error
        with committed_db() as db:
            stored = db.scalars(select(Result).where(Result.event_id == event_id)).all()
        assert len(stored) == sum(ran.values()) == runners  # Copernico sends no-shows too

        # 3. Prepared, auto-approved inside the prepare job, published by the job it deferred.
        with committed_db() as db:
            [prepare] = publications.request_event_prepare(db, ctx, event_id=event_id)
            db.commit()

        def published() -> ResultPublication | None:
            with committed_db() as db:
                version = db.scalars(select(ResultPublication)).first()
                done = (PublicationStatus.PUBLISHED, PublicationStatus.FAILED,
                        PublicationStatus.INVALID, PublicationStatus.READY)
                return version if version is not None and version.status in done else None

        version = wait_for(published, "the version to be published", check=check)
        assert version.status == PublicationStatus.PUBLISHED, (
            version.status, version.error, version.validation)
        assert version.approved_by_label and "auto-approve" in version.approved_by_label
        assert version.sync_run_id == prepare.run.id
        assert version.accepted == version.rows_total == runners and version.refused == 0
        stored_rows = [r for s in rsu.result_sets[provider_event_id(rsu)] for r in s["results"]]
        assert len(stored_rows) == runners

    with committed_db() as db:
        # The schedule's daily discovery of the new connection may run beside: not ours.
        jobs = [j for j in db.scalars(select(JobRun).order_by(JobRun.created_at))
                if j.requested_by_label != "schedule"]
    assert [(j.kind, j.requested_by_label) for j in jobs] == [
        (runs.SYNC_PARTICIPANTS_KIND, "test"),
        # Deferred by the sync's job, and the publish by the prepare's job (auto-approve).
        ("sync.start_list_push", f"test (job {runs.SYNC_PARTICIPANTS_KIND})"),
        (runs.SYNC_RESULTS_PULL_KIND, "test"),
        (runs.RESULTS_PUBLISH_PREPARE_KIND, "test"),
        (publications.PUBLISH_KIND, "auto-approve (fewer than 100 changed rows)")]
    assert all(j.status == JobStatus.COMPLETED for j in jobs), [
        (j.kind, j.status, j.error) for j in jobs]
    assert str(jobs[-1].id) == str(version.publish_job_run_id)
