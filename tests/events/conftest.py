"""Fixtures for the events tests: a tenant, its admin's API headers, an event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.models import Role, Tenant
from racehub.events import service as events_service
from racehub.events.models import Event, EventParticipant, ParticipantStatus
from racehub.events.schemas import ParticipantCreate
from racehub.events.writes import ParticipantWrite, write_participants
from tests.factories import auth, make_event, make_participant


@pytest.fixture
def headers(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.TENANT_ADMIN)


@pytest.fixture
def event(db: Session, tenant: Tenant) -> Event:
    return make_event(db, tenant, name="Paris 10K", timezone="Europe/Paris")


@pytest.fixture
def transferred(db: Session, event: Event) -> tuple[EventParticipant, EventParticipant]:
    """A synced entry withdrawn by a transfer, and the entry that took over its bib."""
    ctx = TenantContext.system(event.tenant_id, label="test")
    old = make_participant(db, event, first_name="Ada", last_name="Old", bib="21",
                           source_provider="RUNSIGNUP", source_id="R-1")
    new = make_participant(db, event, first_name="Ada", last_name="New",
                           source_provider="RUNSIGNUP", source_id="R-2")
    write_participants(db, ctx, event_id=event.id, origin="test", mark_local=False, rows=[
        ParticipantWrite(old.id, {"status": ParticipantStatus.WITHDRAWN,
                                  "withdrawn_at": datetime(2026, 9, 1, 8, 30, tzinfo=UTC),
                                  "withdrawn_reason": "Transferred to another registration"}),
        ParticipantWrite(new.id, {"bib": "21", "transferred_from_id": old.id})])
    return old, new


@pytest.fixture
def shared(db: Session, tenant: Tenant, event: Event) -> tuple[EventParticipant,
                                                               EventParticipant]:
    """One person entered in two events (matched by e-mail and birth date)."""
    earlier = make_event(db, tenant, name="Spring 5K")
    born = datetime(1990, 4, 2).date()
    first = make_participant(db, earlier, first_name="Ada", last_name="Lovelace",
                             birth_date=born, bib="5")
    first.person.email = "ada@lovelace.org"
    db.flush()
    second = events_service.create_participant(db, TenantContext.system(tenant.id, label="test"),
                                        event_id=event.id, data=ParticipantCreate(
        person={"firstName": "Ada", "lastName": "Lovelace", "birthDate": born,
                "email": "ada@lovelace.org"}, bib="9"))
    assert second.person_id == first.person_id
    return first, second
