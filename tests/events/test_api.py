"""The events JSON API: events, categories, participants (lists, filters, sorting, bibs),
the timing-identifier lock, and the audit trail every write leaves."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import event as sa_event
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.models import AuditEntry, Tenant
from racehub.events import service
from racehub.events.models import Event, EventParticipant, ParticipantStatus
from racehub.events.schemas import ParticipantUpdate, PersonUpdate
from tests.factories import (
    auth,
    make_category,
    make_event,
    make_participant,
    make_tenant,
    store_starts_out_of_range,
)

H = dict[str, str]


def problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def error_fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def audit_of(db: Session, target_id: Any, action: str | None = None) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.target_id == str(target_id))
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    return list(db.scalars(stmt.order_by(AuditEntry.id)))


def new_person(first: str = "Ada", last: str = "Lovelace", **extra: Any) -> dict[str, Any]:
    return {"firstName": first, "lastName": last, **extra}


# --- events -------------------------------------------------------------------------------


def test_create_event_answers_in_camel_case_with_naive_start_in_the_event_timezone(
    client: TestClient, headers: H
) -> None:
    response = client.post("/api/events", headers=headers, json={
        "name": "Paris 10K", "startAt": "2026-06-01T09:00:00", "timezone": "Europe/Paris",
        "location": "Paris", "preferredTimingIdentifier": "EPID"})

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "name", "startAt", "timezone", "location", "status",
                         "preferredTimingIdentifier", "preferredTimingIdentifierLockedAt",
                         "archivedAt", "createdAt", "updatedAt"}
    assert instant(body["startAt"]) == datetime(2026, 6, 1, 7, tzinfo=UTC)  # CEST is UTC+2
    assert (body["status"], body["preferredTimingIdentifier"]) == ("draft", "EPID")
    assert body["preferredTimingIdentifierLockedAt"] is None
    read = client.get(f"/api/events/{body['id']}", headers=headers).json()
    assert instant(read["startAt"]) == datetime(2026, 6, 1, 7, tzinfo=UTC)
    assert {k: v for k, v in read.items() if k not in ("startAt", "createdAt", "updatedAt")} \
        == {k: v for k, v in body.items() if k not in ("startAt", "createdAt", "updatedAt")}


def test_start_with_an_offset_is_taken_as_given(client: TestClient, headers: H) -> None:
    response = client.post("/api/events", headers=headers, json={
        "name": "Boston", "startAt": "2026-04-20T09:00:00-04:00", "timezone": "Europe/Paris"})
    assert instant(response.json()["startAt"]) == datetime(2026, 4, 20, 13, tzinfo=UTC)


def test_winter_start_uses_the_winter_offset(client: TestClient, headers: H) -> None:
    response = client.post("/api/events", headers=headers, json={
        "name": "Cross", "startAt": "2026-01-10T09:00:00", "timezone": "America/New_York"})
    assert instant(response.json()["startAt"]) == datetime(2026, 1, 10, 14, tzinfo=UTC)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unknown_timezone_is_refused_naming_the_field(
    client: TestClient, headers: H, event: Event, method: str
) -> None:
    url = "/api/events" if method == "POST" else f"/api/events/{event.id}"
    response = client.request(method, url, headers=headers, json={
        "name": "Trail", "startAt": "2026-05-01T08:00:00", "timezone": "Europe/Pariss"})
    body = problem(response, 422)
    assert error_fields(body) == ["timezone"]
    assert "unknown time zone 'Europe/Pariss'" in body["errors"][0]["message"]


def test_patch_changes_only_the_fields_sent_and_audits_the_difference(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    before = client.get(f"/api/events/{event.id}", headers=headers).json()

    response = client.patch(f"/api/events/{event.id}", headers=headers,
                            json={"location": "Lyon", "status": "open"})

    assert response.status_code == 200, response.text
    after = response.json()
    assert (after["location"], after["status"]) == ("Lyon", "open")
    unchanged = ("name", "timezone", "preferredTimingIdentifier")
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert instant(after["startAt"]) == instant(before["startAt"])
    (entry,) = audit_of(db, event.id, "event.update")
    assert entry.before == {"location": "", "status": "draft"}
    assert entry.after == {"location": "Lyon", "status": "open"}


def test_patch_localizes_a_naive_start_in_the_event_or_the_new_timezone(
    client: TestClient, headers: H, event: Event
) -> None:
    url = f"/api/events/{event.id}"
    same_zone = client.patch(url, headers=headers, json={"startAt": "2026-07-14T10:00:00"})
    assert instant(same_zone.json()["startAt"]) == datetime(2026, 7, 14, 8, tzinfo=UTC)
    new_zone = client.patch(url, headers=headers, json={"startAt": "2026-07-14T10:00:00",
                                                       "timezone": "America/New_York"})
    assert instant(new_zone.json()["startAt"]) == datetime(2026, 7, 14, 14, tzinfo=UTC)


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
                                   "1899-12-31T23:59:59", "2201-01-01T00:00:00Z"])
def test_a_start_outside_1900_to_2200_is_422_naming_start_at(
    client: TestClient, db: Session, headers: H, event: Event, value: str
) -> None:
    for method, url, field in [
        ("POST", "/api/events", "startAt"),
        ("PATCH", f"/api/events/{event.id}", "startAt"),
        ("POST", f"/api/events/{event.id}/categories", "startAt"),
    ]:
        body = problem(client.request(method, url, headers=headers,
                                      json={"name": "Far", "startAt": value}), 422)
        assert error_fields(body) == [field], (method, url)
        assert "between the years 1900 and 2200" in body["errors"][0]["message"]
    if not value.startswith(("1899", "2201")):  # a birth date may be older than 1900
        person = new_person(birthDate=value[:10])
        body = problem(client.post(f"/api/events/{event.id}/participants", headers=headers,
                                   json={"person": person}), 422)
        assert error_fields(body) == ["person.birthDate"]
    assert client.get("/api/events", headers=headers).status_code == 200


def test_the_bounds_themselves_are_accepted(
    client: TestClient, headers: H, event: Event
) -> None:
    for value in ("1900-01-01T00:00:00Z", "2200-12-31T23:59:59-14:00"):
        response = client.post("/api/events", headers=headers,
                               json={"name": "Edge", "startAt": value})
        assert response.status_code == 201, response.text


def test_a_stored_start_out_of_range_never_breaks_reading(
    client: TestClient, db: Session, tenant: Tenant, headers: H, event: Event
) -> None:
    # Written before input was bounded (or by hand): year 10000 and "infinity", which no
    # Python datetime holds. They read as 9999-12-30 and can be corrected through the API.
    store_starts_out_of_range(db, event, make_category(db, event, name="10K"), "infinity")
    db.expire_all()

    listed = client.get("/api/events", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [e["startAt"] for e in listed.json()["items"]] == ["9999-12-30T00:00:00Z"]
    assert client.get(f"/api/events/{event.id}", headers=headers).status_code == 200
    (cat,) = client.get(f"/api/events/{event.id}/categories", headers=headers).json()
    assert cat["startAt"] == "9999-12-30T00:00:00Z"
    fixed = client.patch(f"/api/events/{event.id}", headers=headers,
                         json={"startAt": "2027-05-01T08:00:00Z"})
    assert fixed.status_code == 200, fixed.text
    assert instant(fixed.json()["startAt"]) == datetime(2027, 5, 1, 8, tzinfo=UTC)


def test_events_stored_out_of_range_are_each_listed_once_page_by_page(
    client: TestClient, db: Session, tenant: Tenant, headers: H
) -> None:
    # They all read as 9999-12-30 or 0001-01-02: the list must order them as they read,
    # or a page ending on one would skip or repeat the others.
    events = [make_event(db, tenant) for _ in range(6)]
    for ev, stored in zip(events, ["infinity", "10000-01-01Z", "20000-01-01Z", "-infinity",
                                   "0044-03-15 BC", "2026-05-01Z"], strict=True):
        db.execute(text("UPDATE events SET start_at = CAST(:v AS timestamptz) WHERE id = :id"),
                   {"v": stored, "id": ev.id})
    db.expire_all()
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/events", headers=headers, params=params)
        assert page.status_code == 200, page.text
        seen += [e["id"] for e in page.json()["items"]]
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(str(e.id) for e in events)


@pytest.mark.parametrize("field", ["name", "startAt", "timezone", "status",
                                   "preferredTimingIdentifier"])
def test_patch_refuses_null_for_required_fields(
    client: TestClient, headers: H, event: Event, field: str
) -> None:
    body = problem(client.patch(f"/api/events/{event.id}", headers=headers, json={field: None}),
                   422)
    assert error_fields(body) == [field]


def test_event_list_is_keyset_paged_newest_start_first(
    client: TestClient, db: Session, tenant: Tenant, headers: H
) -> None:
    start = datetime(2026, 6, 1, 8, tzinfo=UTC)
    events = [make_event(db, tenant, start_at=start + timedelta(days=d)) for d in (0, 1, 1, 2, 1)]
    make_event(db, make_tenant(db))  # another tenant's event never shows
    expected = [str(e.id) for e in sorted(events, key=lambda e: (e.start_at, e.id),
                                           reverse=True)]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/events", headers=headers, params=params).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == expected


def test_event_list_filters_by_text_and_status(
    client: TestClient, db: Session, tenant: Tenant, headers: H
) -> None:
    lyon = make_event(db, tenant, name="Night Run", location="Lyon")
    make_event(db, tenant, name="Day Run", location="Paris", status="open")

    def names(**params: str) -> list[str]:
        page = client.get("/api/events", headers=headers, params=params).json()
        return [e["name"] for e in page["items"]]

    assert names(q="lyon") == [lyon.name]
    assert names(q="night") == [lyon.name]
    assert names(status="open") == ["Day Run"]
    assert names(q="%") == []


# --- categories ---------------------------------------------------------------------------


def test_categories_are_created_and_listed_by_name(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    url = f"/api/events/{event.id}/categories"
    created = client.post(url, headers=headers, json={
        "name": "Half", "distanceM": 21097, "bibRangeStart": 1, "bibRangeEnd": 999})
    client.post(url, headers=headers, json={"name": "10K"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["eventId"], body["distanceM"], body["bibRangeStart"], body["bibRangeEnd"]) == (
        str(event.id), 21097, 1, 999)
    assert [c["name"] for c in client.get(url, headers=headers).json()] == ["10K", "Half"]
    (entry,) = audit_of(db, body["id"], "category.create")
    assert entry.after is not None and entry.after["name"] == "Half"


def test_duplicate_category_name_in_an_event_is_409_naming_name(
    client: TestClient, db: Session, headers: H, event: Event, tenant: Tenant
) -> None:
    url = f"/api/events/{event.id}/categories"
    assert client.post(url, headers=headers, json={"name": "10K"}).status_code == 201
    body = problem(client.post(url, headers=headers, json={"name": "10K"}), 409)
    assert error_fields(body) == ["name"]
    # The same name in another event is fine.
    other = make_event(db, tenant)
    assert client.post(f"/api/events/{other.id}/categories", headers=headers,
                       json={"name": "10K"}).status_code == 201


def test_bib_range_ending_below_its_start_is_422_naming_the_end(
    client: TestClient, headers: H, event: Event
) -> None:
    url = f"/api/events/{event.id}/categories"
    body = problem(client.post(url, headers=headers, json={
        "name": "5K", "bibRangeStart": 500, "bibRangeEnd": 100}), 422)
    assert error_fields(body) == ["bibRangeEnd"]
    assert "bibRangeEnd: must not be below the range" in body["detail"]
    one_bib = client.post(url, headers=headers, json={
        "name": "5K", "bibRangeStart": 100, "bibRangeEnd": 100})
    assert one_bib.status_code == 201


# --- creating participants ----------------------------------------------------------------


def test_participant_with_a_new_person(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    category = make_category(db, event, "10K")
    response = client.post(f"/api/events/{event.id}/participants", headers=headers, json={
        "person": new_person(birthDate="1915-12-10", gender="F", email="ada@example.com"),
        "bib": " 42 ", "registrationId": "R-1", "categoryId": str(category.id), "team": " "})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["person"]["firstName"] == "Ada"
    assert body["person"]["birthDate"] == "1915-12-10"
    assert (body["bib"], body["registrationId"], body["team"]) == ("42", "R-1", None)
    assert (body["categoryId"], body["categoryName"]) == (str(category.id), "10K")
    assert body["status"] == "active"
    (entry,) = audit_of(db, body["id"], "participant.create")
    assert entry.after is not None
    assert (entry.after["bib"], entry.after["person_id"]) == ("42", body["person"]["id"])


def test_participant_for_an_existing_person_reuses_it(
    client: TestClient, db: Session, headers: H, event: Event, tenant: Tenant
) -> None:
    first = make_participant(db, event, first_name="Grace", last_name="Hopper")
    other_event = make_event(db, tenant)
    response = client.post(f"/api/events/{other_event.id}/participants", headers=headers,
                           json={"personId": str(first.person_id)})
    assert response.status_code == 201, response.text
    assert response.json()["person"]["id"] == str(first.person_id)
    assert response.json()["person"]["lastName"] == "Hopper"


@pytest.mark.parametrize("payload", [
    {"person": new_person(), "personId": "00000000-0000-4000-8000-000000000000"},
    {"bib": "1"},
])
def test_participant_needs_exactly_one_of_person_and_person_id(
    client: TestClient, headers: H, event: Event, payload: dict[str, Any]
) -> None:
    body = problem(client.post(f"/api/events/{event.id}/participants", headers=headers,
                               json=payload), 422)
    assert "give exactly one of person (new) or personId (existing)" in body["detail"]


def test_participant_refuses_another_tenants_person_and_category(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    foreign_event = make_event(db, make_tenant(db))
    foreign_category = make_category(db, foreign_event)
    foreign_ep = make_participant(db, foreign_event)
    url = f"/api/events/{event.id}/participants"

    by_person = problem(client.post(url, headers=headers,
                                    json={"personId": str(foreign_ep.person_id)}), 422)
    by_category = problem(client.post(url, headers=headers, json={
        "person": new_person(), "categoryId": str(foreign_category.id)}), 404)

    assert error_fields(by_person) == ["personId"]
    assert error_fields(by_category) == ["categoryId"]
    assert client.get(url, headers=headers, params={"count": True}).json()["total"] == 0


def test_participant_refuses_a_category_of_another_event(
    client: TestClient, db: Session, headers: H, event: Event, tenant: Tenant
) -> None:
    other_category = make_category(db, make_event(db, tenant))
    ep = make_participant(db, event)
    created = client.post(f"/api/events/{event.id}/participants", headers=headers, json={
        "person": new_person(), "categoryId": str(other_category.id)})
    patched = client.patch(f"/api/participants/{ep.id}", headers=headers,
                           json={"categoryId": str(other_category.id)})
    assert error_fields(problem(created, 404)) == ["categoryId"]
    assert error_fields(problem(patched, 404)) == ["categoryId"]


# --- bibs ---------------------------------------------------------------------------------


def create_ep(client: TestClient, headers: H, event_id: Any, **fields: Any) -> Response:
    payload = {"person": new_person(fields.pop("first", "Grace"), fields.pop("last", "Hopper")),
               **fields}
    return client.post(f"/api/events/{event_id}/participants", headers=headers, json=payload)


def test_bib_taken_by_an_active_participant_is_409_naming_them(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    holder = make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="42",
                              registration_id="R-7")

    body = problem(create_ep(client, headers, event.id, bib="42"), 409)

    assert error_fields(body) == ["bib"]
    for part in ("bib 42", "Ada Lovelace", "registration R-7"):
        assert part in body["detail"]
    assert str(holder.id) not in body["detail"]  # people are named, not their ids


def test_a_source_already_held_is_409_naming_the_participant_holding_it(
    client: TestClient, db: Session, tenant: Tenant, headers: H, event: Event
) -> None:
    first = create_ep(client, headers, event.id, first="Ada", last="Lovelace",
                      sourceProvider="RUNSIGNUP", sourceId="123")
    assert first.status_code == 201, first.text
    other_event = make_event(db, tenant, name="Lyon Trail")

    # Anywhere in the tenant: a sync matches entries by the provider's id alone.
    for event_id in (event.id, other_event.id):
        body = problem(create_ep(client, headers, event_id, sourceProvider="RUNSIGNUP",
                                 sourceId="123"), 409)
        assert error_fields(body) == ["sourceId"]
        for part in ("RUNSIGNUP 123", "Ada Lovelace", "Paris 10K"):
            assert part in body["detail"]
        assert first.json()["id"] not in body["detail"]
    # Another provider's record with the same id, and another tenant, are free.
    assert create_ep(client, headers, event.id, sourceProvider="HAKU",
                     sourceId="123").status_code == 201
    stranger = make_tenant(db)
    assert create_ep(client, auth(db, stranger), make_event(db, stranger).id,
                     sourceProvider="RUNSIGNUP", sourceId="123").status_code == 201


@pytest.mark.parametrize(("source", "field", "message"), [
    ({"sourceProvider": "EVENTBRITE", "sourceId": "1"}, "sourceProvider",
     "unknown provider 'EVENTBRITE'; use one of RUNSIGNUP, RACE_ROSTER"),
    ({"sourceProvider": "RUNSIGNUP"}, "sourceId", "give both sourceProvider and sourceId"),
    ({"sourceId": "1"}, "sourceProvider", "give both sourceProvider and sourceId"),
])
def test_a_source_names_a_known_provider_and_an_id(
    client: TestClient, headers: H, event: Event, source: dict[str, str], field: str,
    message: str,
) -> None:
    body = problem(create_ep(client, headers, event.id, **source), 422)
    assert error_fields(body) == [field]
    assert message in body["errors"][0]["message"]


def test_a_provider_name_is_taken_in_any_case(
    client: TestClient, headers: H, event: Event
) -> None:
    created = create_ep(client, headers, event.id, sourceProvider="runsignup", sourceId="9")
    assert created.json()["sourceProvider"] == "RUNSIGNUP"


def test_withdrawn_participant_frees_their_bib(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    holder = make_participant(db, event, bib="42")
    withdrawn = client.patch(f"/api/participants/{holder.id}", headers=headers,
                             json={"status": "withdrawn"})
    assert withdrawn.status_code == 200

    taker = create_ep(client, headers, event.id, bib="42")

    assert taker.status_code == 201, taker.text
    # Coming back is refused while someone else holds the number.
    back = client.patch(f"/api/participants/{holder.id}", headers=headers,
                        json={"status": "active"})
    assert error_fields(problem(back, 409)) == ["bib"]
    assert "Grace Hopper" in back.json()["detail"]
    assert taker.json()["id"] not in back.json()["detail"]


def test_withdrawn_participant_may_keep_a_bib_someone_active_holds(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    make_participant(db, event, bib="42")
    response = create_ep(client, headers, event.id, bib="42", status="withdrawn")
    assert response.status_code == 201, response.text


def test_same_bib_in_another_event_is_fine(
    client: TestClient, db: Session, headers: H, event: Event, tenant: Tenant
) -> None:
    make_participant(db, event, bib="42")
    other = make_event(db, tenant)
    assert create_ep(client, headers, other.id, bib="42").status_code == 201


def test_patch_bib_checks_others_but_not_the_participant_itself(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    holder = make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="1")
    ep = make_participant(db, event, bib="2")
    url = f"/api/participants/{ep.id}"
    assert client.patch(url, headers=headers, json={"bib": "2", "team": "Harriers"}) \
        .status_code == 200
    refused = problem(client.patch(url, headers=headers, json={"bib": "1"}), 409)
    assert error_fields(refused) == ["bib"]
    for part in ("bib 1", "Ada Lovelace"):
        assert part in refused["detail"]
    assert str(holder.id) not in refused["detail"]
    assert client.patch(url, headers=headers, json={"bib": None}).json()["bib"] is None


# --- updating participants ----------------------------------------------------------------


def test_patch_person_fields_and_audit_the_difference(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    ep = make_participant(db, event, first_name="Ada", last_name="Lovelace")

    response = client.patch(f"/api/participants/{ep.id}", headers=headers, json={
        "person": {"city": "London", "email": "ada@example.com", "firstName": "Augusta"}})

    assert response.status_code == 200, response.text
    person = response.json()["person"]
    assert (person["firstName"], person["lastName"], person["city"], person["email"]) == (
        "Augusta", "Lovelace", "London", "ada@example.com")
    (entry,) = audit_of(db, ep.id, "participant.update")
    assert entry.before == {"person.first_name": "Ada", "person.city": None,
                            "person.email": None}
    assert entry.after == {"person.first_name": "Augusta", "person.city": "London",
                           "person.email": "ada@example.com"}


def test_patch_that_changes_nothing_leaves_no_audit_entry(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    ep = make_participant(db, event, bib="5")
    response = client.patch(f"/api/participants/{ep.id}", headers=headers, json={"bib": "5"})
    assert response.status_code == 200
    assert audit_of(db, ep.id, "participant.update") == []


@pytest.mark.parametrize(("payload", "field"), [
    ({"person": {"firstName": None}}, "person.firstName"),
    ({"person": {"lastName": None}}, "person.lastName"),
    ({"status": None}, "status"),
    ({"person": {"email": "nope"}}, "person.email"),
    ({"person": {"gender": "Q"}}, "person.gender"),
])
def test_patch_participant_refuses_invalid_values_naming_the_field(
    client: TestClient, db: Session, headers: H, event: Event, payload: dict[str, Any],
    field: str,
) -> None:
    ep = make_participant(db, event)
    body = problem(client.patch(f"/api/participants/{ep.id}", headers=headers, json=payload),
                   422)
    assert error_fields(body) == [field]


# --- timing identifier lock ---------------------------------------------------------------


@pytest.fixture
def locked_event(db: Session, ctx: TenantContext, event: Event) -> Event:
    assert service.lock_timing_identifier(db, ctx, event=event)
    db.flush()
    return event


def test_changing_a_locked_timing_identifier_needs_acknowledgement(
    client: TestClient, db: Session, headers: H, locked_event: Event
) -> None:
    url = f"/api/events/{locked_event.id}"

    body = problem(client.patch(url, headers=headers,
                                json={"preferredTimingIdentifier": "EPID"}), 409)

    assert error_fields(body) == ["preferredTimingIdentifier"]
    assert "acknowledgeOverride=true" in body["detail"]
    read = client.get(url, headers=headers).json()
    assert read["preferredTimingIdentifier"] == "PERSON_ID"
    assert read["preferredTimingIdentifierLockedAt"] is not None
    assert audit_of(db, locked_event.id, "event.timing_identifier_override") == []


def test_resending_the_locked_timing_identifier_is_no_change(
    client: TestClient, headers: H, locked_event: Event
) -> None:
    response = client.patch(f"/api/events/{locked_event.id}", headers=headers,
                            json={"preferredTimingIdentifier": "PERSON_ID", "name": "Renamed"})
    assert response.status_code == 200, response.text
    assert response.json()["preferredTimingIdentifierLockedAt"] is not None


def test_acknowledged_override_changes_identifier_clears_lock_and_is_audited(
    client: TestClient, db: Session, headers: H, locked_event: Event
) -> None:
    locked_at = locked_event.preferred_timing_identifier_locked_at

    response = client.patch(f"/api/events/{locked_event.id}", headers=headers, json={
        "preferredTimingIdentifier": "REGISTRATION_ID", "acknowledgeOverride": True})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["preferredTimingIdentifier"] == "REGISTRATION_ID"
    assert body["preferredTimingIdentifierLockedAt"] is None
    (override,) = audit_of(db, locked_event.id, "event.timing_identifier_override")
    assert override.before == {"preferred_timing_identifier": "PERSON_ID",
                               "locked_at": str(locked_at)}
    assert override.after == {"preferred_timing_identifier": "REGISTRATION_ID"}
    assert override.actor_token_id is not None
    (change,) = audit_of(db, locked_event.id, "event.update")
    assert change.after == {"preferred_timing_identifier": "REGISTRATION_ID",
                            "preferred_timing_identifier_locked_at": None}


def test_unlocked_timing_identifier_changes_without_acknowledgement(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    response = client.patch(f"/api/events/{event.id}", headers=headers,
                            json={"preferredTimingIdentifier": "EPID"})
    assert response.status_code == 200
    assert audit_of(db, event.id, "event.timing_identifier_override") == []


# --- participant list: filters, sorting, keyset paging ------------------------------------


@pytest.fixture
def small_field(db: Session, ctx: TenantContext, event: Event) -> dict[str, Any]:
    five_k, ten_k = make_category(db, event, "5K"), make_category(db, event, "10K")
    eps = {
        "lovelace": make_participant(db, event, first_name="Ada", last_name="Lovelace",
                                     bib="10", registration_id="R-100",
                                     category_id=five_k.id),
        "byron": make_participant(db, event, first_name="Ada", last_name="Byron", bib="11",
                                  registration_id="R-110", category_id=ten_k.id),
        "hopper": make_participant(db, event, first_name="Grace", last_name="Hopper",
                                   bib="100", registration_id="R-200", category_id=ten_k.id),
        "turing": make_participant(db, event, first_name="Alan", last_name="Turing", bib="1",
                                   status=ParticipantStatus.WITHDRAWN, category_id=five_k.id),
    }
    service.update_participant(db, ctx, participant_id=eps["hopper"].id, data=ParticipantUpdate(
        person=PersonUpdate(email="grace@navy.example")))
    return {"eps": eps, "5K": five_k, "10K": ten_k}


@pytest.mark.parametrize(("params", "expected"), [
    ({"q": "ada"}, ["byron", "lovelace"]),
    ({"q": "ADA LOVE"}, ["lovelace"]),
    ({"q": "lovelace ada"}, ["lovelace"]),  # last name first, as lists are often read
    ({"q": "10"}, ["lovelace"]),  # bib: exact, so not 100 nor R-100
    ({"q": "R-200"}, ["hopper"]),  # registration id: exact
    ({"q": "navy"}, ["hopper"]),  # part of the e-mail
    ({"q": "%"}, []),  # LIKE wildcards are literal
    ({"q": "_"}, []),
    ({"status": "withdrawn"}, ["turing"]),
    ({"status": "active"}, ["byron", "hopper", "lovelace"]),
    ({"categoryId": "5K"}, ["lovelace", "turing"]),
    ({"categoryId": "10K", "q": "ada"}, ["byron"]),
    ({"q": "  "}, ["byron", "hopper", "lovelace", "turing"]),
])
def test_participant_filters(
    client: TestClient, headers: H, event: Event, small_field: dict[str, Any],
    params: dict[str, str], expected: list[str],
) -> None:
    if "categoryId" in params:
        params = {**params, "categoryId": str(small_field[params["categoryId"]].id)}
    names = {str(ep.id): key for key, ep in small_field["eps"].items()}

    page = client.get(f"/api/events/{event.id}/participants", headers=headers,
                      params={**params, "limit": 2, "sort": "last_name", "count": True}).json()
    every = page["items"]
    while page["nextCursor"]:
        page = client.get(f"/api/events/{event.id}/participants", headers=headers,
                          params={**params, "limit": 2, "sort": "last_name",
                                  "cursor": page["nextCursor"], "count": True}).json()
        every += page["items"]

    assert [names[p["id"]] for p in every] == expected
    assert page["total"] == len(expected)


def _sort_key(sort: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The order the API promises, written independently of the SQL."""
    if sort == "bib":  # missing last, then numeric-looking order ("9" < "10")
        return lambda p: (p["bib"] is None, len(p["bib"] or ""), p["bib"] or "", p["id"])
    if sort == "last_name":
        # the person, then the EP: the order of the persons name index the page walks
        return lambda p: (p["last"].lower(), p["first"].lower(), p["person_id"], p["id"])
    if sort == "first_name":
        return lambda p: (p["first"].lower(), p["last"].lower(), p["person_id"], p["id"])
    if sort == "registration_id":
        return lambda p: (p["reg"] or "", p["id"])
    return lambda p: (p["created_at"], p["id"])


