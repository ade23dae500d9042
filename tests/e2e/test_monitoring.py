"""The Monitoring page in Chromium: a viewer opens it from the menu, reads the sync summary
and the runs-per-hour chart (inline SVG, nothing fetched, no console error or CSP
violation), and drills down into one connection."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.sync.models import SyncStatus
from tests.e2e.helpers import Seed, login
from tests.monitoring.conftest import connection, link, run

pytestmark = pytest.mark.e2e

H = timedelta(hours=1)


def test_a_viewer_reads_the_sync_summary_and_chart_and_drills_into_a_connection(
    page: Page, seed: Seed, committed_db: sessionmaker[Session],
) -> None:
    now = datetime.now(UTC)
    with committed_db() as db:
        conn = connection(db, seed.tenant, "Alpine RunSignUp")
        feed = link(db, conn, seed.event, "r-77", provider_event_name="Lake Run (RunSignUp)",
                    next_run_at=now + H)
        for ago in (2 * H, 3 * H, 4 * H):
            run(db, feed, SyncStatus.SUCCEEDED, ago=ago, now=now)
        run(db, feed, SyncStatus.FAILED, ago=5 * H, now=now)
        conn_id, link_id = conn.id, feed.id
        db.commit()

    login(page, seed.viewer.email)
    page.get_by_role("link", name="Monitoring", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Monitoring")
    row = page.locator(f'tr[data-connection-id="{conn_id}"]')
    expect(row).to_contain_text("Alpine RunSignUp")
    expect(row).to_contain_text("75.0%")
    chart = page.locator("svg#runs-per-hour")
    expect(chart).to_be_visible()
    expect(chart.locator("g.bar")).to_have_count(48)
    expect(chart.locator("rect.outcome-succeeded")).to_have_count(3)
    expect(chart.locator("rect.outcome-failed")).to_have_count(1)
    # Drawn, not only present: a bar with a run has a height on screen.
    box = chart.locator("rect.outcome-failed").bounding_box()
    assert box is not None and box["height"] > 0 and box["width"] > 0
    expect(chart).to_have_attribute("aria-label", "Sync runs per hour over the last 48 "
                                    "hours: 4 runs (3 succeeded, 1 failed)")

    row.get_by_role("link", name="Alpine RunSignUp").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Alpine RunSignUp")
    link_row = page.locator(f'tr[data-link-id="{link_id}"]')
    expect(link_row).to_contain_text("Lake Run (RunSignUp)")
    expect(link_row).to_contain_text(seed.event.name)
    expect(page.locator("svg#runs-per-hour rect.outcome-succeeded")).to_have_count(3)
    page.get_by_role("link", name="Run history").click()
    expect(page).to_have_url(re.compile(rf"/connections/{conn_id}/sync$"))
