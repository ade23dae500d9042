"""An event's and a category's whole life: edit, archive, delete (refused naming why, and
never racing a writer into the event), and names and dates people cannot get wrong."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.audit import AuditEntry
from racehub.core.context import TenantContext
from racehub.core.models import Role, Tenant
from racehub.events import service
from racehub.events.exceptions import CategoryInUse, EventInUse, EventNotFound
from racehub.events.models import Category, Event, EventParticipant, ParticipantStatus
from racehub.events.schemas import CategoryUpdate, ParticipantCreate, PersonIn
from racehub.jobs.models import JobRun
from racehub.sync.models import CategoryLink
from racehub.timing.models import Result, ResultStatus
from tests.concurrency import loser_of_a_race
from tests.core.conftest import start_browser_session
from tests.factories import (
    make_category,
    make_event,
    make_participant,
    make_tenant,
    make_user,
    system_ctx,
)

H = dict[str, str]


@pytest.fixture
def ctx(tenant: Tenant) -> TenantContext:
    return system_ctx(tenant)


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


# --- archive --------------------------------------------------------------------------------


def test_an_archived_event_leaves_the_default_lists_and_comes_back(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    kept = make_event(db, event_tenant(db, event), name="Lyon Trail")
    archived = problem_free(client.post(f"/api/events/{event.id}/archive", headers=headers))
    assert archived["archivedAt"] is not None

    listed = client.get("/api/events", headers=headers).json()["items"]
    assert [e["id"] for e in listed] == [str(kept.id)]
    only_archived = client.get("/api/events?archived=true", headers=headers).json()["items"]
    assert [e["id"] for e in only_archived] == [str(event.id)]
    # Still readable by its id.
    assert client.get(f"/api/events/{event.id}", headers=headers).status_code == 200

    back = problem_free(client.post(f"/api/events/{event.id}/unarchive", headers=headers))
    assert back["archivedAt"] is None
    listed = client.get("/api/events", headers=headers).json()["items"]
    assert {e["id"] for e in listed} == {str(kept.id), str(event.id)}
    assert actions(db, event.id)[-2:] == ["event.archive", "event.unarchive"]


def event_tenant(db: Session, event: Event) -> Tenant:
    tenant = db.get(Tenant, event.tenant_id)
    assert tenant is not None
    return tenant


def problem_free(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def actions(db: Session, target_id: object) -> list[str]:
    return list(db.scalars(select(AuditEntry.action)
                           .where(AuditEntry.target_id == str(target_id))
                           .order_by(AuditEntry.id)))


# --- delete an event ------------------------------------------------------------------------


def test_an_empty_event_is_deleted_with_its_categories(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    category = make_category(db, event, name="10K")

    assert client.delete(f"/api/events/{event.id}", headers=headers).status_code == 204

    assert db.get(Event, event.id) is None
    assert db.scalar(select(Category).where(Category.id == category.id)) is None
    assert actions(db, event.id)[-1] == "event.delete"
    assert client.get(f"/api/events/{event.id}", headers=headers).status_code == 404


def test_deleting_an_event_with_participants_is_refused_naming_how_many(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    for _ in range(3):
        make_participant(db, event)
    make_participant(db, event, status=ParticipantStatus.WITHDRAWN)

    body = problem(client.delete(f"/api/events/{event.id}", headers=headers), 409)

    assert "Paris 10K cannot be deleted: it has 4 participants" in body["detail"]
    assert db.get(Event, event.id) is not None


def test_deleting_an_event_names_results_links_and_running_jobs(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    from racehub.sync import links as sync_links
    from racehub.sync.schemas import LinkCreate
    from tests.core.test_route_security import _closed_port_connection

    category = make_category(db, event, name="10K")
    service.start_bib_assignment(db, ctx, event_id=event.id, category_id=category.id,
                                 first_bib=1)
    connection = _closed_port_connection(db, event_tenant(db, event), "RunSignUp",
                                         event_ids=["101"])
    sync_links.create_link(db, ctx, event_id=event.id, data=LinkCreate(
        connection_id=connection.id, provider_event_ref="101"))
    db.flush()

    with pytest.raises(EventInUse) as refused:
        service.delete_event(db, ctx, event_id=event.id)

    assert "a bib assignment is running" in refused.value.detail
    assert "it is linked to 1 provider event" in refused.value.detail


def test_results_keep_an_event_and_the_database_refuses_too(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    ep = make_participant(db, event)
    db.add(Result(tenant_id=ctx.tenant_id, event_id=event.id, event_participant_id=ep.id,
                  status=ResultStatus.FINISHED, chip_ms=1000))
    db.flush()
    with pytest.raises(EventInUse, match="it has 1 participant; it has 1 result"):
        service.delete_event(db, ctx, event_id=event.id)
    # Whatever a caller forgets to check, the keys no longer cascade.
    from sqlalchemy import delete

    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(delete(Event).where(Event.id == event.id))


def test_another_tenant_cannot_delete_or_archive_an_event(
    db: Session, event: Event
) -> None:
    stranger = system_ctx(make_tenant(db))
    with pytest.raises(EventNotFound):
        service.delete_event(db, stranger, event_id=event.id)
    with pytest.raises(EventNotFound):
        service.set_event_archived(db, stranger, event_id=event.id, archived=True)


def test_a_delete_waits_for_an_entry_being_written_and_then_refuses(
    engine: Engine, committed_db: sessionmaker[Session]
) -> None:
    """A participant added (by a sync, an import, a person) while the delete checks: the
    delete's lock waits for that write, then counts it; the event stays."""
    with committed_db() as setup:
        tenant = make_tenant(setup)
        event = make_event(setup, tenant, name="Race Day")
        setup.commit()
        ctx, event_id = system_ctx(tenant), event.id

    winner = committed_db()
    service.create_participant(winner, ctx, event_id=event_id, data=ParticipantCreate(
        person=PersonIn(first_name="Ada", last_name="Lovelace")))

    def loser(db: Session) -> Exception | None:
        try:
            service.delete_event(db, ctx, event_id=event_id)
        except EventInUse as exc:
            db.rollback()
            return exc
        db.commit()
        return None

    refused = loser_of_a_race(engine, winner, "delete-loser", loser)
    assert isinstance(refused, EventInUse) and "it has 1 participant" in refused.detail
    with committed_db() as check:
        assert check.get(Event, event_id) is not None


