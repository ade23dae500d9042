"""The results publications on the event's Sync tab and the page of one version, without
a browser: prepare from the tab, read the diff and the validation, approve (the warnings
ticked), see the platform's answers; what a RESULTS_OFFICER may not do is not offered."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.db.session import lend
from racehub.events.models import Person
from racehub.jobs.runner import run_job
from racehub.sync import publications
from racehub.sync.models import (
    EventLink,
    ProviderConnection,
    PublicationStatus,
    ResultPublication,
    SyncRun,
)
from tests.core.conftest import start_browser_session
from tests.factories import make_user
from tests.sync.test_publications import _publish, _results, _sync


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"participants_per_event": 10, "with_results": False}


def _browse(client: TestClient, db: Session, tenant: Tenant, role: Role) -> TestClient:
    client.headers["X-CSRF-Token"] = start_browser_session(db, client,
                                                           make_user(db, tenant, role))
    db.commit()
    return client


def test_prepare_read_the_diff_approve_and_see_the_platforms_answer(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Any,
) -> None:
    _sync(db, tenant, keyring, event_link)
    eps = _results(db, event_link, 4)
    person = db.get(Person, eps[3].person_id)
    assert person is not None
    person.gender = None
    db.flush()
    event_id = event_link.event_id
    browser = _browse(client, db, tenant, Role.EVENT_MANAGER)

    started = browser.post(f"/events/{event_id}/publications", follow_redirects=False)
    assert started.status_code == 303, started.text
    run = db.scalar(select(SyncRun).where(SyncRun.sync_type == "results_publish_prepare",
                                          SyncRun.link_id == event_link.id))
    assert run is not None and run.job_run_id is not None
    run_job(None, str(run.job_run_id), publications.run_prepare, factory=lend(db))  # type: ignore[arg-type]
    tab = browser.get(f"/events/{event_id}/sync")
    assert 'data-version="1"' in tab.text and "status-ready" in tab.text
    assert "+4 ~0 −0" in tab.text and "1 warning(s)" in tab.text

    page = browser.get(f"/events/{event_id}/publications/1")
    assert page.status_code == 200
    assert page.text.count('data-change="added"') == 4
    assert 'data-code="missing_gender"' in page.text and 'id="approve-form"' in page.text
    unticked = browser.post(f"/events/{event_id}/publications/1/approve", data={})
    assert unticked.status_code == 422 and "missing_gender" in unticked.text
    approved = browser.post(f"/events/{event_id}/publications/1/approve",
                            data={"warning": "missing_gender"}, follow_redirects=False)
    assert approved.status_code == 303, approved.text
    version = db.scalar(select(ResultPublication).where(ResultPublication.event_id == event_id))
    assert version is not None
    assert _publish(db, keyring, version).status == PublicationStatus.PUBLISHED

    done = browser.get(f"/events/{event_id}/publications/1?rows=all")
    assert "status-published" in done.text and "4 accepted, 0 refused" in done.text
    assert done.text.count("answer-accepted") == 4 and 'id="approve-form"' not in done.text

    officer = _browse(client, db, tenant, Role.RESULTS_OFFICER)
    assert "Prepare publication" not in officer.get(f"/events/{event_id}/sync").text
    assert officer.post(f"/events/{event_id}/publications/1/approve",
                        data={}).status_code == 403


def test_a_ready_version_offers_no_approve_form_to_a_results_officer(
    client: TestClient, db: Session, tenant: Tenant, keyring: Keyring, event_link: EventLink,
    sim: Any,
) -> None:
    _sync(db, tenant, keyring, event_link)
    _results(db, event_link, 2)
    ctx = TenantContext.system(tenant.id, label="test")
    connection = db.get(ProviderConnection, event_link.connection_id)
    assert connection is not None
    version = publications.prepare_version(db, ctx, link=event_link, connection=connection)
    assert version.status == PublicationStatus.READY
    officer = _browse(client, db, tenant, Role.RESULTS_OFFICER)

    page = officer.get(f"/events/{event_link.event_id}/publications/{version.version}")

    assert page.status_code == 200 and 'id="approve-form"' not in page.text
    assert "Waiting for an event manager's approval." in page.text
    assert officer.get(f"/events/{event_link.event_id}/publications/{version.version}"
                       "?rows=moved").status_code == 422
