"""Business rules of the events service, below HTTP: tenant scoping, bib uniqueness (in the
service and, as a backstop, in the database), the timing-identifier lock, audit entries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.models import AuditEntry, Tenant
from racehub.events import service
from racehub.events.exceptions import (
    BibTaken,
    CategoryNotFound,
    EventNotFound,
    ParticipantNotFound,
    SourceTaken,
    TimingIdentifierLocked,
)
from racehub.events.models import (
    Event,
    EventParticipant,
    ParticipantStatus,
    Person,
    TimingIdentifier,
)
from racehub.events.schemas import (
    CategoryCreate,
    EventCreate,
    EventUpdate,
    ParticipantCreate,
    ParticipantRead,
    ParticipantUpdate,
    PersonIn,
)
from tests.concurrency import loser_of_a_race
from tests.factories import make_category, make_event, make_participant, make_tenant, system_ctx


def actions(db: Session, target_id: object) -> list[str]:
    return list(db.scalars(select(AuditEntry.action)
                           .where(AuditEntry.target_id == str(target_id))
                           .order_by(AuditEntry.id)))


def person(first: str = "Ada", last: str = "Lovelace") -> PersonIn:
    return PersonIn(first_name=first, last_name=last)


@pytest.fixture
def other_ctx(db: Session) -> TenantContext:
    return system_ctx(make_tenant(db))


# --- tenant scoping -----------------------------------------------------------------------


def test_another_tenant_can_neither_read_nor_change_an_event(
    db: Session, event: Event, other_ctx: TenantContext
) -> None:
    with pytest.raises(EventNotFound):
        service.get_event_or_raise(db, other_ctx, event_id=event.id)
    with pytest.raises(EventNotFound):
        service.update_event(db, other_ctx, event_id=event.id, data=EventUpdate(name="Mine"))
    with pytest.raises(EventNotFound):
        service.list_participants(db, other_ctx, event_id=event.id)
    with pytest.raises(EventNotFound):
        service.create_category(db, other_ctx, event_id=event.id,
                                data=CategoryCreate(name="5K"))
    assert db.get(Event, event.id).name == "Paris 10K"  # type: ignore[union-attr]


def test_another_tenant_can_neither_read_nor_change_a_participant(
    db: Session, event: Event, other_ctx: TenantContext
) -> None:
    ep = make_participant(db, event, bib="1")
    with pytest.raises(ParticipantNotFound):
        service.get_participant_or_raise(db, other_ctx, participant_id=ep.id)
    with pytest.raises(ParticipantNotFound):
        service.update_participant(db, other_ctx, participant_id=ep.id,
                                   data=ParticipantUpdate(bib="2"))
    assert ep.bib == "1"


def test_event_lists_are_per_tenant(
    db: Session, ctx: TenantContext, event: Event, other_ctx: TenantContext
) -> None:
    make_event(db, db.get(Tenant, other_ctx.tenant_id))  # type: ignore[arg-type]
    rows, _ = service.list_events(db, ctx)
    assert [e.id for e in rows] == [event.id]
    assert service.participant_counts(db, other_ctx, event_ids=[event.id]) == {}


def test_people_of_another_tenant_cannot_be_entered(
    db: Session, ctx: TenantContext, event: Event, other_ctx: TenantContext
) -> None:
    foreign_event = make_event(db, db.get(Tenant, other_ctx.tenant_id))  # type: ignore[arg-type]
    foreign = make_participant(db, foreign_event)
    with pytest.raises(Invalid) as refused:
        service.create_participant(db, ctx, event_id=event.id,
                                   data=ParticipantCreate(person_id=foreign.person_id))
    assert refused.value.field == "personId"


def test_category_must_belong_to_the_participants_event(
    db: Session, ctx: TenantContext, tenant: Tenant, event: Event
) -> None:
    other_category = make_category(db, make_event(db, tenant))
    with pytest.raises(CategoryNotFound) as refused:
        service.create_participant(db, ctx, event_id=event.id, data=ParticipantCreate(
            person=person(), category_id=other_category.id))
    assert refused.value.field == "categoryId"


# --- events -------------------------------------------------------------------------------


def test_naive_start_is_read_in_the_event_timezone() -> None:
    data = EventCreate(name="Tokyo", start_at=datetime(2026, 3, 1, 9), timezone="Asia/Tokyo")
    assert data.start_at.astimezone(UTC) == datetime(2026, 3, 1, 0, tzinfo=UTC)


def test_update_without_a_change_writes_no_audit_entry(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    service.update_event(db, ctx, event_id=event.id, data=EventUpdate(name=event.name))
    assert actions(db, event.id) == ["event.create"]


def test_timing_identifier_lock_is_set_once(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    assert service.lock_timing_identifier(db, ctx, event=event) is True
    first = event.preferred_timing_identifier_locked_at
    assert first is not None
    assert service.lock_timing_identifier(db, ctx, event=event) is False
    assert event.preferred_timing_identifier_locked_at == first


def test_locked_identifier_refusal_changes_nothing(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    service.lock_timing_identifier(db, ctx, event=event)
    db.flush()
    with pytest.raises(TimingIdentifierLocked) as refused:
        service.update_event(db, ctx, event_id=event.id, data=EventUpdate(
            preferred_timing_identifier=TimingIdentifier.EPID, location="Lyon"))
    assert refused.value.field == "preferredTimingIdentifier"
    assert event.preferred_timing_identifier is TimingIdentifier.PERSON_ID
    assert event.location == ""
    assert actions(db, event.id) == ["event.create"]


# --- bibs ---------------------------------------------------------------------------------


def test_active_bib_is_unique_within_an_event(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    make_participant(db, event, bib="7", first_name="Ada", last_name="Lovelace")
    with pytest.raises(BibTaken) as refused:
        service.create_participant(db, ctx, event_id=event.id,
                                   data=ParticipantCreate(person=person("Grace"), bib="7"))
    assert refused.value.field == "bib"
    assert "Ada Lovelace" in refused.value.detail


def test_bib_is_free_again_after_its_holder_withdraws(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    holder = make_participant(db, event, bib="7")
    service.update_participant(db, ctx, participant_id=holder.id,
                               data=ParticipantUpdate(status=ParticipantStatus.WITHDRAWN))
    taker = service.create_participant(db, ctx, event_id=event.id,
                                       data=ParticipantCreate(person=person(), bib="7"))
    assert taker.bib == "7"
    with pytest.raises(BibTaken):
        service.update_participant(db, ctx, participant_id=holder.id,
                                   data=ParticipantUpdate(status=ParticipantStatus.ACTIVE))


def test_database_refuses_two_active_participants_with_one_bib(
    db: Session, tenant: Tenant, event: Event
) -> None:
    """The service checks first; the partial unique index holds even if a caller does not."""
    make_participant(db, event, bib="7")
    people = [Person(tenant_id=tenant.id, first_name="X", last_name=f"Y{n}") for n in range(2)]
    db.add_all(people)
    db.flush()

    def direct(status: ParticipantStatus, who: Person) -> EventParticipant:
        return EventParticipant(tenant_id=tenant.id, event_id=event.id, person_id=who.id,
                                bib="7", status=status)

    with db.begin_nested():
        db.add(direct(ParticipantStatus.WITHDRAWN, people[0]))  # withdrawn: allowed
    with pytest.raises(IntegrityError, match="uq_event_participants_active_bib"), \
            db.begin_nested():
        db.add(direct(ParticipantStatus.ACTIVE, people[1]))
        db.flush()
    count = select(func.count()).select_from(EventParticipant).where(
        EventParticipant.event_id == event.id, EventParticipant.bib == "7")
    assert db.scalar(count) == 2


def test_provider_ids_are_unique_per_tenant_not_globally(
    db: Session, ctx: TenantContext, event: Event, other_ctx: TenantContext
) -> None:
    source = {"source_provider": "runsignup", "source_id": "RS-1"}
    service.create_participant(db, ctx, event_id=event.id,
                               data=ParticipantCreate(person=person(), **source))
    foreign_event = make_event(db, db.get(Tenant, other_ctx.tenant_id))  # type: ignore[arg-type]
    service.create_participant(db, other_ctx, event_id=foreign_event.id,
                               data=ParticipantCreate(person=person(), **source))
    # A second one in the same tenant is refused naming the holder (it was an IntegrityError
    # from the unique index, a 500).
    with pytest.raises(SourceTaken, match="source RUNSIGNUP RS-1 is already held by") as info:
        service.create_participant(db, ctx, event_id=event.id,
                                   data=ParticipantCreate(person=person("Twin"), **source))
    assert info.value.field == "sourceId"


# --- participants and audit ---------------------------------------------------------------


def test_participant_writes_leave_audit_entries_with_before_and_after(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    category = make_category(db, event, "10K")
    ep = service.create_participant(db, ctx, event_id=event.id, data=ParticipantCreate(
        person=person(), bib="3", registration_id="R-3"))
    service.update_participant(db, ctx, participant_id=ep.id, data=ParticipantUpdate(
        category_id=category.id, team="Harriers"))

    entries = list(db.scalars(select(AuditEntry).where(AuditEntry.target_id == str(ep.id))
                              .order_by(AuditEntry.id)))

    assert [e.action for e in entries] == ["participant.create", "participant.update"]
    created, updated = entries
    assert created.before is None
    assert created.after == {"category_id": None, "bib": "3", "registration_id": "R-3",
                             "team": None, "status": "active", "person_id": str(ep.person_id),
                             "person_match": "new"}
    assert updated.before == {"category_id": None, "team": None}
    assert updated.after == {"category_id": str(category.id), "team": "Harriers"}
    assert {e.tenant_id for e in entries} == {ctx.tenant_id}


def test_participant_list_total_counts_the_filtered_rows_not_the_page(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    for n in range(5):
        make_participant(db, event, last_name=f"Runner{n}", bib=str(n + 1))
    make_participant(db, event, last_name="Gone", status=ParticipantStatus.WITHDRAWN)
    rows, cursor, total = service.list_participants(
        db, ctx, event_id=event.id, flt=service.ParticipantFilter(status=ParticipantStatus.ACTIVE),
        limit=2)
    assert (len(rows), total) == (2, 5)
    assert cursor is not None


def test_the_list_reads_every_field_of_the_read_model_as_the_orm_object_gives_it(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    # The list builds its read models from columns without validation: a field added to
    # ParticipantRead or PersonRead must be read by the list too, or this fails.
    ten_k = make_category(db, event, name="10K")
    ep = make_participant(db, event, first_name="Zoë", last_name="Ñúñez", bib="7",
                          registration_id="R-7", team="Club", category_id=ten_k.id)
    make_participant(db, event, last_name="Zz-no-category")
    rows, _, _ = service.list_participants(db, ctx, event_id=event.id)
    assert [r.model_dump() for r in rows][0] == ParticipantRead.model_validate(ep).model_dump()
    assert rows[0].category_name == "10K" and rows[1].category_name is None


@pytest.mark.parametrize("sort", list(service.ParticipantSort))
def test_a_first_page_read_through_the_statement_built_once_is_the_general_statements_page(
    db: Session, ctx: TenantContext, event: Event, other_ctx: TenantContext,
    sort: service.ParticipantSort,
) -> None:
    # The first page without a search runs a statement built once per shape for every
    # tenant and event (values bound at execution): it must read what the statement built
    # per request reads, for every filter shape, and nothing of another tenant.
    ten_k = make_category(db, event, name="10K")
    for n in range(6):
        make_participant(db, event, last_name=f"Same{n % 2}", first_name=f"F{n % 3}",
                         bib=str(n + 1), category_id=ten_k.id if n % 2 else None,
                         status=ParticipantStatus.WITHDRAWN if n == 4 else
                         ParticipantStatus.ACTIVE)
    foreign = make_event(db, db.get(Tenant, other_ctx.tenant_id))  # type: ignore[arg-type]
    foreign_ep = make_participant(db, foreign, last_name="Same0", bib="1")
    shapes = [service.ParticipantFilter(),
              service.ParticipantFilter(status=ParticipantStatus.ACTIVE),
              service.ParticipantFilter(category_id=ten_k.id),
              service.ParticipantFilter(status=ParticipantStatus.ACTIVE, category_id=ten_k.id)]
    for flt in shapes:
        for descending in (False, True):
            rows, cursor, _ = service.list_participants(
                db, ctx, event_id=event.id, flt=flt, sort=sort, descending=descending,
                limit=3, with_total=False)
            general = db.execute(service._page_statement(
                service.participants_query(ctx, event.id, flt), ctx.tenant_id, sort,
                descending, None, 3)).all()
            assert [r.id for r in rows] == [g[0] for g in general[:3]], (flt, descending)
            assert (cursor is not None) == (len(general) > 3)
            assert rows and all(r.event_id == event.id for r in rows)
    # The statement is cached now; another tenant running it sees none of these rows.
    with pytest.raises(EventNotFound):
        service.list_participants(db, other_ctx, event_id=event.id, sort=sort, limit=3,
                                  with_total=False)
    theirs, _, _ = service.list_participants(db, other_ctx, event_id=foreign.id, sort=sort,
                                             limit=3, with_total=False)
    assert [r.id for r in theirs] == [foreign_ep.id]


def test_category_bib_range_is_validated_per_field() -> None:
    with pytest.raises(ValueError, match=r"must not be below the range's start \(10\)"):
        CategoryCreate(name="5K", bib_range_start=10, bib_range_end=9)
    assert CategoryCreate(name="5K", bib_range_end=9).bib_range_end == 9


def test_unknown_ids_are_not_found(db: Session, ctx: TenantContext) -> None:
    with pytest.raises(EventNotFound):
        service.get_event_or_raise(db, ctx, event_id=uuid.uuid4())
    with pytest.raises(ParticipantNotFound):
        service.get_participant_or_raise(db, ctx, participant_id=uuid.uuid4())


# --- two requests racing for one bib --------------------------------------------------------


@pytest.mark.parametrize("change", ["create", "update"])
def test_a_bib_taken_by_a_concurrent_request_is_a_409_naming_the_winner(
    engine: Engine, committed_db: sessionmaker[Session], change: str
) -> None:
    """Both requests pass the service's check; the unique index decides, and the loser
    gets the same BibTaken (not a 500), with the rest of its transaction intact."""
    with committed_db() as setup:
        tenant = make_tenant(setup)
        event = make_event(setup, tenant)
        loser_ep = make_participant(setup, event, last_name="Second", bib="1")
        setup.commit()
        ctx, event_id, loser_id = system_ctx(tenant), event.id, loser_ep.id

    winner = committed_db()
    winner_ep = service.create_participant(winner, ctx, event_id=event_id, data=ParticipantCreate(
        person=PersonIn(first_name="Grace", last_name="First"), bib="7"))
    winner.flush()  # holds bib 7 in the index, uncommitted

    def loser(db: Session) -> tuple[BaseException | None, uuid.UUID]:
        other = service.create_participant(  # written before, in the same transaction
            db, ctx, event_id=event_id, data=ParticipantCreate(
                person=PersonIn(first_name="Kept", last_name="Anyway")))
        error: BaseException | None = None
        try:
            if change == "create":
                service.create_participant(db, ctx, event_id=event_id, data=ParticipantCreate(
                    person=PersonIn(first_name="Alan", last_name="Late"), bib="7"))
            else:
                service.update_participant(db, ctx, participant_id=loser_id,
                                           data=ParticipantUpdate(bib="7"))
        except BibTaken as exc:
            error = exc
        db.commit()
        return error, other.id

    error, kept = loser_of_a_race(engine, winner, "bib-loser", loser)
    assert isinstance(error, BibTaken)
    assert error.status_code == 409
    assert "Grace First" in error.detail and str(winner_ep.id) not in error.detail
    with committed_db() as check:
        assert check.get(EventParticipant, kept) is not None  # savepoint only
        holders = check.scalars(select(EventParticipant.id).where(
            EventParticipant.event_id == event_id, EventParticipant.bib == "7")).all()
        assert holders == [winner_ep.id]
        assert check.get(EventParticipant, loser_id).bib == "1"


def test_a_source_taken_by_a_concurrent_request_is_a_409_naming_the_winner(
    engine: Engine, committed_db: sessionmaker[Session]
) -> None:
    """Both pass the service's check; the unique source index decides, and the loser gets
    SourceTaken naming the winner (it was a 500 IntegrityError), its other writes kept."""
    with committed_db() as setup:
        tenant = make_tenant(setup)
        event = make_event(setup, tenant, name="Paris 10K")
        setup.commit()
        ctx, event_id = system_ctx(tenant), event.id
    source = {"source_provider": "HAKU", "source_id": "H-1"}

    winner = committed_db()
    winner_ep = service.create_participant(winner, ctx, event_id=event_id, data=ParticipantCreate(
        person=PersonIn(first_name="Grace", last_name="First"), **source))
    winner.flush()  # holds the source in the index, uncommitted

    def loser(db: Session) -> tuple[BaseException | None, uuid.UUID]:
        other = service.create_participant(db, ctx, event_id=event_id, data=ParticipantCreate(
            person=PersonIn(first_name="Kept", last_name="Anyway")))
        error: BaseException | None = None
        try:
            service.create_participant(db, ctx, event_id=event_id, data=ParticipantCreate(
                person=PersonIn(first_name="Alan", last_name="Late"), **source))
        except SourceTaken as exc:
            error = exc
        db.commit()
        return error, other.id

    error, kept = loser_of_a_race(engine, winner, "source-loser", loser)
    assert isinstance(error, SourceTaken) and error.field == "sourceId"
    assert "Grace First" in error.detail and str(winner_ep.id) not in error.detail
    with committed_db() as check:
        assert check.get(EventParticipant, kept) is not None  # savepoint only
        holders = check.scalars(select(EventParticipant.id).where(
            EventParticipant.source_id == "H-1",
            EventParticipant.tenant_id == ctx.tenant_id)).all()
        assert holders == [winner_ep.id]
