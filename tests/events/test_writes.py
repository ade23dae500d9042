"""The one write path for EPs: person matching, set-based bib and source checks, writes of
only what changed, local fields, the batch's audit entry, tenant scoping."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from racehub.core.context import TenantContext
from racehub.core.models import AuditEntry, Tenant
from racehub.events.exceptions import EventNotFound
from racehub.events.models import Event, EventParticipant, ParticipantStatus, Person
from racehub.events.writes import ParticipantWrite, WriteOutcome, write_participants
from tests.concurrency import loser_of_a_race
from tests.factories import make_category, make_event, make_participant, make_tenant, system_ctx

BORN = date(1990, 5, 17)


def write(db: Session, ctx: TenantContext, event: Event, *rows: ParticipantWrite,
          mark_local: bool = False, origin: str = "test batch") -> list[WriteOutcome]:
    return write_participants(db, ctx, event_id=event.id, rows=rows, origin=origin,
                              mark_local=mark_local)


def new(first: str, last: str, **values: Any) -> ParticipantWrite:
    source = values.pop("source", None)
    match = values.pop("match_person", True)
    return ParticipantWrite(None, {"first_name": first, "last_name": last, **values},
                            source=source, match_person=match, key=f"{first} {last}")


def rows_written(db: Session) -> int:
    """Rows this transaction inserted or updated in the participant tables and the audit
    log, so far (Postgres' own per-transaction counters)."""
    return int(db.scalar(text(
        "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
        "FROM pg_stat_xact_user_tables "
        "WHERE relname IN ('event_participants', 'persons', 'audit_log')")) or 0)


@pytest.fixture
def other_event(db: Session, tenant: Tenant) -> Event:
    return make_event(db, tenant, name="Lyon Half")


# --- creating, and matching people ----------------------------------------------------------


def test_new_rows_create_participants_and_people(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    category = make_category(db, event, "10K")
    [outcome] = write(db, ctx, event, new("Ada", "Lovelace", bib="1", category_id=category.id,
                                         email="ada@example.test", birth_date=BORN,
                                         source=("RUNSIGNUP", "R-1")))
    assert outcome.error is None and outcome.created and outcome.person_match == "new"
    assert outcome.key == "Ada Lovelace"
    ep = db.get(EventParticipant, outcome.participant_id)
    assert ep is not None and ep.person_id == outcome.person_id
    assert (ep.bib, ep.category_id, ep.status) == ("1", category.id, ParticipantStatus.ACTIVE)
    assert (ep.source_provider, ep.source_id) == ("RUNSIGNUP", "R-1")
    assert (ep.person.first_name, ep.person.email, ep.person.birth_date) == (
        "Ada", "ada@example.test", BORN)
    assert outcome.changes["bib"] == (None, "1")
    assert outcome.changes["email"] == (None, "ada@example.test")


def test_a_new_entry_reuses_the_person_with_the_same_email_and_birth_date(
    db: Session, ctx: TenantContext, event: Event, other_event: Event
) -> None:
    [earlier] = write(db, ctx, other_event, new("Ada", "Lovelace", email="ada@example.test",
                                               birth_date=BORN))
    [outcome] = write(db, ctx, event, new("Augusta", "King", email="ADA@example.test",
                                         birth_date=BORN, city="London"))
    assert outcome.person_match == "email_birth_date"
    assert outcome.person_id == earlier.person_id
    person = db.get(Person, earlier.person_id)
    assert person is not None
    db.refresh(person)
    # The matched Person keeps its name; the entry only fills what it lacked.
    assert (person.first_name, person.city) == ("Ada", "London")
    assert outcome.changes["city"] == (None, "London") and "first_name" not in outcome.changes


def test_a_new_entry_reuses_the_person_with_the_same_folded_name_and_birth_date(
    db: Session, ctx: TenantContext, event: Event, other_event: Event
) -> None:
    [earlier] = write(db, ctx, other_event, new("Émile", "Zola", birth_date=BORN))
    [outcome] = write(db, ctx, event, new("emile", "ZOLÀ", birth_date=BORN))
    assert (outcome.person_match, outcome.person_id) == ("name_birth_date", earlier.person_id)


def test_no_birth_date_or_another_birth_date_is_a_new_person(
    db: Session, ctx: TenantContext, event: Event, other_event: Event
) -> None:
    [earlier] = write(db, ctx, other_event, new("Ada", "Lovelace", email="ada@example.test",
                                               birth_date=BORN))
    undated, other_day = write(
        db, ctx, event, new("Ada", "Lovelace", email="ada@example.test"),
        new("Ada", "Lovelace", email="ada@example.test", birth_date=date(1991, 5, 17)))
    assert {undated.person_match, other_day.person_match} == {"new"}
    assert len({earlier.person_id, undated.person_id, other_day.person_id}) == 3


def test_two_candidate_people_make_a_new_person(
    db: Session, ctx: TenantContext, event: Event, other_event: Event
) -> None:
    twins = write(db, ctx, other_event, new("Jean", "Dupont", birth_date=BORN,
                                            match_person=False),
                  new("Jean", "Dupont", birth_date=BORN, match_person=False))
    [outcome] = write(db, ctx, event, new("Jean", "Dupont", birth_date=BORN))
    assert outcome.person_match == "new"
    assert outcome.person_id not in {t.person_id for t in twins}


def test_two_rows_of_one_person_in_a_batch_share_one_new_person(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    first, second, stranger = write(
        db, ctx, event, new("Ada", "Lovelace", birth_date=BORN, bib="1"),
        new("ADA", "lovelace", birth_date=BORN, bib="2", gender="F"),
        new("Ada", "Lovelace", birth_date=date(2000, 1, 1)))
    assert (first.person_match, second.person_match) == ("new", "name_birth_date")
    assert first.person_id == second.person_id != stranger.person_id
    person = db.get(Person, first.person_id)
    assert person is not None and person.gender == "F"  # the second row filled a blank
    assert db.scalar(select(AuditEntry.after).where(
        AuditEntry.action == "participant.batch_write")) == {
        "origin": "test batch", "created": 3, "updated": 0, "unchanged": 0, "refused": 0,
        "persons_created": 2, "persons_matched": 1}


def test_matching_off_always_makes_a_new_person(
    db: Session, ctx: TenantContext, event: Event, other_event: Event
) -> None:
    [earlier] = write(db, ctx, other_event, new("Ada", "Lovelace", birth_date=BORN))
    [outcome] = write(db, ctx, event, new("Ada", "Lovelace", birth_date=BORN,
                                         match_person=False))
    assert outcome.person_match == "new" and outcome.person_id != earlier.person_id


def test_people_of_another_tenant_are_never_matched(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    foreign_ctx = system_ctx(make_tenant(db))
    foreign_event = make_event(db, db.get(Tenant, foreign_ctx.tenant_id))  # type: ignore[arg-type]
    [foreign] = write(db, foreign_ctx, foreign_event, new("Ada", "Lovelace", birth_date=BORN))
    [outcome] = write(db, ctx, event, new("Ada", "Lovelace", birth_date=BORN))
    assert outcome.person_match == "new" and outcome.person_id != foreign.person_id


# --- updating only what changed -------------------------------------------------------------


def test_an_unchanged_batch_writes_no_row(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    a = make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="1",
                         team="Harriers")
    b = make_participant(db, event, first_name="Grace", last_name="Hopper", bib="2")
    before = rows_written(db)
    outcomes = write(
        db, ctx, event,
        ParticipantWrite(a.id, {"bib": "1", "team": "Harriers", "first_name": "Ada"}),
        ParticipantWrite(b.id, {"bib": "2", "status": "active", "last_name": "Hopper"}),
        mark_local=True)
    assert [(o.error, o.created, o.changes) for o in outcomes] == [(None, False, {})] * 2
    assert rows_written(db) == before


def test_an_update_writes_only_the_changed_fields(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    ep = make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="1")
    before = rows_written(db)
    [outcome] = write(db, ctx, event, ParticipantWrite(
        ep.id, {"bib": "1", "team": "Harriers", "first_name": "Ada", "city": "London"}))
    assert outcome.changes == {"team": (None, "Harriers"), "city": (None, "London")}
    # The EP, its Person, and the single edit's audit entry.
    assert rows_written(db) == before + 3
    db.refresh(ep)
    assert (ep.team, ep.person.city, ep.bib) == ("Harriers", "London", "1")
    entry = db.scalars(select(AuditEntry).where(AuditEntry.target_id == str(ep.id))
                       .order_by(AuditEntry.id.desc())).first()
    assert entry is not None and entry.action == "participant.update"
    assert (entry.before, entry.after) == ({"team": None, "person.city": None},
                                           {"team": "Harriers", "person.city": "London"})


def test_edits_mark_ownable_fields_local_only_when_asked(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    [synced] = write(db, ctx, event, new("Ada", "Lovelace", bib="1"))  # as a sync writes
    write(db, ctx, event, ParticipantWrite(synced.participant_id, {"team": "Harriers"}))
    ep = db.get(EventParticipant, synced.participant_id)
    assert ep is not None and ep.local_fields == []
    write(db, ctx, event, ParticipantWrite(ep.id, {"bib": "5", "city": "Paris", "team": "X"}),
          mark_local=True)
    db.refresh(ep)
    assert ep.local_fields == ["bib", "team"]  # not city: names and contact follow providers
    write(db, ctx, event, ParticipantWrite(ep.id, {"bib": "6"}), mark_local=True)
    db.refresh(ep)
    assert ep.local_fields == ["bib", "team"]
    # Created by hand (the API): what it was given is racehub's from the start.
    [typed] = write(db, ctx, event, new("Grace", "Hopper", bib="2", registration_id="R"),
                    mark_local=True)
    assert db.scalar(select(EventParticipant.local_fields).where(
        EventParticipant.id == typed.participant_id)) == ["bib"]


# --- bibs -----------------------------------------------------------------------------------


def test_a_taken_bib_refuses_its_row_naming_the_holder_and_the_rest_lands(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    holder = make_participant(db, event, first_name="Ada", last_name="Lovelace", bib="7",
                              registration_id="REG-7")
    mover = make_participant(db, event, bib="3")
    taken, fresh, moved, late = write(
        db, ctx, event, new("Grace", "Hopper", bib="7"), new("Alan", "Turing", bib="8"),
        ParticipantWrite(mover.id, {"bib": "7"}), new("Late", "Comer", bib="8"))
    assert taken.error_field == "bib" and not taken.created and taken.participant_id is None
    assert taken.error == ("bib 7 is already used in this event by Ada Lovelace "
                           "(registration REG-7)")
    assert str(holder.id) not in taken.error
    assert moved.error_field == "bib" and "Ada Lovelace" in (moved.error or "")
    assert late.error_field == "bib" and "Alan Turing" in (late.error or "")  # batch's own
    assert fresh.error is None and fresh.created
    db.refresh(mover)
    assert mover.bib == "3"
    bibs = db.scalars(select(EventParticipant.bib).where(EventParticipant.event_id == event.id)
                      .order_by(EventParticipant.bib)).all()
    assert bibs == ["3", "7", "8"]


def test_a_withdrawal_in_the_batch_frees_its_bib_for_another_row(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    leaving = make_participant(db, event, bib="7")
    mover = make_participant(db, event, bib="9")
    # In batch order the takers come first; the withdrawal and the move still free bibs.
    taker, second, withdrawn, moved = write(
        db, ctx, event, new("Grace", "Hopper", bib="7"), new("Alan", "Turing", bib="9"),
        ParticipantWrite(leaving.id, {"status": "withdrawn", "withdrawn_reason": "refund"}),
        ParticipantWrite(mover.id, {"bib": "7b"}))
    assert [o.error for o in (taker, second, withdrawn, moved)] == [None] * 4
    assert withdrawn.changes["status"] == (ParticipantStatus.ACTIVE, ParticipantStatus.WITHDRAWN)
    active = db.execute(select(EventParticipant.bib, EventParticipant.id).where(
        EventParticipant.event_id == event.id,
        EventParticipant.status == ParticipantStatus.ACTIVE)).all()
    assert dict(active) == {"7": taker.participant_id, "9": second.participant_id,
                            "7b": mover.id}


def test_two_rows_swapping_bibs_are_refused_not_half_applied(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    a = make_participant(db, event, bib="1")
    b = make_participant(db, event, bib="2")
    outcomes = write(db, ctx, event, ParticipantWrite(a.id, {"bib": "2"}),
                     ParticipantWrite(b.id, {"bib": "1"}))
    assert [o.error_field for o in outcomes] == ["bib", "bib"]
    db.refresh(a)
    db.refresh(b)
    assert (a.bib, b.bib) == ("1", "2")


# --- sources, categories, tenants -----------------------------------------------------------


def test_a_provider_record_held_elsewhere_refuses_its_row_naming_the_holder(
    db: Session, ctx: TenantContext, event: Event, other_event: Event
) -> None:
    [holder] = write(db, ctx, other_event, new("Ada", "Lovelace", source=("HAKU", "H-1")))
    taken, first, twin = write(db, ctx, event, new("Grace", "Hopper", source=("HAKU", "H-1")),
                               new("Alan", "Turing", source=("HAKU", "H-2")),
                               new("Alan", "Twin", source=("HAKU", "H-2")))
    assert taken.error_field == "source_id"
    assert taken.error == "source HAKU H-1 is already held by Ada Lovelace (event 'Lyon Half')"
    assert str(holder.participant_id) not in taken.error
    assert first.created and twin.error_field == "source_id"
    assert "Alan Turing" in (twin.error or "")


def test_a_category_of_another_event_is_refused(
    db: Session, ctx: TenantContext, event: Event, other_event: Event
) -> None:
    elsewhere = make_category(db, other_event, "5K")
    [outcome] = write(db, ctx, event, new("Ada", "Lovelace", category_id=elsewhere.id))
    assert (outcome.error, outcome.error_field) == ("category not found in this event",
                                                    "category_id")


def test_participants_of_another_tenant_are_not_found(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    foreign_ctx = system_ctx(make_tenant(db))
    foreign_event = make_event(db, db.get(Tenant, foreign_ctx.tenant_id))  # type: ignore[arg-type]
    foreign = make_participant(db, foreign_event, bib="1")
    mine = make_participant(db, event, bib="1")
    refused, kept = write(db, ctx, event, ParticipantWrite(foreign.id, {"bib": "2"}),
                          ParticipantWrite(mine.id, {"bib": "3"}))
    assert (refused.error, refused.error_field) == ("participant not found", "participant_id")
    assert kept.error is None
    db.refresh(foreign)
    assert foreign.bib == "1"
    with pytest.raises(EventNotFound):
        write(db, ctx, foreign_event, ParticipantWrite(foreign.id, {"bib": "2"}))


def test_a_participant_of_another_event_is_not_found(
    db: Session, ctx: TenantContext, event: Event, other_event: Event
) -> None:
    elsewhere = make_participant(db, other_event)
    [outcome] = write(db, ctx, event, ParticipantWrite(elsewhere.id, {"team": "X"}))
    assert outcome.error_field == "participant_id"


def test_unknown_fields_are_a_programming_error(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    with pytest.raises(ValueError, match="chip"):
        write(db, ctx, event, new("Ada", "Lovelace", chip="123"))


# --- a concurrent writer ----------------------------------------------------------------------


def test_a_bib_taken_by_a_concurrent_writer_refuses_that_row_and_the_batch_lands(
    engine: Engine, committed_db: sessionmaker[Session]
) -> None:
    """Both pass the set-based check; the unique index decides. The batch falls back to row
    by row: the loser's row is refused naming the winner, the others are written."""
    with committed_db() as setup:
        tenant = make_tenant(setup)
        event = make_event(setup, tenant)
        setup.commit()
        ctx, event_id = system_ctx(tenant), event.id

    winner = committed_db()
    [won] = write_participants(winner, ctx, event_id=event_id, rows=[
        new("Grace", "First", bib="7")], origin="api", mark_local=True)
    winner.flush()  # holds bib 7 in the index, uncommitted

    def loser(db: Session) -> list[WriteOutcome]:
        outcomes = write_participants(db, ctx, event_id=event_id, rows=[
            new("Alan", "Early", bib="6", birth_date=BORN),
            new("Alan", "Late", bib="7"),
            new("ALAN", "early", bib="8", birth_date=BORN)], origin="sync run 1",
            mark_local=False)
        db.commit()
        return outcomes

    early, late, again = loser_of_a_race(engine, winner, "batch-loser", loser)
    assert late.error_field == "bib" and "Grace First" in (late.error or "")
    assert str(won.participant_id) not in (late.error or "")  # named, not by its id
    assert early.error is None and again.error is None
    assert early.person_id == again.person_id
    with committed_db() as check:
        bibs = dict(check.execute(select(EventParticipant.bib, EventParticipant.id).where(
            EventParticipant.event_id == event_id)).all())
        assert bibs == {"6": early.participant_id, "7": won.participant_id,
                        "8": again.participant_id}
        assert check.scalar(select(AuditEntry.after).where(
            AuditEntry.action == "participant.batch_write",
            AuditEntry.target_id == str(event_id)))["refused"] == 1  # type: ignore[index]



def test_values_a_column_cannot_hold_refuse_their_row_not_the_batch(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    ep = make_participant(db, event, first_name="Ada", last_name="Lovelace")
    long_bib, blank_name, bad_gender, kept = write(
        db, ctx, event, new("Grace", "Hopper", bib="9" * 21),
        ParticipantWrite(ep.id, {"last_name": None}), new("Alan", "Turing", gender="Q"),
        new("Kept", "Anyway"))
    assert long_bib.error == "bib is longer than 20 characters"
    assert (blank_name.error_field, bad_gender.error_field) == ("last_name", "gender")
    assert kept.created and kept.error is None
    db.refresh(ep)
    assert ep.person.last_name == "Lovelace"


def test_json_shaped_values_are_read_as_their_columns_types(
    db: Session, ctx: TenantContext, event: Event
) -> None:
    category = make_category(db, event, "10K")
    [outcome, bad] = write(db, ctx, event, new("Ada", "Lovelace", birth_date=BORN.isoformat(),
                                               category_id=str(category.id)),
                           new("Grace", "Hopper", birth_date="17/05/1990"))
    assert outcome.error is None and outcome.changes["birth_date"] == (None, BORN)
    ep = db.get(EventParticipant, outcome.participant_id)
    assert ep is not None and ep.category_id == category.id and ep.person.birth_date == BORN
    assert bad.error_field == "birth_date"
