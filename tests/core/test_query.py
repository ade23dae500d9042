"""The query helpers every service starts from: tenant scoping and ``any_of`` lookups."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from racehub.core.models import Tenant
from racehub.core.query import any_of, scoped
from racehub.events.models import EventParticipant, ParticipantStatus
from tests.factories import make_event, make_participant, make_tenant, system_ctx


def test_any_of_finds_the_listed_values_of_any_type(db: Session, tenant: Tenant) -> None:
    event = make_event(db, tenant)
    eps = [make_participant(db, event, bib=str(n)) for n in (7, 8, 9)]
    eps[2].status = ParticipantStatus.WITHDRAWN
    db.flush()
    ctx = system_ctx(tenant)

    def bibs(condition: object) -> list[str]:
        stmt = scoped(ctx, EventParticipant).where(condition).order_by(EventParticipant.bib)
        return [ep.bib for ep in db.scalars(stmt)]

    assert bibs(any_of(EventParticipant.bib, {"8", "9", "404"})) == ["8", "9"]
    assert bibs(any_of(EventParticipant.id, [eps[0].id])) == ["7"]
    assert bibs(any_of(EventParticipant.status, [ParticipantStatus.WITHDRAWN])) == ["9"]
    assert bibs(any_of(EventParticipant.bib, [])) == []
    # Scoping still applies: another tenant's EP is not found by its id.
    other = make_participant(db, make_event(db, make_tenant(db)), bib="7")
    assert bibs(any_of(EventParticipant.id, [other.id])) == []


def test_any_of_keeps_one_statement_text_for_any_number_of_values() -> None:
    def sql(values: list[str]) -> str:
        stmt = select(EventParticipant.id).where(any_of(EventParticipant.bib, values))
        return str(stmt.compile(dialect=postgresql.dialect()))

    assert sql(["1"]) == sql([str(n) for n in range(500)])
