"""The link pages without a browser: a connection's provider events page (link one to an
event, unlink it), the links on the connection's edit page and on the event page."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.sync.models import EventLink, SyncStatus
from tests.core.conftest import start_browser_session
from tests.factories import make_event, make_user
from tests.sync.conftest import link, make_connection, start_run


def log_in(client: TestClient, db: Session, tenant: Tenant, role: Role) -> TestClient:
    client.headers["X-CSRF-Token"] = start_browser_session(db, client, make_user(db, tenant, role))
    db.commit()
    return client


def test_an_event_manager_links_a_chosen_provider_event_and_unlinks_it(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make_connection(db, ctx, keyring, event_ids=["100:1"])
    event = make_event(db, tenant, name="Spring 10K")
    make_event(db, tenant, name="Autumn Half")
    browser = log_in(client, db, tenant, Role.EVENT_MANAGER)
    url = f"/connections/{connection.id}/links"

    page = browser.get(url)
    assert page.status_code == 200
    assert "100:1" in page.text and "not linked" in page.text
    assert f'<option value="{event.id}">Spring 10K' in page.text
    assert browser.get("/connections").text.count(f'href="{url}"') == 1

    linked = browser.post(url, data={"provider_event_ref": "100:1", "event_id": str(event.id)},
                          follow_redirects=False)
    assert linked.status_code == 303
    assert "now+feeds+Spring+10K" in linked.headers["location"]
    page = browser.get(url)
    assert f'<a href="/events/{event.id}">Spring 10K</a>' in page.text
    row = db.query(EventLink).filter_by(connection_id=connection.id).one()
    assert row.event_id == event.id

    # A run of the link keeps it linked: the page says why.
    run = start_run(db, row, SyncStatus.RUNNING)
    db.commit()
    assert "syncing" in browser.get(url).text
    refused = browser.post(f"{url}/{row.id}/unlink")
    assert refused.status_code == 409
    assert "is syncing (run" in refused.text
    run.status = SyncStatus.SUCCEEDED
    db.commit()
    unlinked = browser.post(f"{url}/{row.id}/unlink", follow_redirects=False)
    assert unlinked.status_code == 303
    db.refresh(row)
    assert row.event_id is None


def test_the_link_form_names_what_is_wrong(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make_connection(db, ctx, keyring)
    first, second = make_event(db, tenant, name="First"), make_event(db, tenant, name="Second")
    link(db, ctx, first, connection, "7")
    browser = log_in(client, db, tenant, Role.EVENT_MANAGER)
    url = f"/connections/{connection.id}/links"

    taken = browser.post(url, data={"provider_event_ref": "7", "event_id": str(second.id)})
    assert taken.status_code == 409
    assert "already feeds event &#39;First&#39;" in taken.text
    unchosen = browser.post(url, data={"provider_event_ref": "8", "event_id": ""})
    assert unchosen.status_code == 422 and "event_id: choose an event" in unchosen.text
    blank = browser.post(url, data={"provider_event_ref": " ", "event_id": str(second.id)})
    assert blank.status_code == 422 and 'aria-invalid="true"' in blank.text


def test_a_timing_connections_race_is_linked_to_the_event_it_times(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make_connection(db, ctx, keyring, name="Timer", provider="COPERNICO",
                                 event_ids=["R1:E1"])
    event = make_event(db, tenant, name="Marathon")
    browser = log_in(client, db, tenant, Role.TENANT_ADMIN)
    url = f"/connections/{connection.id}/links"
    page = browser.get(url)
    assert "R1:E1" in page.text and "A timing connection" in page.text
    assert "Create event from it" not in page.text  # it feeds no participants
    refused = browser.post(url, data={"provider_event_ref": "R1", "event_id": str(event.id)})
    assert refused.status_code == 422 and "raceId:eventId" in refused.text
    linked = browser.post(url, data={"provider_event_ref": "R1:E1", "event_id": str(event.id)},
                          follow_redirects=False)
    assert linked.status_code == 303
    row = db.query(EventLink).filter_by(connection_id=connection.id,
                                        provider_event_ref="R1:E1").one()
    assert row.event_id == event.id
    assert ">Marathon</a>" in browser.get(url).text


def test_the_connection_page_shows_which_event_each_provider_event_feeds(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make_connection(db, ctx, keyring, event_ids=["2"])
    link(db, ctx, make_event(db, tenant, name="Race day"), connection, "1",
         provider_event_name="RunSignUp 10K")
    browser = log_in(client, db, tenant, Role.TENANT_ADMIN)
    page = browser.get(f"/connections/{connection.id}")
    section = page.text.split('id="links"')[1]
    assert "RunSignUp 10K" in section and ">Race day</a>" in section
    assert "not linked" in section  # provider event 2
    # Its row offers to link it to an event (the form both pages share).
    row_form = section.split('<input type="hidden" name="provider_event_ref" value="2">')
    assert len(row_form) == 2 and 'name="event_id" required' in row_form[1]


def test_the_event_page_lists_the_provider_events_feeding_it(
    client: TestClient, db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring
) -> None:
    event = make_event(db, tenant, name="Race day", timezone="Europe/Paris")
    row = link(db, ctx, event, make_connection(db, ctx, keyring, name="RSU main"), "100:1",
               provider_event_name="10K")
    row.last_success_at = datetime(2026, 5, 1, 6, 30, tzinfo=UTC)
    row.cursor = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    row.next_run_at = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    browser = log_in(client, db, tenant, Role.VIEWER)
    page = browser.get(f"/events/{event.id}")
    assert page.status_code == 200
    section = page.text.split('id="provider-links"')[1].split("</section>")[0]
    cells = [re.sub(r"<[^>]+>", "", c).strip()
             for c in re.findall(r"<td>(.*?)</td>", section, flags=re.S)]
    assert cells == ["RunSignUp", "RSU main", "10K (100:1)", "2026-05-01 08:30",
                     "2026-05-01 08:00", "2026-05-01 12:30"]
    assert "/connections/" not in section  # a viewer does not see connections

    manager = log_in(client, db, tenant, Role.EVENT_MANAGER)
    other = make_event(db, tenant)
    db.commit()
    assert "No provider event feeds this event" in manager.get(f"/events/{other.id}").text
    section = manager.get(f"/events/{event.id}").text.split('id="provider-links"')[1]
    assert f'href="/connections/{row.connection_id}/links"' in section