@pytest.fixture
def crowd(db: Session, event: Event) -> list[dict[str, Any]]:
    """30 participants with many ties in every sort column, so that paging must rely on the
    id tie-breaker."""
    rng = random.Random(20260601)
    lasts = ["smith", "Smith", "jones", "Brown", "brown", "adams", "Zed"]
    firsts = ["ada", "Ada", "bob", "Cy", "cy"]
    bibs = iter(rng.sample([str(n) for n in (1, 2, 3, 9, 10, 11, 19, 20, 99, 100, 101, 110,
                                              999, 1000, 1001, 5, 50, 500)], 18))
    regs = [None, "R1", "R2", "R10", "R2", "A-7"]
    created = [datetime(2026, 5, 1, tzinfo=UTC) + timedelta(minutes=m) for m in (0, 0, 3, 7)]
    rows = []
    for i in range(30):
        withdrawn = i % 10 == 9
        bib = next(bibs, None) if i % 5 != 4 else None
        if withdrawn:
            bib = rows[0]["bib"]  # a withdrawn EP may repeat an active bib: a tie
        ep = make_participant(
            db, event, first_name=rng.choice(firsts), last_name=rng.choice(lasts), bib=bib,
            registration_id=rng.choice(regs),
            status=ParticipantStatus.WITHDRAWN if withdrawn else ParticipantStatus.ACTIVE)
        at = rng.choice(created)
        db.execute(update(EventParticipant).where(EventParticipant.id == ep.id)
                   .values(created_at=at))
        rows.append({"id": ep.id, "person_id": ep.person_id, "bib": bib, "reg": ep.registration_id,
                     "first": ep.person.first_name, "last": ep.person.last_name,
                     "created_at": at})
    db.flush()
    return rows


