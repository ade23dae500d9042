"""Accessibility in Chromium: axe-core (vendored, tests/e2e/vendor) on every main page, as
the roles that use them, finds no serious or critical violation; the modals and confirm
steps work from the keyboard and hand focus back; focus is visible."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.crypto import keyring_from_settings
from racehub.core.models import Role
from racehub.events.models import EventParticipant, TimingIdentifier
from racehub.inventory.importers import NUMBER_ONBOARDING
from racehub.jobs.runner import run_job
from racehub.settings import Settings
from racehub.sync import publications, runs
from racehub.sync.models import SyncConflict, SyncRun, SyncStatus
from racehub.timing.importers import TIMING_RESULTS
from racehub.timing.models import Result, ResultStatus
from tests.e2e.helpers import ConsoleWatch, Seed, login
from tests.factories import (
    PASSWORD,
    make_category,
    make_event,
    make_number_type,
    make_participant,
    make_tenant,
    make_token,
    make_user,
    onboard,
    system_ctx,
)
from tests.imports.test_pages import make_import
from tests.jobs.helpers import make_run
from tests.sync.engine_helpers import attempt, connect, event_ref, link, simulator, sync

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"
# What fails the check: axe's two highest impacts. Every rule runs (none is disabled).
BLOCKING = ("serious", "critical")
ADMIN = "admin@alpine.test"
MANAGER = "manager@alpine.test"
VIEWER = "viewer@alpine.test"
ROOT = "root@racehub.test"


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe === 'object'"):
        # Evaluated through the DevTools protocol: the page's CSP (no inline script) does
        # not apply to it, and nothing is fetched.
        page.evaluate(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
          const result = await axe.run(document, {resultTypes: ["violations"]});
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => ({target: n.target.join(" "), impact: n.impact,
                                        summary: n.failureSummary})),
          }));
        }""")
    return [v for v in found if v["impact"] in BLOCKING]


