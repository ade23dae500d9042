"""The events list and the participants table of an event (paging, sorting, htmx search)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.models import Role
from racehub.events.models import Category, EventParticipant, ParticipantStatus
from racehub.events.pages import PAGE_SIZE
from tests.e2e.helpers import ConsoleWatch, Seed, login
from tests.factories import make_event, make_participant, make_tenant, make_user

pytestmark = pytest.mark.e2e

EXTRA = 7
COUNT = PAGE_SIZE + EXTRA  # more than one page
MARKER = "() => { window.__e2eNoReload = 'still here'; }"
READ_MARKER = "() => window.__e2eNoReload"


def test_events_list_shows_own_events_only(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    with committed_db() as db:
        make_event(db, seed.tenant, name="Summit Trail", location="Chamonix")
        make_participant(db, seed.event)
        make_participant(db, seed.event)
        other = make_tenant(db, name="Rival Timing")
        make_user(db, other, Role.TENANT_ADMIN, email="admin@rival.test")
        secret = make_event(db, other, name="Secret Marathon", location="Annecy")
        db.commit()

    login(page, seed.admin.email)
    tiles = page.locator("article.tile")
    expect(tiles).to_have_count(2)
    lake = tiles.filter(has_text="Lake Run 2026")
    expect(lake).to_contain_text("2 participants")
    expect(lake).to_contain_text("Annecy")
    expect(tiles.filter(has_text="Summit Trail")).to_contain_text("0 participants")
    expect(page.get_by_text("Secret Marathon")).to_have_count(0)
    expect(page.locator(f'[data-event-id="{secret.id}"]')).to_have_count(0)

    # Searching by a location both tenants use still finds only this tenant's event.
    page.get_by_role("searchbox", name="Search").fill("Annecy")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/events\?q=Annecy$"))
    expect(tiles).to_have_count(1)
    expect(tiles).to_contain_text("Lake Run 2026")

    # And the other tenant's event is not reachable by its address.
    console.expect(r"status of 404 ")
    response = page.goto(f"/events/{secret.id}")
    assert response is not None and response.status == 404
    expect(page.get_by_text("Secret Marathon")).to_have_count(0)


def _last_name(i: int) -> str:
    # Letters only ("RunnerAa", "RunnerAb", ...): a bib search cannot match a name.
    return "Runner" + chr(ord("A") + i // 26) + chr(ord("a") + i % 26)


@pytest.fixture
def crowd(seed: Seed, committed_db: sessionmaker[Session]) -> list[EventParticipant]:
    """COUNT participants: names in index order, bibs in the reverse order (COUNT..1)."""
    with committed_db() as db:
        eps = [
            make_participant(db, seed.event, first_name="Ann", last_name=_last_name(i),
                             bib=str(COUNT - i), registration_id=f"REG-{i:04d}",
                             team="Lions" if i % 2 else "Tigers")
            for i in range(COUNT)
        ]
        db.commit()
    return eps


def _names(page: Page) -> list[str]:
    return page.locator("#participants tbody tr td.name").all_inner_texts()


def test_participants_table_pages_on_the_server(
    page: Page, seed: Seed, crowd: list[EventParticipant]
) -> None:
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    rows = page.locator("#participants tbody tr")
    expect(page.locator("#participant-total")).to_have_text(str(COUNT))
    expect(rows).to_have_count(PAGE_SIZE)
    expect(rows.first).to_contain_text(f"{_last_name(0)}, Ann")
    first_page = _names(page)
    expect(page.get_by_role("link", name="First page")).to_have_count(0)

    page.evaluate(MARKER)
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(EXTRA)
    expect(page).to_have_url(re.compile(r"cursor="))
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    second_page = _names(page)
    assert page.evaluate(READ_MARKER) == "still here"  # htmx swapped the table only
    assert first_page + second_page == [f"{_last_name(i)}, Ann" for i in range(COUNT)]

    page.get_by_role("link", name="First page").click()
    expect(rows).to_have_count(PAGE_SIZE)
    expect(rows.first).to_contain_text(f"{_last_name(0)}, Ann")

    # The pushed URL works as a full page load too (bookmark, reload).
    page.go_back()
    expect(page).to_have_url(re.compile(r"cursor="))
    page.reload()
    expect(rows).to_have_count(EXTRA)


def test_participants_table_sorts_by_a_column(
    page: Page, seed: Seed, crowd: list[EventParticipant]
) -> None:
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    rows = page.locator("#participants tbody tr")
    bibs = page.locator("#participants tbody td.bib")
    expect(bibs.first).to_have_text(str(COUNT))  # by name: RunnerAa has the highest bib
    page.evaluate(MARKER)

    page.locator("#participants thead").get_by_role("link", name="Bib").click()
    expect(page).to_have_url(re.compile(r"sort=bib"))
    # Numeric-looking bibs sort as numbers: 1, 2, ... 9, 10 (not 1, 10, 11, ...).
    expect(bibs.nth(0)).to_have_text("1")
    expect(bibs.nth(9)).to_have_text("10")
    expect(page.locator("#participants thead")).to_contain_text("Bib ▲")
    assert bibs.all_inner_texts() == [str(n) for n in range(1, PAGE_SIZE + 1)]

    page.locator("#participants thead").get_by_role("link", name="Bib").click()
    expect(page).to_have_url(re.compile(r"sort=bib&desc=1"))
    expect(bibs.first).to_have_text(str(COUNT))
    expect(page.locator("#participants thead")).to_contain_text("Bib ▼")

    # Paging keeps the order: the last page of a descending bib sort ends at bib 1.
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(EXTRA)
    expect(bibs.last).to_have_text("1")
    assert page.evaluate(READ_MARKER) == "still here"


def test_participants_search_updates_the_table_without_reload(
    page: Page, seed: Seed, crowd: list[EventParticipant], committed_db: sessionmaker[Session]
) -> None:
    with committed_db() as db:
        gone = make_participant(db, seed.event, first_name="Walter", last_name="Gone",
                                bib="900", status=ParticipantStatus.WITHDRAWN)
        db.commit()
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    rows = page.locator("#participants tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    page.evaluate(MARKER)
    search = page.get_by_role("searchbox", name="Search")

    def search_for(term: str) -> None:
        with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"
                                  and "q=" in r.url) as info:
            search.fill(term)
        response = info.value
        assert response.status == 200
        assert "<html" not in response.text()  # the table partial, not a page

    target = crowd[13]
    search_for(_last_name(13))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"{_last_name(13)}, Ann")
    expect(page).to_have_url(re.compile(rf"q={_last_name(13)}"))
    expect(page.locator("#participant-total")).to_have_text("1")

    search_for(target.bib or "")  # by bib: exact, not "contains"
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-participant-id", str(target.id))

    search_for(crowd[42].registration_id or "")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-participant-id", str(crowd[42].id))

    search_for("Ann RunnerB")  # first and last name together
    expect(page.locator("#participant-total")).to_have_text("26")

    search_for("nobody-like-this")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_text("No participants match.")

    # A withdrawn runner is still found by bib, and the status filter narrows the table.
    search_for("900")
    expect(rows.first).to_have_attribute("data-participant-id", str(gone.id))
    search.fill("")
    with page.expect_response(lambda r: "status=withdrawn" in r.url):
        page.get_by_label("Status").select_option("withdrawn")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Gone, Walter")

    assert page.evaluate(READ_MARKER) == "still here"


def test_search_keeps_the_sort_chosen_in_the_table_header(
    page: Page, seed: Seed, crowd: list[EventParticipant]
) -> None:
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    bibs = page.locator("#participants tbody td.bib")
    bib_header = page.locator("#participants thead").get_by_role("link", name="Bib")
    search = page.get_by_role("searchbox", name="Search")
    bib_header.click()
    expect(bibs.first).to_have_text("1")

    # "RunnerA*" are indexes 0-25 with bibs COUNT..COUNT-25: by bib, RunnerAz comes first.
    search.fill("RunnerA")
    expect(page).to_have_url(re.compile(r"q=RunnerA"))
    expect(page.locator("#participant-total")).to_have_text("26")
    expect(page).to_have_url(re.compile(r"sort=bib"))
    expect(bibs.first).to_have_text(str(COUNT - 25))

    bib_header.click()  # descending, still filtered
    expect(page).to_have_url(re.compile(r"q=RunnerA.*desc=1"))
    expect(bibs.first).to_have_text(str(COUNT))

    search.fill("RunnerB")  # indexes 26-51: by bib descending, RunnerBa first
    expect(page).to_have_url(re.compile(r"q=RunnerB"))
    expect(page).to_have_url(re.compile(r"sort=bib&desc=1"))
    expect(bibs.first).to_have_text(str(COUNT - 26))
    expect(page.locator("#participants thead")).to_contain_text("Bib ▼")


def test_refused_category_shows_its_problem_beside_the_form(
    page: Page, seed: Seed, committed_db: sessionmaker[Session], console: ConsoleWatch
) -> None:
    console.expect(r"status of 422 ")
    console.expect(r"status of 409 ")
    login(page, seed.admin.email)
    page.goto(f"/events/{seed.event.id}")
    form = page.locator("#category-form")
    form.get_by_label("Name").fill("10K")
    form.get_by_label("Bibs from").fill("500")
    form.get_by_label("Bibs to", exact=True).fill("100")
    form.get_by_role("button", name="Add category").click()

    form = page.locator("#category-form")
    # The field named as the form labels it, never by its API name.
    expect(page.get_by_role("alert")).to_have_text(
        "Bibs to must not be below the range's start (500)")
    upper = form.get_by_role("spinbutton", name="Bibs to", exact=True)
    expect(upper).to_have_attribute("aria-invalid", "true")
    expect(upper).to_have_accessible_description(re.compile("must not be below"))
    expect(form.get_by_label("Name")).to_have_value("10K")  # what was typed is kept
    expect(form.get_by_label("Bibs from")).to_have_value("500")

    upper.fill("999")
    form.get_by_role("button", name="Add category").click()
    expect(page.get_by_role("status")).to_have_text("Category added")

    # The same name again is a conflict, shown on the name.
    form = page.locator("#category-form")
    form.get_by_label("Name").fill("10K")
    form.get_by_role("button", name="Add category").click()
    expect(page.get_by_role("alert")).to_contain_text("already has a category named '10K'")
    expect(page.locator("#category-form").get_by_label("Name")).to_have_attribute(
        "aria-invalid", "true")
    with committed_db() as db:
        names = db.scalars(select(Category.name).where(Category.event_id == seed.event.id))
        assert list(names) == ["10K"]