@pytest.mark.parametrize("desc", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort", ["bib", "last_name", "first_name", "registration_id",
                                  "created_at"])
def test_walking_all_pages_gives_every_participant_once_in_order(
    client: TestClient, headers: H, event: Event, crowd: list[dict[str, Any]], sort: str,
    desc: bool,
) -> None:
    expected = [str(p["id"]) for p in sorted(crowd, key=_sort_key(sort), reverse=desc)]
    seen: list[str] = []
    params: dict[str, Any] = {"sort": sort, "desc": desc, "limit": 7, "count": True}
    pages = 0
    while True:
        page = client.get(f"/api/events/{event.id}/participants", headers=headers,
                          params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == 30
        seen += [p["id"] for p in body["items"]]
        pages += 1
        if body["nextCursor"] is None:
            break
        params["cursor"] = body["nextCursor"]
        assert pages < 10, "paging does not end"
    assert seen == expected
    assert pages == 5


def test_names_sort_and_match_without_regard_to_accents(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    for last in ("Zed", "Émile", "Burton", "Bärer", "Eaton", "Barnes", "Straße"):
        make_participant(db, event, first_name="Al", last_name=last)
    url = f"/api/events/{event.id}/participants"

    def last_names(**params: str) -> list[str]:
        response = client.get(url, headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [p["person"]["lastName"] for p in response.json()["items"]]

    # Byte order put "Bärer" after "Burton" and "Émile" after "Zed".
    assert last_names(sort="last_name") == [
        "Bärer", "Barnes", "Burton", "Eaton", "Émile", "Straße", "Zed"]
    assert last_names(q="barer") == last_names(q="BÄRER") == ["Bärer"]
    assert last_names(q="emile") == ["Émile"]
    assert last_names(q="strasse") == ["Straße"]


def test_cursor_of_one_sort_is_refused_by_another(
    client: TestClient, headers: H, event: Event, crowd: list[dict[str, Any]]
) -> None:
    url = f"/api/events/{event.id}/participants"
    cursor = client.get(url, headers=headers, params={"sort": "registration_id",
                                                      "limit": 3}).json()["nextCursor"]
    response = client.get(url, headers=headers, params={"sort": "bib", "cursor": cursor})
    assert error_fields(problem(response, 422)) == ["cursor"]


def test_unknown_sort_is_422(client: TestClient, headers: H, event: Event) -> None:
    response = client.get(f"/api/events/{event.id}/participants", headers=headers,
                          params={"sort": "age"})
    assert error_fields(problem(response, 422)) == ["sort"]


# --- query count --------------------------------------------------------------------------


@contextmanager
def count_queries(db: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    connection = db.connection()

    def before_cursor_execute(*args: Any) -> None:
        statements.append(args[2])

    sa_event.listen(connection, "before_cursor_execute", before_cursor_execute)
    try:
        yield statements
    finally:
        sa_event.remove(connection, "before_cursor_execute", before_cursor_execute)


def test_participant_list_queries_do_not_grow_with_the_page(
    client: TestClient, db: Session, tenant: Tenant, headers: H
) -> None:
    small, large = make_event(db, tenant), make_event(db, tenant)
    for target, count in ((small, 5), (large, 50)):
        category = make_category(db, target)
        for n in range(count):
            make_participant(db, target, bib=str(n + 1), category_id=category.id)
    db.commit()
    client.get("/api/me", headers=headers)  # the token's first use writes last_used_at

    counts = {}
    for target in (small, large):
        with count_queries(db) as statements:
            response = client.get(f"/api/events/{target.id}/participants", headers=headers,
                                  params={"limit": 50})
        assert response.status_code == 200
        assert all(p["categoryName"] for p in response.json()["items"])
        counts[target.id] = len(statements)

    assert counts[large.id] == counts[small.id]
    assert counts[large.id] <= 6



def test_crowd_fixture_has_ties_in_every_sort_column(crowd: list[dict[str, Any]]) -> None:
    for column in ("bib", "reg", "created_at"):
        values = [p[column] for p in crowd]
        assert len(set(values)) < len(values), column
    lowered = [(p["last"].lower(), p["first"].lower()) for p in crowd]
    assert len(set(lowered)) < len(lowered)
    assert any(p["bib"] is None for p in crowd)


def test_participant_list_counts_only_when_asked(
    client: TestClient, headers: H, event: Event, crowd: list[dict[str, Any]]
) -> None:
    url = f"/api/events/{event.id}/participants"
    assert client.get(url, headers=headers, params={"limit": 5}).json()["total"] is None
    assert client.get(url, headers=headers, params={"limit": 5, "count": True}).json()[
        "total"] == len(crowd)


# --- why an entry is withdrawn, and where it came from -------------------------------------


def test_the_participant_reads_say_why_and_when_an_entry_was_withdrawn_and_its_source(
    client: TestClient, headers: H, event: Event,
    transferred: tuple[EventParticipant, EventParticipant],
) -> None:
    old, new = transferred

    listed = client.get(f"/api/events/{event.id}/participants", headers=headers,
                        params={"sort": "bib"}).json()["items"]
    one = client.get(f"/api/participants/{old.id}", headers=headers).json()

    by_id = {p["id"]: p for p in listed}
    for shown in (by_id[str(old.id)], one):
        assert shown["status"] == "withdrawn"
        assert shown["withdrawnReason"] == "Transferred to another registration"
        assert instant(shown["withdrawnAt"]) == datetime(2026, 9, 1, 8, 30, tzinfo=UTC)
        assert (shown["sourceProvider"], shown["sourceId"]) == ("RUNSIGNUP", "R-1")
        assert shown["transferredFromId"] is None
    successor = by_id[str(new.id)]
    assert successor["transferredFromId"] == str(old.id) and successor["bib"] == "21"
    assert successor["withdrawnAt"] is None and successor["withdrawnReason"] is None


# --- a created entry's person is matched as the sync matches it -----------------------------


def test_a_created_entry_reuses_the_matching_person_and_says_why(
    client: TestClient, db: Session, tenant: Tenant, headers: H, event: Event
) -> None:
    earlier_event = make_event(db, tenant)

    def create(event_id: object, **person: Any) -> dict[str, Any]:
        match = person.pop("match_person", None)
        body: dict[str, Any] = {"person": {"firstName": "Émile", "lastName": "Zola", **person}}
        if match is not None:
            body["matchPerson"] = match
        response = client.post(f"/api/events/{event_id}/participants", json=body,
                               headers=headers)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    first = create(earlier_event.id, email="emile@zola.fr", birthDate="1990-04-02")
    by_email = create(event.id, firstName="E.", email="EMILE@zola.fr",
                      birthDate="1990-04-02")
    by_name = create(event.id, firstName="emile", lastName="ZOLÀ", birthDate="1990-04-02")
    refused = create(event.id, birthDate="1990-04-02", match_person=False)
    undated = create(event.id)

    assert first["personMatch"] == "new"
    assert (by_email["personMatch"], by_email["person"]["id"]) == (
        "email_birth_date", first["person"]["id"])
    assert by_email["personMatchReason"] == "matched an existing person by e-mail and birth date"
    # A matched person keeps its values: the name typed in did not rename it.
    assert by_email["person"]["firstName"] == "Émile"
    assert (by_name["personMatch"], by_name["person"]["id"]) == (
        "name_birth_date", first["person"]["id"])
    assert refused["personMatch"] == "new" and refused["person"]["id"] != first["person"]["id"]
    assert undated["personMatch"] == "new" and undated["person"]["id"] != first["person"]["id"]
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "participant.create")
                         .order_by(AuditEntry.id)).all()
    assert [e.after["person_match"] for e in entries[-5:]] == [  # type: ignore[index]
        "new", "email_birth_date", "name_birth_date", "new", "new"]


def test_an_entry_given_an_existing_person_says_so(
    client: TestClient, db: Session, tenant: Tenant, headers: H, event: Event
) -> None:
    someone = make_participant(db, event, first_name="Grace")
    other = make_event(db, tenant)

    response = client.post(f"/api/events/{other.id}/participants", headers=headers,
                           json={"personId": str(someone.person_id)})

    assert response.status_code == 201, response.text
    assert response.json()["personMatch"] == "given"
    assert response.json()["person"]["id"] == str(someone.person_id)


# --- editing a person other entries share ----------------------------------------------------


def test_a_person_edit_of_a_shared_person_is_refused_until_it_says_for_whom(
    client: TestClient, db: Session, headers: H,
    shared: tuple[EventParticipant, EventParticipant],
) -> None:
    first, second = shared

    refused = client.patch(f"/api/participants/{second.id}", headers=headers,
                           json={"person": {"firstName": "Augusta"}})
    # An entry field, or person values as they are, need no choice.
    entry_only = client.patch(f"/api/participants/{second.id}", headers=headers,
                              json={"bib": "10", "person": {"lastName": "Lovelace"}})

    body = problem(refused, 409)
    assert error_fields(body) == ["personScope"]
    assert "shared with 1 other entry" in body["detail"] and "'Spring 5K' (bib 5)" in body["detail"]
    assert entry_only.status_code == 200, entry_only.text
    assert entry_only.json()["personSharedWith"] == 0
    db.expire_all()
    assert db.get_one(EventParticipant, first.id).person.first_name == "Ada"


def test_a_shared_person_edit_changes_every_entry_and_says_how_many(
    client: TestClient, db: Session, headers: H,
    shared: tuple[EventParticipant, EventParticipant],
) -> None:
    first, second = shared

    response = client.patch(f"/api/participants/{second.id}", headers=headers, json={
        "person": {"firstName": "Augusta Ada"}, "personScope": "shared"})

    assert response.status_code == 200, response.text
    assert response.json()["personSharedWith"] == 1
    assert response.json()["person"]["id"] == str(first.person_id)
    other = client.get(f"/api/participants/{first.id}", headers=headers).json()
    assert other["person"]["firstName"] == "Augusta Ada"
    [entry] = db.scalars(select(AuditEntry).where(
        AuditEntry.action == "participant.shared_person_edit")).all()
    assert entry.after == {"person_id": str(first.person_id), "fields": ["first_name"],
                           "other_entries": [str(first.id)]}


def test_an_own_person_edit_gives_the_entry_its_own_person_and_leaves_the_others(
    client: TestClient, db: Session, headers: H,
    shared: tuple[EventParticipant, EventParticipant],
) -> None:
    first, second = shared
    old_person = first.person_id

    response = client.patch(f"/api/participants/{second.id}", headers=headers, json={
        "person": {"firstName": "Ann", "email": "ann@lovelace.org"}, "personScope": "own"})

    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["personSharedWith"] == 0 and edited["person"]["id"] != str(old_person)
    assert (edited["person"]["firstName"], edited["person"]["email"],
            edited["person"]["lastName"], edited["person"]["birthDate"]) == (
        "Ann", "ann@lovelace.org", "Lovelace", "1990-04-02")
    other = client.get(f"/api/participants/{first.id}", headers=headers).json()
    assert (other["person"]["id"], other["person"]["firstName"],
            other["person"]["email"]) == (str(old_person), "Ada", "ada@lovelace.org")
    [entry] = db.scalars(select(AuditEntry).where(
        AuditEntry.action == "participant.own_person")).all()
    assert entry.before == {"person_id": str(old_person)}
    # Alone now: the next edit of its person needs no choice.
    again = client.patch(f"/api/participants/{second.id}", headers=headers,
                         json={"person": {"firstName": "Anne"}})
    assert again.status_code == 200, again.text
