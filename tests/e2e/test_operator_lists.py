"""The operator's way around in Chromium: a platform admin picks a tenant (no dead end),
acts there under a banner and switches back; the jobs and imports lists, walked from the
menu to a run's page and back to what it belongs to, as the roles that may read them, and
as a viewer, who is not shown what it may not read."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.models import Role
from racehub.events.service import ASSIGN_BIBS_KIND
from racehub.inventory.importers import NUMBER_ONBOARDING
from racehub.jobs.models import JobRun, JobStatus
from racehub.sync.discovery import DISCOVER_EVENTS_KIND
from racehub.timing.importers import TIMING_RESULTS
from tests.e2e.helpers import ConsoleWatch, login
from tests.factories import (
    PASSWORD,
    make_category,
    make_event,
    make_number_type,
    make_tenant,
    make_user,
)
from tests.imports.test_pages import make_import

pytestmark = pytest.mark.e2e

ADMIN = "root@racehub.test"
MANAGER = "manager@alpine.test"
VIEWER = "viewer@alpine.test"
BASE = datetime(2026, 5, 1, tzinfo=UTC)


def _log_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_platform_admin_picks_a_tenant_acts_there_under_a_banner_and_switches(
    page: Page, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    with committed_db() as db:
        make_tenant(db, "Alpine Timing")
        make_tenant(db, "Lakes Chrono")
        make_user(db, None, None, email=ADMIN, platform_admin=True)
        db.commit()

    _log_in(page, ADMIN)

    # No tenant yet: the picker, with the menu and Log out, instead of a 403.
    expect(page).to_have_url(re.compile(r"/tenant\?next=/events$"))
    expect(page.get_by_role("heading", name="Choose a tenant")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.get_by_label("Name or slug").fill("alpine")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("button", name=re.compile("^Act in"))).to_have_count(1)
    page.get_by_role("button", name="Act in Alpine Timing").click()

    # Back where it was headed, acting in the tenant, and told so on every page.
    expect(page).to_have_url(re.compile(r"/events$"))
    expect(page.locator("#acting-banner")).to_contain_text("Acting in tenant Alpine Timing")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    expect(page).to_have_url(re.compile(r"/jobs$"))
    expect(page.locator("#acting-banner")).to_be_visible()

    # Switch to the other tenant from the top bar.
    page.get_by_role("link", name="Switch tenant").first.click()
    page.get_by_role("button", name="Act in Lakes Chrono").click()
    expect(page.locator("#acting-banner")).to_contain_text("Lakes Chrono")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))


@pytest.fixture
def runs(committed_db: sessionmaker[Session]) -> dict[str, str]:
    """An event with a bib assignment, a result import into it, a manufactured-number
    import, and a discovery of provider events (read with the connections: not a
    viewer's)."""
    with committed_db() as db:
        tenant = make_tenant(db, "Alpine Timing")
        make_user(db, tenant, Role.EVENT_MANAGER, email=MANAGER)
        make_user(db, tenant, Role.VIEWER, email=VIEWER)
        event = make_event(db, tenant, name="Lake Run 2026")
        category = make_category(db, event, "21K")
        bibs = JobRun(tenant_id=tenant.id, kind=ASSIGN_BIBS_KIND, status=JobStatus.COMPLETED,
                      stage="Done", params={"event_id": str(event.id),
                                            "category_id": str(category.id), "first_bib": 1},
                      subject_type="category", subject_id=category.id, counts={}, log=[],
                      checkpoint={}, requested_by_label=MANAGER,
                      created_at=BASE + timedelta(minutes=3))
        discovery = JobRun(tenant_id=tenant.id, kind=DISCOVER_EVENTS_KIND,
                           status=JobStatus.FAILED, params={"connection_id": str(uuid.uuid4())},
                           subject_type="provider_connection", counts={}, log=[],
                           checkpoint={}, created_at=BASE + timedelta(minutes=4))
        db.add_all([bibs, discovery])
        results = make_import(db, tenant, TIMING_RESULTS,
                              {"eventId": str(event.id), "identifierMode": "PERSON_ID"},
                              minute=2, filename="results.csv", who=MANAGER)
        number_type = make_number_type(db, tenant)
        numbers = make_import(db, tenant, NUMBER_ONBOARDING,
                              {"numberTypeId": str(number_type.id)}, minute=1,
                              filename="chips.csv")
        db.commit()
        return {"event": str(event.id), "bibs": str(bibs.id), "discovery": str(discovery.id),
                "results": str(results.id), "numbers": str(numbers.id),
                "number_type": number_type.name}


def test_manager_walks_jobs_and_imports_to_what_they_belong_to(
    page: Page, runs: dict[str, str], console: ConsoleWatch
) -> None:
    login(page, MANAGER)
    menu = page.get_by_role("navigation", name="Main")
    menu.get_by_role("link", name="Jobs").click()
    expect(page).to_have_url(re.compile(r"/jobs$"))
    rows = page.locator("table.jobs tbody tr")
    # The bib assignment, the discovery (read with the connections), the two imports' runs.
    expect(rows).to_have_count(4)

    # Filter by state, then by event: the event's bib assignment and result import.
    page.get_by_label("State").select_option("completed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/jobs\?.*state=completed"))
    expect(rows).to_have_count(3)
    page.get_by_label("Event").select_option(label="Lake Run 2026")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    page.get_by_label("Kind").select_option(ASSIGN_BIBS_KIND)
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)

    # The job's page, and back to its event.
    rows.first.get_by_role("link", name="Assign bibs").click()
    expect(page).to_have_url(re.compile(rf"/jobs/{runs['bibs']}$"))
    page.get_by_role("navigation", name="Belongs to").get_by_role(
        "link", name="Lake Run 2026").click()
    expect(page).to_have_url(re.compile(rf"/events/{runs['event']}$"))

    # Imports: the list, one import's page, and back to the number type it filled.
    menu.get_by_role("link", name="Imports").click()
    expect(page.locator("table.imports tbody tr")).to_have_count(2)
    page.get_by_label("Type").select_option(NUMBER_ONBOARDING)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.imports tbody tr")).to_have_count(1)
    page.get_by_role("link", name="chips.csv").click()
    expect(page).to_have_url(re.compile(rf"/imports/{runs['numbers']}$"))
    page.get_by_role("navigation", name="Belongs to").get_by_role(
        "link", name=runs["number_type"]).click()
    expect(page).to_have_url(re.compile(r"/inventory/numbers\?numberTypeId="))


def test_viewer_is_not_shown_the_runs_it_may_not_read(
    page: Page, runs: dict[str, str], console: ConsoleWatch
) -> None:
    console.expect(r"status of 403 .*/jobs/")
    login(page, VIEWER)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(3)  # the bibs and the imports; the discovery is not the viewer's
    expect(page.locator(f'[data-job-id="{runs["discovery"]}"]')).to_have_count(0)
    expect(page.get_by_label("Kind").locator("option", has_text="Discover")).to_have_count(0)

    page.goto(f"/jobs/{runs['discovery']}")
    expect(page.locator(".error-detail")).to_contain_text("sync:connection:read")
    # The menu stays: the viewer is not stranded on the refusal.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Imports").click()
    expect(page.locator("table.imports tbody tr")).to_have_count(2)
