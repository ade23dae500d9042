""""Push start list" on the event's Sync tab: a preview (counts and rows), a confirmation,
the push in the tab's history and on its run page; the live confirmation offered only to
those who may give it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.events.models import ParticipantStatus
from racehub.jobs.models import JobRun
from racehub.sync.models import SyncRun, SyncStatus, TimingPushState
from tests.core.conftest import start_browser_session
from tests.factories import make_event, make_participant, make_user
from tests.sync.engine_helpers import T0
from tests.sync.push_helpers import CT_RACE_REF, attempt, connect, copernico, timing_link


def _browse(client: TestClient, db: Session, tenant: Tenant, role: Role) -> TestClient:
    client.headers["X-CSRF-Token"] = start_browser_session(db, client,
                                                           make_user(db, tenant, role))
    db.commit()
    return client


def test_push_start_list_previews_then_pushes_and_the_run_shows_in_the_history(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    with copernico() as (sim, url):
        event = make_event(db, tenant, name="Harbour 10K", start_at=T0 + timedelta(days=30))
        for i in (1, 2):
            make_participant(db, event, first_name=f"Ada{i}", last_name="Lovelace", bib=str(i))
        link = timing_link(db, connect(db, ctx, keyring, "COPERNICO", url), event,
                           sim.race_ref())
        browser = _browse(client, db, tenant, Role.RESULTS_OFFICER)

        tab = browser.get(f"/events/{event.id}/sync")
        assert f'href="/events/{event.id}/sync/push/{link.id}"' in tab.text
        preview = browser.get(f"/events/{event.id}/sync/push/{link.id}")
        assert preview.status_code == 200
        assert "new: 2" in preview.text and preview.text.count('data-action="new"') == 2
        assert "Ada1 Lovelace" in preview.text and "Confirm and push" in preview.text
        assert sim.pushes == []  # a preview sends nothing
        fingerprint = re.search(r'name="plan_fingerprint" value="([0-9a-f]+)"', preview.text)
        assert fingerprint is not None

        pushed = browser.post(f"/events/{event.id}/sync/push/{link.id}",
                              data={"plan_fingerprint": fingerprint.group(1)},
                              follow_redirects=False)

        assert pushed.status_code == 303
        run_id = pushed.headers["location"].split("?")[0].rsplit("/", 1)[1]
        run = db.get(SyncRun, run_id)
        assert run is not None and run.sync_type == "start_list_push"
        job = db.get(JobRun, run.job_run_id)
        assert job is not None and job.params["plan_fingerprint"] == fingerprint.group(1)
        assert attempt(db, keyring, run).status == SyncStatus.SUCCEEDED
        assert len(sim.pushes[0]) == 2
        page = browser.get(f"/sync/runs/{run.id}")
        assert "Start list push" in page.text and "2 new, 0 changed" in page.text
        history = browser.get(f"/events/{event.id}/sync")
        assert f'href="/sync/runs/{run.id}"' in history.text
        assert "start list push" in history.text


def test_a_live_copernico_change_is_offered_for_confirmation_to_an_event_manager_only(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    # The page plans at the time of the request: an event started an hour ago is live.
    event = make_event(db, tenant, start_at=datetime.now(UTC) - timedelta(hours=1))
    ep = make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="1",
                          status=ParticipantStatus.WITHDRAWN)
    link = timing_link(db, connect(db, ctx, keyring, "COPERNICO", "http://127.0.0.1:9"),
                       event, "race-1:event-1")
    db.add(TimingPushState(tenant_id=tenant.id, link_id=link.id, participant_id=ep.id,
                           external_id=str(ep.person_id), content_hash="0" * 64,
                           pushed_values={"first_name": "Ada", "last_name": "Lovelace"},
                           pushed_at=T0))
    db.flush()
    url = f"/events/{event.id}/sync/push/{link.id}"

    officer = _browse(client, db, tenant, Role.RESULTS_OFFICER).get(url)
    assert 'id="live-warning"' in officer.text and 'name="confirm_live"' not in officer.text
    refused = client.post(url, data={"confirm_live": "1"})
    assert refused.status_code == 403 and "confirmLiveChanges" in refused.text
    manager = _browse(client, db, tenant, Role.EVENT_MANAGER).get(url)
    assert 'name="confirm_live"' in manager.text and "withdrawn: 1" in manager.text


def test_push_start_list_is_not_offered_to_a_viewer_nor_on_another_events_link(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant, keyring: Keyring,
) -> None:
    event, other = make_event(db, tenant), make_event(db, tenant)
    link = timing_link(db, connect(db, ctx, keyring, "CHRONOTRACK", "http://127.0.0.1:9/api"),
                       event, CT_RACE_REF)
    viewer = _browse(client, db, tenant, Role.VIEWER)
    assert "Push start list" not in viewer.get(f"/events/{event.id}/sync").text
    assert viewer.get(f"/events/{event.id}/sync/push/{link.id}").status_code == 403
    officer = _browse(client, db, tenant, Role.RESULTS_OFFICER)
    assert officer.get(f"/events/{other.id}/sync/push/{link.id}").status_code == 404
