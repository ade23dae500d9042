"""Conflicts (list, keep ours, take theirs), the sources of a participant and splitting a
wrong person match, through the API on real Postgres."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.models import Role, Tenant
from racehub.events.models import EventParticipant, Person
from racehub.sync.merge import decide, record_conflicts
from racehub.sync.models import ConflictStatus, SyncConflict, SyncedRecord
from tests.factories import auth, make_event, make_participant, make_synced_record
from tests.sync.conftest import audit_entries


@pytest.fixture
def manager(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.EVENT_MANAGER)


def _owned_bib_conflict(db: Session, ctx: TenantContext, *, provider_bib: str = "12",
                        local_bib: str = "7") -> tuple[EventParticipant, SyncedRecord, str]:
    """An EP whose bib was edited in racehub (7) after the provider sent 10; the provider
    now sends ``provider_bib``: a conflict."""
    event = make_event(db, _tenant_of(db, ctx))
    ep = make_participant(db, event, bib=local_bib, team="Harriers")
    ep.local_fields = ["bib"]
    record = make_synced_record(db, ep, synced_values={"bib": "10", "team": "Harriers"})
    decision = decide({"bib": provider_bib, "team": "Harriers"}, record.synced_values,
                      {"bib": ep.bib, "team": ep.team}, ep.local_fields)
    assert decision.conflicts == {"bib": (local_bib, provider_bib)}
    record_conflicts(db, ctx, run_id=None, event_id=event.id, participant_id=ep.id,
                     record_id=record.id, conflicts=decision.conflicts)
    conflict_id = db.scalar(select(SyncConflict.id).where(SyncConflict.participant_id == ep.id))
    db.commit()
    return ep, record, str(conflict_id)


def _tenant_of(db: Session, ctx: TenantContext) -> Tenant:
    return db.get_one(Tenant, ctx.tenant_id)


def test_the_open_conflicts_of_an_event_are_listed_and_paged(
    client: TestClient, db: Session, ctx: TenantContext, tenant: Tenant
) -> None:
    ep, _, conflict_id = _owned_bib_conflict(db, ctx)
    record_conflicts(db, ctx, run_id=None, event_id=ep.event_id, participant_id=ep.id,
                     record_id=None, conflicts={"team": ("Harriers", "Striders")})
    db.commit()
    viewer = auth(db, tenant, Role.VIEWER)
    url = f"/api/events/{ep.event_id}/conflicts"

    first = client.get(url, params={"limit": 1}, headers=viewer)
    assert first.status_code == 200, first.text
    second = client.get(url, params={"limit": 1, "cursor": first.json()["nextCursor"]},
                        headers=viewer)
    items = first.json()["items"] + second.json()["items"]
    assert second.json()["nextCursor"] is None
    assert sorted((c["field"], c["localValue"], c["providerValue"]) for c in items) == [
        ("bib", "7", "12"), ("team", "Harriers", "Striders")]
    assert {c["status"] for c in items} == {"open"}
    assert conflict_id in {c["id"] for c in items}
    assert client.get(url, params={"status": "kept"}, headers=viewer).json()["items"] == []


def test_keep_ours_leaves_racehub_and_is_not_raised_again_until_the_provider_changes(
    client: TestClient, db: Session, ctx: TenantContext, manager: dict[str, str]
) -> None:
    ep, record, conflict_id = _owned_bib_conflict(db, ctx)

    kept = client.post(f"/api/events/{ep.event_id}/conflicts/{conflict_id}/keep",
                       headers=manager)

    assert kept.status_code == 200, kept.text
    assert kept.json()["status"] == "kept" and kept.json()["resolvedAt"] is not None
    db.expire_all()
    assert db.get_one(EventParticipant, ep.id).bib == "7"
    assert db.get_one(SyncedRecord, record.id).synced_values == {"bib": "12", "team": "Harriers"}
    [entry] = audit_entries(db, "conflict.keep")
    assert entry.target_id == str(ep.id)
    assert entry.before == {"field": "bib", "local_value": "7", "provider_value": "12"}
    # The next sync of the same value: nothing; a new provider value: a new conflict.
    owned = ["bib"]
    synced = db.get_one(SyncedRecord, record.id).synced_values
    assert decide({"bib": "12"}, synced, {"bib": "7"}, owned).conflicts == {}
    assert decide({"bib": "13"}, synced, {"bib": "7"}, owned).conflicts == {"bib": ("7", "13")}


def test_take_theirs_writes_the_provider_value_and_gives_the_field_back_to_the_provider(
    client: TestClient, db: Session, ctx: TenantContext, manager: dict[str, str]
) -> None:
    ep, record, conflict_id = _owned_bib_conflict(db, ctx)

    taken = client.post(f"/api/events/{ep.event_id}/conflicts/{conflict_id}/take",
                        headers=manager)

    assert taken.status_code == 200, taken.text
    assert taken.json()["status"] == "taken"
    db.expire_all()
    after = db.get_one(EventParticipant, ep.id)
    assert (after.bib, after.local_fields) == ("12", [])
    assert db.get_one(SyncedRecord, record.id).synced_values["bib"] == "12"
    [entry] = audit_entries(db, "conflict.take")
    assert entry.after is not None and entry.after["status"] == "taken"
    # Provider-owned again: its next change is written, not raised.
    synced = db.get_one(SyncedRecord, record.id).synced_values
    assert decide({"bib": "14"}, synced, {"bib": "12"}, after.local_fields).writes == {
        "bib": "14"}


@pytest.mark.parametrize("first, second", [("keep", "keep"), ("keep", "take"),
                                           ("take", "keep")])
def test_a_resolved_conflict_answers_409_and_changes_nothing(
    client: TestClient, db: Session, ctx: TenantContext, manager: dict[str, str],
    first: str, second: str
) -> None:
    ep, _, conflict_id = _owned_bib_conflict(db, ctx)
    url = f"/api/events/{ep.event_id}/conflicts/{conflict_id}"
    assert client.post(f"{url}/{first}", headers=manager).status_code == 200
    db.expire_all()
    bib = db.get_one(EventParticipant, ep.id).bib

    again = client.post(f"{url}/{second}", headers=manager)

    assert again.status_code == 409
    assert "already resolved" in again.json()["detail"]
    db.expire_all()
    assert db.get_one(EventParticipant, ep.id).bib == bib
    resolutions = audit_entries(db, "conflict.keep") + audit_entries(db, "conflict.take")
    assert [e.action for e in resolutions] == [f"conflict.{first}"]


def test_take_theirs_refused_when_the_provider_bib_is_held_leaves_the_conflict_open(
    client: TestClient, db: Session, ctx: TenantContext, manager: dict[str, str]
) -> None:
    ep, _, conflict_id = _owned_bib_conflict(db, ctx)
    holder = make_participant(db, ep.event, first_name="Grace", last_name="Hopper", bib="12")
    db.commit()

    refused = client.post(f"/api/events/{ep.event_id}/conflicts/{conflict_id}/take",
                          headers=manager)

    assert refused.status_code == 409, refused.text
    assert "Hopper" in refused.json()["detail"]
    db.expire_all()
    assert db.get_one(SyncConflict, conflict_id).status == ConflictStatus.OPEN
    assert db.get_one(EventParticipant, ep.id).bib == "7"
    assert db.get_one(EventParticipant, holder.id).bib == "12"


def test_a_conflict_of_another_event_is_not_found(
    client: TestClient, db: Session, ctx: TenantContext, manager: dict[str, str],
    tenant: Tenant
) -> None:
    _, _, conflict_id = _owned_bib_conflict(db, ctx)
    other = make_event(db, tenant)
    db.commit()
    response = client.post(f"/api/events/{other.id}/conflicts/{conflict_id}/keep",
                           headers=manager)
    assert response.status_code == 404


# --- sources and split --------------------------------------------------------------------


def _shared_person(db: Session, tenant: Tenant) -> tuple[EventParticipant, EventParticipant]:
    """Two entries (two events, two providers) matched to one person by e-mail and birth
    date."""
    ep = make_participant(db, make_event(db, tenant), first_name="Ada", last_name="Lovelace",
                          birth_date=date(1990, 12, 10))
    ep.person.email = "ada@example.test"
    from racehub.events import service as events_service
    from racehub.events.schemas import ParticipantCreate

    other = events_service.create_participant(
        db, TenantContext.system(tenant.id), event_id=make_event(db, tenant).id,
        data=ParticipantCreate(person_id=ep.person_id))
    make_synced_record(db, ep, provider="RUNSIGNUP", source_ref="rsu-1",
                       person_match="new", provider_person_ref="u-9",
                       payload={"user": {"first_name": "Ada"}},
                       payload_synced_at=datetime(2026, 1, 1, tzinfo=UTC))
    make_synced_record(db, other, provider="HAKU", source_ref="haku-1",
                       person_match="email_birth_date", payload={"name": "Ada"})
    db.commit()
    return ep, other


@pytest.mark.parametrize("role, sees_payload", [
    (Role.VIEWER, False), (Role.RESULTS_OFFICER, False), (Role.EVENT_MANAGER, True),
    (Role.TENANT_ADMIN, True)])
def test_the_sources_of_a_participant_explain_the_match_and_show_payloads_to_managers(
    client: TestClient, db: Session, tenant: Tenant, role: Role, sees_payload: bool
) -> None:
    _, other = _shared_person(db, tenant)

    response = client.get(f"/api/events/{other.event_id}/participants/{other.id}/sources",
                          headers=auth(db, tenant, role))

    assert response.status_code == 200, response.text
    [source] = response.json()
    assert (source["provider"], source["sourceRef"], source["refIsFallback"]) == (
        "HAKU", "haku-1", False)
    assert source["personMatch"] == "email_birth_date"
    assert "e-mail and birth date" in source["personMatchReason"]
    assert source["payloadVisible"] is sees_payload
    assert source["payload"] == ({"name": "Ada"} if sees_payload else None)


def test_splitting_a_wrong_match_gives_the_participant_its_own_person(
    client: TestClient, db: Session, tenant: Tenant, manager: dict[str, str]
) -> None:
    ep, other = _shared_person(db, tenant)
    shared_person = ep.person_id

    split = client.post(f"/api/events/{other.event_id}/participants/{other.id}/split-person",
                        headers=manager)

    assert split.status_code == 200, split.text
    body: dict[str, Any] = split.json()
    db.expire_all()
    moved = db.get_one(EventParticipant, other.id)
    assert moved.person_id != shared_person and str(moved.person_id) == body["person"]["id"]
    assert db.get_one(EventParticipant, ep.id).person_id == shared_person
    copy, original = db.get_one(Person, moved.person_id), db.get_one(Person, shared_person)
    assert ((copy.first_name, copy.last_name, copy.birth_date, copy.email) ==
            (original.first_name, original.last_name, original.birth_date, original.email))
    matches = dict(db.execute(select(SyncedRecord.source_ref, SyncedRecord.person_match)
                              .where(SyncedRecord.tenant_id == tenant.id)).all())
    assert matches == {"rsu-1": "new", "haku-1": "split"}
    [entry] = audit_entries(db, "participant.split_person")
    assert entry.before == {"person_id": str(shared_person)}
    assert entry.after is not None and entry.after["person_id"] == str(moved.person_id)
    # Its person is its own now: nothing left to split.
    again = client.post(f"/api/events/{other.event_id}/participants/{other.id}/split-person",
                        headers=manager)
    assert again.status_code == 409
    assert "no other entry" in again.json()["detail"]


def test_a_participant_of_another_event_has_no_sources_there(
    client: TestClient, db: Session, tenant: Tenant, manager: dict[str, str]
) -> None:
    ep, other = _shared_person(db, tenant)
    response = client.get(f"/api/events/{ep.event_id}/participants/{other.id}/sources",
                          headers=manager)
    assert response.status_code == 404
