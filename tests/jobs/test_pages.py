"""The jobs list page (/jobs): the runs a role may read, filtered by kind, state, event and
who asked, keyset-paged, each linking to its page; and the job page's links back to what
the run belongs to."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.events.models import Category, Event
from racehub.events.service import ASSIGN_BIBS_KIND
from racehub.jobs.models import JobRun, JobStatus
from racehub.sync.discovery import DISCOVER_EVENTS_KIND
from racehub.sync.models import ProviderConnection
from tests.factories import auth, make_category, make_event, make_tenant, system_ctx
from tests.jobs.helpers import make_run
from tests.sync.conftest import make_connection

BASE = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def connection(app, db: Session, tenant: Tenant) -> ProviderConnection:  # type: ignore[no-untyped-def]
    return make_connection(db, system_ctx(tenant), app.state.keyring, name="RSU Lyon")


def _listed(html: str) -> list[str]:
    return re.findall(r'data-job-id="([0-9a-f-]+)"', html)


def _bibs_run(db: Session, tenant: Tenant, event: Event, category: Category, minute: int,
              **fields: Any) -> JobRun:
    return make_run(db, tenant, kind=ASSIGN_BIBS_KIND, created_at=BASE + timedelta(minutes=minute),
                    params={"event_id": str(event.id), "category_id": str(category.id),
                            "first_bib": 1},
                    subject_type="category", subject_id=category.id, **fields)


def test_jobs_page_lists_the_tenants_runs_newest_first_with_links(
    client: TestClient, db: Session, tenant: Tenant, event: Event, category: Category
) -> None:
    older = _bibs_run(db, tenant, event, category, 1)
    newer = _bibs_run(db, tenant, event, category, 2, status=JobStatus.COMPLETED)
    _bibs_run(db, make_tenant(db), make_event(db, make_tenant(db)), category, 3)

    response = client.get("/jobs", headers=auth(db, tenant, Role.VIEWER))

    assert response.status_code == 200, response.text
    assert _listed(response.text) == [str(newer.id), str(older.id)]
    assert f'href="/jobs/{newer.id}"' in response.text
    assert 'href="/jobs"' in response.text  # the menu entry


def test_jobs_page_filters_by_kind_state_event_and_who(
    client: TestClient, db: Session, tenant: Tenant, event: Event, category: Category,
    connection: ProviderConnection,
) -> None:
    other_event = make_event(db, tenant, name="Other race")
    other_category = make_category(db, other_event, "10K")
    mine = _bibs_run(db, tenant, event, category, 1, requested_by_label="ada@example.test")
    elsewhere = _bibs_run(db, tenant, other_event, other_category, 2,
                          status=JobStatus.FAILED)
    discovery = make_run(db, tenant, kind=DISCOVER_EVENTS_KIND, created_at=BASE,
                         params={"connection_id": str(connection.id)},
                         subject_type="provider_connection", subject_id=connection.id)
    headers = auth(db, tenant, Role.TENANT_ADMIN)

    def listed(**params: str) -> list[str]:
        response = client.get("/jobs", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return _listed(response.text)

    assert listed() == [str(elsewhere.id), str(mine.id), str(discovery.id)]
    assert listed(kind=DISCOVER_EVENTS_KIND) == [str(discovery.id)]
    assert listed(state="failed") == [str(elsewhere.id)]
    assert listed(event=str(event.id)) == [str(mine.id)]
    assert listed(who="ADA@example.test") == [str(mine.id)]
    assert listed(kind=ASSIGN_BIBS_KIND, state="queued", event=str(event.id)) == [str(mine.id)]


def test_jobs_page_refuses_a_bad_filter_naming_it_and_another_tenants_event(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    headers = auth(db, tenant, Role.TENANT_ADMIN)
    assert "state must be one of" in client.get("/jobs", params={"state": "nope"},
                                                headers=headers).text
    assert "kind must be one of" in client.get("/jobs", params={"kind": "nope"},
                                               headers=headers).text
    foreign = make_event(db, make_tenant(db))
    assert client.get("/jobs", params={"event": str(foreign.id)},
                      headers=headers).status_code == 404


def test_jobs_page_pages_by_keyset(
    client: TestClient, db: Session, tenant: Tenant, event: Event, category: Category
) -> None:
    runs = [_bibs_run(db, tenant, event, category, i) for i in range(53)]
    headers = auth(db, tenant, Role.VIEWER)

    first = client.get("/jobs", params={"kind": ASSIGN_BIBS_KIND}, headers=headers)
    (next_url,) = re.findall(r'href="(/jobs\?[^"]*cursor=[^"]+)"', first.text)
    second = client.get(next_url.replace("&amp;", "&"), headers=headers)

    newest_first = [str(r.id) for r in reversed(runs)]
    assert _listed(first.text) == newest_first[:50]
    assert _listed(second.text) == newest_first[50:]
    assert "kind=" in next_url  # the filters stay on the next page
    assert 'class="next"' not in second.text


def test_jobs_page_shows_each_role_only_the_kinds_it_may_read(
    client: TestClient, db: Session, tenant: Tenant, event: Event, category: Category,
    connection: ProviderConnection,
) -> None:
    bibs = _bibs_run(db, tenant, event, category, 1)
    discovery = make_run(db, tenant, kind=DISCOVER_EVENTS_KIND, created_at=BASE,
                         params={"connection_id": str(connection.id)},
                         subject_type="provider_connection", subject_id=connection.id)

    # A discovery is read with the connections (sync:connection:read): not a viewer's.
    viewer = client.get("/jobs", headers=auth(db, tenant, Role.VIEWER)).text
    manager = client.get("/jobs", headers=auth(db, tenant, Role.EVENT_MANAGER)).text

    assert _listed(viewer) == [str(bibs.id)]
    assert _listed(manager) == [str(bibs.id), str(discovery.id)]
    assert "Discover provider events" not in viewer  # nor offered as a filter


def test_job_page_links_back_to_what_the_run_belongs_to(
    client: TestClient, db: Session, tenant: Tenant, event: Event, category: Category,
    connection: ProviderConnection,
) -> None:
    bibs = _bibs_run(db, tenant, event, category, 1)
    discovery = make_run(db, tenant, kind=DISCOVER_EVENTS_KIND, created_at=BASE,
                         params={"connection_id": str(connection.id)},
                         subject_type="provider_connection", subject_id=connection.id)
    headers = auth(db, tenant, Role.TENANT_ADMIN)

    bibs_page = client.get(f"/jobs/{bibs.id}", headers=headers).text
    discovery_page = client.get(f"/jobs/{discovery.id}", headers=headers).text

    assert f'<a href="/events/{event.id}">{event.name}</a>' in bibs_page
    assert f'<a href="/connections/{connection.id}/sync">{connection.name}</a>' \
        in discovery_page
    assert 'href="/jobs"' in bibs_page


def test_job_page_of_a_run_whose_event_is_gone_still_shows(
    client: TestClient, db: Session, tenant: Tenant, category: Category
) -> None:
    run = make_run(db, tenant, kind=ASSIGN_BIBS_KIND, params={"event_id": "not-an-id"})
    response = client.get(f"/jobs/{run.id}", headers=auth(db, tenant, Role.TENANT_ADMIN))
    assert response.status_code == 200
    assert 'aria-label="Belongs to"' not in response.text