def test_a_writer_after_the_delete_finds_no_event(
    engine: Engine, committed_db: sessionmaker[Session]
) -> None:
    """The other way round: the delete holds the event; a bib job or an entry started
    meanwhile waits, then finds the event gone (never a job for a deleted event)."""
    with committed_db() as setup:
        tenant = make_tenant(setup)
        event = make_event(setup, tenant, name="Race Day")
        setup.commit()
        ctx, event_id = system_ctx(tenant), event.id

    winner = committed_db()
    service.delete_event(winner, ctx, event_id=event_id)

    def loser(db: Session) -> Exception | None:
        try:
            service.get_event_or_raise(db, ctx, event_id=event_id, for_writing=True)
        except EventNotFound as exc:
            return exc
        return None

    assert isinstance(loser_of_a_race(engine, winner, "late-writer", loser), EventNotFound)


# --- categories -----------------------------------------------------------------------------


def test_a_category_is_edited_through_the_api(
    client: TestClient, db: Session, headers: H, event: Event
) -> None:
    category = make_category(db, event, name="10K", bib_range_start=1, bib_range_end=500)
    make_category(db, event, name="Half")
    url = f"/api/events/{event.id}/categories/{category.id}"

    body = problem_free(client.patch(url, headers=headers, json={
        "name": "  10K Elite ", "bibRangeEnd": 600, "distanceM": 10000}))
    assert (body["name"], body["bibRangeStart"], body["bibRangeEnd"]) == ("10K Elite", 1, 600)

    taken = problem(client.patch(url, headers=headers, json={"name": "Half"}), 409)
    assert taken["errors"][0]["field"] == "name"
    below = problem(client.patch(url, headers=headers, json={"bibRangeEnd": 0}), 422)
    assert below["errors"][0]["field"] == "bibRangeEnd"
    crossing = problem(client.patch(url, headers=headers, json={"bibRangeStart": 700}), 422)
    assert crossing["errors"][0]["field"] == "bibRangeEnd"
    blank = problem(client.patch(url, headers=headers, json={"name": "   "}), 422)
    assert blank["errors"] == [{"field": "name", "message": "is required"}]
    assert actions(db, category.id)[-1] == "category.update"


