"""The Monitoring pages as HTML: the summary table, the chart's bars, the drill-down; the
menu entry; another tenant's connection is a 404 and its rows never show."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.sync.models import SyncStatus
from tests.core.conftest import start_browser_session
from tests.factories import make_event, make_tenant, make_user
from tests.monitoring.conftest import connection, link, run

H = timedelta(hours=1)


def _browser(client: TestClient, db: Session, tenant: Tenant,
             role: Role = Role.VIEWER, *, platform_admin: bool = False) -> TestClient:
    start_browser_session(db, client, make_user(db, tenant, role,
                                                platform_admin=platform_admin))
    return client


def test_the_monitoring_page_shows_each_connection_and_the_runs_per_hour(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    now = datetime.now(UTC)
    conn = connection(db, tenant, "Main RunSignUp")
    feed = link(db, conn, make_event(db, tenant))
    run(db, feed, SyncStatus.SUCCEEDED, ago=2 * H, now=now)
    run(db, feed, SyncStatus.FAILED, ago=3 * H, now=now)
    other = make_tenant(db)
    run(db, link(db, connection(db, other, "Hidden conn"), make_event(db, other)),
        SyncStatus.FAILED, ago=H, now=now)
    browser = _browser(client, db, tenant)
    db.commit()

    page = browser.get("/monitoring")

    assert page.status_code == 200, page.text
    assert 'href="/monitoring"' in page.text  # the menu entry
    row = re.search(rf'<tr data-connection-id="{conn.id}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert f'href="/monitoring/connections/{conn.id}"' in row.group(1)
    assert "50.0%" in row.group(1)
    assert 'id="runs-per-hour"' in page.text
    assert page.text.count('<g class="bar"') == 48
    # The older hour's bar first.
    assert re.findall(r'data-outcome="(\w+)" data-count="(\d+)"', page.text) == [
        ("failed", "1"), ("succeeded", "1")]
    assert "Hidden conn" not in page.text
    assert "Every tenant" not in page.text  # not a platform admin


def test_the_connection_drill_down_lists_its_links_and_404s_another_tenants(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    now = datetime.now(UTC)
    conn = connection(db, tenant, "Main RunSignUp")
    event = make_event(db, tenant, name="Harbour Half")
    feed = link(db, conn, event, "r-1", provider_event_name="Harbour Half (RSU)")
    run(db, feed, SyncStatus.FAILED, ago=H, now=now)
    run(db, feed, SyncStatus.RUNNING, ago=H / 6, now=now)
    other = make_tenant(db)
    foreign = connection(db, other)
    browser = _browser(client, db, tenant)
    db.commit()

    page = browser.get(f"/monitoring/connections/{conn.id}")

    assert page.status_code == 200, page.text
    row = re.search(rf'<tr data-link-id="{feed.id}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert "Harbour Half (RSU)" in row.group(1) and f"/events/{event.id}/sync" in row.group(1)
    assert "status-running" in row.group(1)
    assert f'href="/connections/{conn.id}/sync"' in page.text  # the run history
    assert page.text.count('<g class="bar"') == 48
    assert browser.get(f"/monitoring/connections/{foreign.id}").status_code == 404


def test_a_platform_admin_sees_every_tenant_on_asking(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    other = make_tenant(db, name="Other Timing Co")
    browser = _browser(client, db, tenant, platform_admin=True)
    db.commit()
    plain = browser.get("/monitoring")
    assert 'href="/monitoring?scope=all"' in plain.text
    assert "data-tenant-id" not in plain.text
    every = browser.get("/monitoring", params={"scope": "all"})
    assert every.status_code == 200
    assert f'data-tenant-id="{other.id}"' in every.text
