"""The event pages: dates bounded in the forms, and rows holding any stored date shown."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.events.models import Event, EventParticipant
from tests.core.conftest import start_browser_session
from tests.factories import (
    make_category,
    make_participant,
    make_user,
    store_starts_out_of_range,
)


@pytest.fixture
def csrf(client: TestClient, db: Session, tenant: Tenant) -> str:
    token = start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    db.commit()
    return token


@pytest.mark.parametrize("start_at", ["9999-12-31T23:59", "1066-10-14T09:00"])
def test_event_form_refuses_a_start_outside_1900_to_2200_beside_its_input(
    client: TestClient, db: Session, csrf: str, event: Event, start_at: str
) -> None:
    db.commit()  # a refused form rolls back
    for url in ("/events/new", f"/events/{event.id}/edit"):
        response = client.post(url, data={"csrf_token": csrf, "name": "Far",
                                          "start_at": start_at, "timezone": "UTC"})
        assert response.status_code == 422, url
        assert 'aria-describedby="start_at-problem"' in response.text
        assert "between the years 1900 and 2200" in response.text


def test_event_pages_show_a_stored_start_out_of_range(
    client: TestClient, db: Session, csrf: str, event: Event
) -> None:
    store_starts_out_of_range(db, event, make_category(db, event, name="10K"), "-infinity")
    db.commit()
    db.expire_all()

    for url in ("/events", f"/events/{event.id}", f"/events/{event.id}/edit"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert event.name in response.text


def test_walk_up_form_takes_a_source_and_names_the_holder_of_a_taken_one(
    client: TestClient, db: Session, csrf: str, event: Event
) -> None:
    holder = make_participant(db, event, first_name="Ada", last_name="Lovelace",
                              source_provider="RUNSIGNUP", source_id="77")
    db.commit()
    url = f"/events/{event.id}/participants/new"
    form = {"csrf_token": csrf, "first_name": "Grace", "last_name": "Hopper",
            "status": "active"}

    page = client.get(url)
    assert '<option value="RUNSIGNUP" >RunSignUp</option>' in page.text

    taken = client.post(url, data={**form, "source_provider": "RUNSIGNUP", "source_id": "77"})
    assert taken.status_code == 409
    assert 'aria-describedby="source_id-problem"' in taken.text
    assert "Ada Lovelace" in taken.text and str(holder.id) not in taken.text
    assert '<option value="RUNSIGNUP" selected>' in taken.text  # kept, to correct

    unknown = client.post(url, data={**form, "source_provider": "EVENTBRITE",
                                      "source_id": "1"})
    assert unknown.status_code == 422
    assert 'aria-describedby="source_provider-problem"' in unknown.text

    added = client.post(url, data={**form, "source_provider": "HAKU", "source_id": "77"},
                        follow_redirects=False)
    assert added.status_code == 303, added.text


def test_the_participant_pages_show_why_an_entry_is_withdrawn_and_where_it_came_from(
    client: TestClient, db: Session, csrf: str, event: Event,
    transferred: tuple[EventParticipant, EventParticipant],
) -> None:
    old, new = transferred
    db.commit()

    listing = client.get(f"/events/{event.id}").text
    detail = client.get(f"/participants/{old.id}/edit").text
    successor = client.get(f"/participants/{new.id}/edit").text

    assert "Transferred to another registration, 2026-09-01 08:30 UTC" in listing
    assert "from RUNSIGNUP R-1" in listing and "from RUNSIGNUP R-2" in listing
    assert f'href="/participants/{old.id}/edit">an earlier entry' in listing
    assert ("Withdrawn on 2026-09-01 08:30 UTC: Transferred to another registration"
            in detail)
    assert f'/participants/{old.id}/edit">a withdrawn entry' in successor


def test_the_edit_form_of_a_shared_person_asks_whom_a_person_change_is_for(
    client: TestClient, db: Session, csrf: str, event: Event,
    shared: tuple[EventParticipant, EventParticipant],
) -> None:
    first, second = shared
    db.commit()
    url = f"/participants/{second.id}/edit"
    form = client.get(url).text
    assert 'data-shared="1"' in form and "Spring 5K" in form

    values = {"csrf_token": csrf, "first_name": "Augusta", "last_name": "Lovelace",
              "birth_date": "1990-04-02", "email": "ada@lovelace.org", "bib": "9",
              "status": "active"}
    refused = client.post(url, data=values)
    saved = client.post(url, data={**values, "person_scope": "own"}, follow_redirects=False)

    assert refused.status_code == 409 and "shared with 1 other entry" in refused.text
    assert 'id="person_scope-problem"' in refused.text
    assert saved.status_code == 303, saved.text
    db.expire_all()
    assert db.get_one(EventParticipant, first.id).person.first_name == "Ada"
    assert db.get_one(EventParticipant, second.id).person.first_name == "Augusta"