def test_a_category_with_participants_is_deleted_only_moving_them(
    client: TestClient, db: Session, headers: H, event: Event, ctx: TenantContext
) -> None:
    category = make_category(db, event, name="10K")
    target = make_category(db, event, name="Half")
    eps = [make_participant(db, event, category_id=category.id) for _ in range(2)]
    eps.append(make_participant(db, event, category_id=category.id,
                                status=ParticipantStatus.WITHDRAWN))
    url = f"/api/events/{event.id}/categories/{category.id}"

    body = problem(client.delete(url, headers=headers), 409)
    assert body["detail"].startswith("10K cannot be deleted: it has 3 participants")
    same = problem(client.delete(url, headers=headers, params={"moveTo": str(category.id)}),
                   422)
    assert same["errors"][0]["field"] == "moveTo"
    elsewhere = make_category(db, make_event(db, event_tenant(db, event)), name="5K")
    foreign = problem(client.delete(url, headers=headers,
                                    params={"moveTo": str(elsewhere.id)}), 404)
    assert foreign["errors"][0]["field"] == "moveTo"

    moved = problem_free(client.delete(url, headers=headers,
                                       params={"moveTo": str(target.id)}))
    assert moved == {"movedTo": str(target.id), "participantsMoved": 3}
    db.expire_all()
    assert {db.get(EventParticipant, ep.id).category_id for ep in eps} == {target.id}
    assert db.get(Category, category.id) is None
    assert actions(db, category.id)[-1] == "category.delete"