def describe(where: str, violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{where}: [{v['impact']}] {v['id']}: {v['help']}")
        for node in v["nodes"][:5]:
            summary = " ".join(str(node["summary"]).split())
            lines.append(f"    {node['target']}: {summary}")
        if len(v["nodes"]) > 5:
            lines.append(f"    ... and {len(v['nodes']) - 5} more")
    return "\n".join(lines)


class Audit:
    """Runs axe on each page visited and keeps what it reports, to fail once with all."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.checked: list[str] = []

    def visit(self, path: str, *, heading: str | re.Pattern[str] | None = None) -> None:
        response = self.page.goto(path)
        assert response is not None and response.status == 200, (
            f"{path} answered {response.status if response else 'nothing'}")
        if heading is not None:
            expect(self.page.get_by_role("heading", level=1)).to_contain_text(heading)
        self.check(path)

    def check(self, where: str) -> None:
        # What htmx loads after the page (fragments, polls) is part of it.
        self.page.wait_for_load_state("networkidle")
        # Closed disclosures hide controls from axe: open them all (a confirm step too).
        self.page.evaluate(
            "() => document.querySelectorAll('details').forEach((d) => { d.open = true; })")
        violations = axe_violations(self.page)
        self.checked.append(where)
        if violations:
            self.problems.append(describe(where, violations))

    def assert_clean(self) -> None:
        assert not self.problems, (
            f"axe-core found serious or critical violations on {len(self.problems)} of "
            f"{len(self.checked)} pages:\n" + "\n".join(self.problems))


@pytest.fixture
def tenant_data(committed_db: sessionmaker[Session], e2e_settings: Settings,
                ) -> Iterator[dict[str, str]]:
    """A tenant with something on every page: an event with categories, participants,
    results and a synced provider event (a finished sync run), a connection, jobs, imports,
    number types with numbers, an API token, members; and a platform admin."""
    keyring = keyring_from_settings(e2e_settings)
    with simulator(participants_per_event=3, events_per_race=2, with_results=False) as (
            sim, url), \
            committed_db() as db:
        tenant = make_tenant(db, "Alpine Timing")
        make_tenant(db, "Lakes Chrono")
        make_user(db, tenant, Role.TENANT_ADMIN, email=ADMIN)
        make_user(db, tenant, Role.EVENT_MANAGER, email=MANAGER)
        make_user(db, tenant, Role.VIEWER, email=VIEWER)
        make_user(db, None, None, email=ROOT, platform_admin=True)
        make_token(db, tenant, Role.VIEWER)
        ctx = system_ctx(tenant)

        event = make_event(db, tenant, name="Lake Run 2026", location="Annecy",
                           timezone="Europe/Paris",
                           preferred_timing_identifier=TimingIdentifier.EPID)
        ten_k = make_category(db, event, "10K", distance_m=10000, bib_range_start=1,
                              bib_range_end=500)
        make_category(db, event, "Half", distance_m=21097)
        runners = [make_participant(db, event, first_name=first, last_name=last, bib=bib,
                                    category_id=ten_k.id, team="Harriers")
                   for first, last, bib in [("Ada", "Lovelace", "1"), ("Alan", "Turing", "2"),
                                            ("Grace", "Hopper", "3")]]
        for place, ep in enumerate(runners, start=1):
            db.add(Result(tenant_id=tenant.id, event_id=event.id, event_participant_id=ep.id,
                          status=ResultStatus.FINISHED, chip_ms=3_000_000 + place * 1000,
                          gun_ms=3_010_000 + place * 1000, overall_place=place,
                          file_bib=ep.bib))

        synced = make_event(db, tenant, name="Mountain Trail", location="Chamonix")
        connection = connect(db, ctx, keyring, url, name="RunSignUp demo")
        stream = link(db, connection, synced, event_ref(sim), "Mountain Trail (RunSignUp)")
        run = sync(db, ctx, keyring, connection, stream)
        pulled = db.scalars(select(EventParticipant).where(
            EventParticipant.event_id == synced.id).order_by(EventParticipant.id)).all()
        assert len(pulled) == 3
        for place, ep in enumerate(pulled, start=1):  # results to publish back
            db.add(Result(tenant_id=tenant.id, event_id=synced.id, event_participant_id=ep.id,
                          status=ResultStatus.FINISHED, chip_ms=1_500_000 + place * 1000,
                          gun_ms=1_504_000 + place * 1000, overall_place=place))
        db.add(SyncConflict(tenant_id=tenant.id, event_id=synced.id, participant_id=pulled[0].id,
                            field="team", local_value="Harriers", provider_value="Harriers B"))
        # A second provider event into a third event, read as a preview awaiting review.
        reviewed = make_event(db, tenant, name="Night Run")
        race = next(iter(sim.races.values()))
        second = link(db, connection, reviewed,
                      f"{race['race_id']}:{race['events'][1]['event_id']}", "Night Run (RSU)")
        requested = runs.request_link_sync(db, ctx, connection=connection, link=second,
                                           preview=True)
        preview = attempt(db, ctx, keyring, requested.run)
        assert preview.status == SyncStatus.AWAITING_REVIEW, preview.status

        number_type = make_number_type(db, tenant, "Chips 2026")
        onboard(db, number_type, ("1", "100", "B100"), ("2", "101", "B101"))
        job = make_run(db, tenant)
        results_import = make_import(db, tenant, TIMING_RESULTS,
                                     {"eventId": str(event.id), "identifierMode": "EPID"},
                                     minute=2, filename="results.csv", who=MANAGER)
        numbers_import = make_import(db, tenant, NUMBER_ONBOARDING,
                                     {"numberTypeId": str(number_type.id)}, minute=1,
                                     filename="chips.csv")
        db.commit()
        ids = {"event": str(event.id), "synced_event": str(synced.id),
               "category": str(ten_k.id), "participant": str(runners[0].id),
               "connection": str(connection.id), "link": str(stream.id),
               "run": str(run.id), "preview": str(preview.id), "job": str(job.id),
               "reviewed_event": str(reviewed.id),
               "results_import": str(results_import.id),
               "numbers_import": str(numbers_import.id), "number_type": str(number_type.id)}
        yield ids  # the simulator stays up: the connection's pages may ask it


def test_axe_finds_no_serious_or_critical_violation_on_any_main_page(
    page: Page, tenant_data: dict[str, str], console: ConsoleWatch,
    committed_db: sessionmaker[Session],
) -> None:
    """Every main page as the event manager who works in it (the tenant's settings as its
    admin, a few as a viewer, who sees disabled buttons, the picker as a platform admin),
    in the states where more shows: a refused form, an open modal, a preview to review,
    every fold open."""
    console.expect(r"status of 404 .*/definitely-not-a-page")
    console.expect(r"status of 422 .*/categories\)")  # the refused category, on purpose
    # The export started below is still watched after the log out; the next user (of no
    # tenant of it) is refused it, and the watch drops it.
    console.expect(r"status of 403 .*/api/exports/")
    audit = Audit(page)
    ids = tenant_data
    event, synced, connection = ids["event"], ids["synced_event"], ids["connection"]
    audit.visit("/login", heading="Log in")

    login(page, MANAGER)
    for path in [
        "/events", "/events/new", f"/events/{event}", f"/events/{event}?q=Lovelace",
        f"/events/{event}/edit", f"/events/{event}/categories/{ids['category']}/edit",
        f"/events/{event}/participants/new", f"/participants/{ids['participant']}/edit",
        f"/events/{synced}", f"/events/{synced}/sync", f"/sync/runs/{ids['run']}",
        f"/events/{ids['reviewed_event']}/sync", f"/sync/runs/{ids['preview']}",
        f"/events/{event}/results", f"/events/{event}/results/import",
        "/connections", f"/connections/{connection}/links", f"/connections/{connection}/sync",
        "/jobs", f"/jobs/{ids['job']}", "/imports", f"/imports/{ids['results_import']}",
        f"/imports/{ids['numbers_import']}", "/inventory/number-types", "/inventory/numbers",
        "/exports",
    ]:
        audit.visit(path)

    # A refused form, shown again with its problem beside the field.
    page.goto(f"/events/{event}")
    form = page.locator("#category-form")
    form.get_by_label("Name").fill("5K")
    form.get_by_label("Bibs from").fill("10")
    form.get_by_label("Bibs to").fill("5")
    form.get_by_role("button", name="Add category").click()
    expect(page.locator("#category-form [aria-invalid=true]")).not_to_have_count(0)
    audit.check("the event page with a refused category")

    # The timing export modal, open.
    page.goto(f"/events/{event}")
    page.get_by_role("button", name="Export to timing system").click()
    dialog = page.get_by_role("dialog", name="Export to timing system")
    expect(dialog.get_by_text("3 participant(s) will be exported.")).to_be_visible()
    audit.check("the timing export dialog")
    page.keyboard.press("Escape")

    # An export: its form, then its status page.
    page.goto(f"/events/{event}")
    page.locator(".export-button").first.click()
    expect(page).to_have_url(re.compile(r"/exports/new\?"))
    audit.check("/exports/new")
    page.get_by_role("button", name=re.compile("^(Start|Export)")).first.click()
    expect(page).to_have_url(re.compile(r"/exports/[0-9a-f-]{36}$"))
    audit.check("an export's status page")

    # A results version prepared for publication: its diff, to approve.
    page.goto(f"/events/{synced}/sync")
    page.get_by_role("button", name="Prepare publication").click()
    expect(page.locator(".flash")).to_have_text("Preparing 1 results version(s)")
    prepare_publication(committed_db)
    page.reload()
    page.locator('#publications tr[data-version="1"]').get_by_role("link", name="v1").click()
    expect(page.locator(".diff-counts")).to_contain_text("3 added, 0 changed, 0 removed")
    audit.check("a results version's page")

    # The number inventory, one number.
    page.goto("/inventory/numbers")
    page.locator("table a[href^='/inventory/numbers/']").first.click()
    audit.check("a race number's page")
    page.get_by_role("button", name="Log out").click()

    login(page, ADMIN)
    for path in ["/connections/new", f"/connections/{connection}",
                 f"/connections/{connection}/mapping",
                 f"/connections/{connection}/webhook-deliveries",
                 "/inventory/numbers/onboard/import",
                 "/settings/members", "/settings/tokens", "/audit"]:
        audit.visit(path)
    page.get_by_role("button", name="Log out").click()

    login(page, VIEWER)
    for path in ["/events", f"/events/{event}", f"/events/{synced}/sync",
                 f"/sync/runs/{ids['run']}", "/jobs"]:
        audit.visit(path)
    page.get_by_role("button", name="Log out").click()

    login_page_as(page, ROOT)
    expect(page).to_have_url(re.compile(r"/tenant"))
    audit.check("/tenant (a platform admin's tenant picker)")
    page.goto("/definitely-not-a-page")
    audit.check("the not-found page")

    audit.assert_clean()
    assert len(audit.checked) == 48, json.dumps(audit.checked)


def prepare_publication(committed_db: sessionmaker[Session]) -> None:
    """A worker's part: run the queued "prepare publication" job, in a thread, to its end."""
    with committed_db() as db:
        job_id = db.scalars(select(SyncRun.job_run_id).where(
            SyncRun.sync_type == "results_publish_prepare")).one()
    worker = threading.Thread(target=run_job, args=(None, str(job_id),
                                                    publications.run_prepare),
                              kwargs={"factory": committed_db}, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "the prepare job never finished"


def login_page_as(page: Page, email: str) -> None:
    """Log in without waiting for the events list (a platform admin lands on the picker)."""
    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_axe_reports_what_it_is_asked_to_find(page: Page, seed: Seed) -> None:
    """The check itself can fail: a control without a label on a page is reported."""
    page.goto("/login")
    assert axe_violations(page) == []
    page.evaluate("""() => {
      const input = document.createElement("input");
      input.name = "unlabelled";
      document.querySelector("main").append(input);
    }""")
    found = axe_violations(page)
    assert [(v["id"], v["impact"]) for v in found] == [("label", "critical")], found
    assert [n["target"] for n in found[0]["nodes"]] == ['input[name="unlabelled"]'], found


# --- the keyboard ----------------------------------------------------------------------------

FOCUSED_STYLE = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {tag: el.tagName.toLowerCase(), text: (el.textContent || "").trim(),
          style: style.outlineStyle, width: parseFloat(style.outlineWidth)};
}"""


def focused(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(FOCUSED_STYLE)
    return result


def assert_focus_ring(page: Page) -> None:
    now = focused(page)
    assert now["style"] == "solid" and now["width"] >= 2, (
        f"no visible focus ring on <{now['tag']}> {now['text']!r}: {now}")


def test_focus_is_visible_and_the_skip_link_leads_past_the_menu(page: Page, seed: Seed) -> None:
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    assert_focus_ring(page)
    page.keyboard.press("Tab")  # the brand link on the dark top bar
    assert_focus_ring(page)
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # The next Tab lands in the page, not in the menu: the first control of the main part.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.querySelector('main').contains(document.activeElement)")
    assert_focus_ring(page)
    # Every kind of control shows it: a button, a field, a select, a link in a table.
    for locator in [page.get_by_role("button", name="Export to timing system"),
                    page.locator("#category-form").get_by_label("Name"),
                    page.get_by_role("link", name="Edit event")]:
        locator.focus()
        expect(locator).to_be_focused()
        assert_focus_ring(page)


def test_the_timing_export_dialog_works_from_the_keyboard_and_returns_focus(
    page: Page, seed: Seed,
) -> None:
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    opener = page.get_by_role("button", name="Export to timing system")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Export to timing system")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("0 participant(s) will be exported.")).to_be_visible()
    assert page.evaluate(
        "() => document.getElementById('timing-export-dialog').contains(document.activeElement)")
    # Tab stays inside the modal, the confirmation ticks with Space.
    confirm = dialog.get_by_label(re.compile("I understand the timing system"))
    confirm.focus()
    page.keyboard.press("Space")
    expect(confirm).to_be_checked()
    for _ in range(8):
        page.keyboard.press("Tab")
        assert page.evaluate(
            "() => document.getElementById('timing-export-dialog')"
            ".contains(document.activeElement)"), "the focus left the open dialog"
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()

    # Cancel, pressed with the keyboard, hands the focus back too.
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()


def test_a_confirm_dialog_works_from_the_keyboard_and_returns_focus(
    page: Page, committed_db: sessionmaker[Session],
) -> None:
    with committed_db() as db:
        tenant = make_tenant(db, "Alpine Timing")
        make_user(db, tenant, Role.TENANT_ADMIN, email=ADMIN)
        make_user(db, tenant, Role.VIEWER, email="viewer@alpine.test")
        db.commit()
    login(page, ADMIN)
    page.goto("/settings/members")
    remove = page.get_by_role("button", name="Remove viewer@alpine.test")
    remove.focus()
    page.keyboard.press("Enter")
    confirm = page.get_by_role("alertdialog",
                               name="Remove viewer@alpine.test from this tenant? "
                                    "Their API tokens here are revoked.")
    expect(confirm).to_be_visible()
    # Cancel has the focus: a second Enter does not remove anyone.
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    assert_focus_ring(page)
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    expect(remove).to_be_focused()
    page.keyboard.press("Enter")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Enter")
    expect(confirm).to_be_hidden()
    expect(remove).to_be_focused()
    expect(page.locator("tr", has_text="viewer@alpine.test")).to_have_count(1)

    # Going on: Shift+Tab to the form's own button, Enter.
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")
    expect(confirm.get_by_role("button", name="Remove")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text(
        "viewer@alpine.test removed from this tenant")
    expect(page.locator("tr", has_text="viewer@alpine.test")).to_have_count(0)


def test_the_delete_step_folds_with_escape_and_deletes_from_the_keyboard(
    page: Page, seed: Seed,
) -> None:
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    summary = page.locator("details.confirm > summary")
    summary.focus()
    page.keyboard.press("Enter")
    delete = page.get_by_role("button", name=f"Delete {seed.event.name}")
    expect(delete).to_be_visible()
    page.keyboard.press("Tab")
    expect(delete).to_be_focused()
    page.keyboard.press("Escape")
    expect(delete).to_be_hidden()
    expect(summary).to_be_focused()

    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/events(\?.*)?$"))
    expect(page.get_by_role("status")).to_have_text(f"{seed.event.name} deleted")
    expect(page.get_by_role("link", name=seed.event.name)).to_have_count(0)