def test_a_mapped_provider_race_follows_its_category_or_keeps_it(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    from racehub.sync import links as sync_links
    from racehub.sync.schemas import LinkCreate
    from tests.core.test_route_security import _closed_port_connection

    category = make_category(db, event, name="10K")
    target = make_category(db, event, name="Half")
    connection = _closed_port_connection(db, event_tenant(db, event), "RunSignUp",
                                         event_ids=["101"])
    link = sync_links.create_link(db, ctx, event_id=event.id, data=LinkCreate(
        connection_id=connection.id, provider_event_ref="101"))
    mapped = CategoryLink(tenant_id=ctx.tenant_id, link_id=link.id, provider_ref="r-10",
                          provider_name="10 km", category_id=category.id)
    db.add(mapped)
    db.flush()

    with pytest.raises(CategoryInUse, match=r"the provider race 10 km \(RunSignUp\) is "
                                            "mapped to it"):
        service.delete_category(db, ctx, event_id=event.id, category_id=category.id)

    service.delete_category(db, ctx, event_id=event.id, category_id=category.id,
                            move_to=target.id)
    db.refresh(mapped)
    assert mapped.category_id == target.id


def test_a_category_with_a_running_bib_assignment_is_kept(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    category = make_category(db, event, name="10K")
    target = make_category(db, event, name="Half")
    service.start_bib_assignment(db, ctx, event_id=event.id, category_id=category.id,
                                 first_bib=1)
    with pytest.raises(CategoryInUse, match="a bib assignment is running"):
        service.delete_category(db, ctx, event_id=event.id, category_id=category.id,
                                move_to=target.id)
    assert db.scalar(select(JobRun).where(JobRun.subject_id == category.id)) is not None


def test_a_category_delete_waits_for_an_entry_put_into_it(
    engine: Engine, committed_db: sessionmaker[Session]
) -> None:
    with committed_db() as setup:
        tenant = make_tenant(setup)
        event = make_event(setup, tenant)
        category = make_category(setup, event, name="10K")
        setup.commit()
        ctx, event_id, category_id = system_ctx(tenant), event.id, category.id

    winner = committed_db()
    service.create_participant(winner, ctx, event_id=event_id, data=ParticipantCreate(
        person=PersonIn(first_name="Ada", last_name="Lovelace"), category_id=category_id))

    def loser(db: Session) -> Exception | None:
        try:
            service.delete_category(db, ctx, event_id=event_id, category_id=category_id)
        except CategoryInUse as exc:
            db.rollback()
            return exc
        db.commit()
        return None

    refused = loser_of_a_race(engine, winner, "category-loser", loser)
    assert isinstance(refused, CategoryInUse) and "it has 1 participant" in refused.detail


def test_category_update_keeps_unsent_fields(db: Session, ctx: TenantContext,
                                             event: Event) -> None:
    category = make_category(db, event, name="10K", distance_m=10000)
    service.update_category(db, ctx, event_id=event.id, category_id=category.id,
                            data=CategoryUpdate(bib_range_start=5))
    assert (category.name, category.distance_m, category.bib_range_start) == ("10K", 10000, 5)


# --- names and birth dates ------------------------------------------------------------------


@pytest.mark.parametrize(("path", "payload", "field"), [
    ("/api/events", {"name": "   ", "startAt": "2026-04-12T09:00:00"}, "name"),
    ("/api/events/{event}/categories", {"name": " \t "}, "name"),
    ("/api/events/{event}/participants",
     {"person": {"firstName": "  ", "lastName": "Hopper"}}, "person.firstName"),
    ("/api/events/{event}/participants",
     {"person": {"firstName": "Grace", "lastName": " "}}, "person.lastName"),
    ("/api/number-types", {"name": "   "}, "name"),
    ("/api/connections", {"provider": "HAKU", "name": "  ",
                          "credentials": {"client_id": "c-12345678",
                                          "client_secret": "s-12345678"}}, "name"),
])
def test_a_name_of_only_spaces_is_refused_as_missing(
    client: TestClient, headers: H, event: Event, path: str, payload: dict[str, Any],
    field: str
) -> None:
    body = problem(client.post(path.format(event=event.id), headers=headers, json=payload),
                   422)
    assert {"field": field, "message": "is required"} in body["errors"]


def test_names_are_trimmed(client: TestClient, headers: H, event: Event) -> None:
    created = client.post("/api/events", headers=headers, json={
        "name": "  Lyon Trail ", "startAt": "2026-04-12T09:00:00"})
    assert created.status_code == 201 and created.json()["name"] == "Lyon Trail"
    blank_edit = problem(client.patch(f"/api/events/{event.id}", headers=headers,
                                      json={"name": "  "}), 422)
    assert blank_edit["errors"][0]["field"] == "name"


@pytest.mark.parametrize("born", ["1899-12-31", "the day after tomorrow"])
def test_a_birth_date_before_1900_or_in_the_future_is_refused(
    client: TestClient, headers: H, event: Event, born: str
) -> None:
    if born == "the day after tomorrow":
        # Taken when the test runs, not when it is collected (a run may cross midnight),
        # and two days ahead: in the future in every time zone.
        born = (date.today() + timedelta(days=2)).isoformat()
    body = problem(client.post(f"/api/events/{event.id}/participants", headers=headers, json={
        "person": {"firstName": "Grace", "lastName": "Hopper", "birthDate": born}}), 422)
    assert [e["field"] for e in body["errors"]] == ["person.birthDate"]
    assert "1900" in body["detail"] or "future" in body["detail"]
    ok = client.post(f"/api/events/{event.id}/participants", headers=headers, json={
        "person": {"firstName": "Grace", "lastName": "Hopper", "birthDate": "1906-12-09"}})
    assert ok.status_code == 201, ok.text


# --- pages ----------------------------------------------------------------------------------


@pytest.fixture
def csrf(client: TestClient, db: Session, tenant: Tenant) -> str:
    token = start_browser_session(db, client, make_user(db, tenant, Role.EVENT_MANAGER))
    db.commit()
    return token


def test_event_pages_archive_and_delete_and_name_why_a_delete_is_refused(
    client: TestClient, db: Session, csrf: str, event: Event
) -> None:
    make_participant(db, event, first_name="Ada", last_name="Lovelace")
    empty = make_event(db, event_tenant(db, event), name="Empty Race")
    db.commit()

    refused = client.post(f"/events/{event.id}/delete", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert "Paris 10K cannot be deleted: it has 1 participant." in refused.text

    archived = client.post(f"/events/{event.id}/archive", data={"csrf_token": csrf})
    assert archived.status_code == 200  # followed the redirect to the event
    assert "Unarchive" in archived.text
    listing = client.get("/events")
    assert "Paris 10K" not in listing.text and "Empty Race" in listing.text
    assert "Paris 10K" in client.get("/events?archived=1").text

    deleted = client.post(f"/events/{empty.id}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 200 and "Empty Race deleted" in deleted.text
    assert db.get(Event, empty.id) is None


def test_category_pages_edit_and_delete_with_words_of_the_form(
    client: TestClient, db: Session, csrf: str, event: Event
) -> None:
    category = make_category(db, event, name="10K", bib_range_start=1, bib_range_end=99)
    target = make_category(db, event, name="Half")
    make_participant(db, event, category_id=category.id)
    db.commit()
    base = f"/events/{event.id}/categories/{category.id}"

    form = client.get(f"{base}/edit")
    assert form.status_code == 200 and 'value="10K"' in form.text
    blank = client.post(f"{base}/edit", data={"csrf_token": csrf, "name": "  "})
    assert blank.status_code == 422 and "Name is required" in blank.text
    crossing = client.post(f"{base}/edit", data={"csrf_token": csrf, "name": "10K",
                                                 "bib_range_start": "50", "bib_range_end": "9"})
    assert crossing.status_code == 422
    assert "The bib range must not end (9) below its start (50)" in crossing.text
    assert 'aria-describedby="bib_range_end-problem"' in crossing.text
    saved = client.post(f"{base}/edit", data={"csrf_token": csrf, "name": "10K Road",
                                              "bib_range_start": "1", "bib_range_end": "200"})
    assert saved.status_code == 200 and "Category saved" in saved.text

    kept = client.post(f"{base}/delete", data={"csrf_token": csrf, "move_to": ""})
    assert kept.status_code == 409
    assert "10K Road cannot be deleted: it has 1 participant" in kept.text
    gone = client.post(f"{base}/delete", data={"csrf_token": csrf,
                                               "move_to": str(target.id)})
    assert gone.status_code == 200 and "10K Road deleted; 1 participant moved" in gone.text


def test_the_participant_form_names_fields_by_their_labels(
    client: TestClient, db: Session, csrf: str, event: Event
) -> None:
    db.commit()
    response = client.post(f"/events/{event.id}/participants/new", data={
        "csrf_token": csrf, "first_name": "   ", "last_name": "Hopper",
        "birth_date": "1850-01-01", "email": "not-an-address"})
    assert response.status_code == 422
    assert "First name is required" in response.text
    assert "Birth date must not be before 1900" in response.text
    assert "E-mail must be an e-mail address like ada@example.com" in response.text
    for internal in ("person.first_name", "person.firstName", "Input should be",
                     "Value error"):
        assert internal not in response.text


def test_unknown_category_ids_are_not_found(db: Session, ctx: TenantContext,
                                            event: Event) -> None:
    from racehub.events.exceptions import CategoryNotFound

    with pytest.raises(CategoryNotFound):
        service.delete_category(db, ctx, event_id=event.id, category_id=uuid.uuid4())
