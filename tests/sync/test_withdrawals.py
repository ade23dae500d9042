"""Withdrawals are soft, a transfer moves the bib and records its lineage, a registration
that comes back is restored: on records and EPs made directly in the test database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.events.models import Event, EventParticipant, ParticipantStatus
from racehub.providers.base import ProviderWithdrawal
from racehub.sync.models import (
    ChangeAction,
    EventLink,
    SyncChange,
    SyncedRecord,
    SyncRun,
    SyncStatus,
)
from racehub.sync.withdrawals import apply_withdrawals, is_transfer, restore_participants
from tests.factories import make_participant, make_synced_record
from tests.sync.conftest import start_run

NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)
WHEN = datetime(2026, 4, 30, 18, tzinfo=UTC)


@pytest.fixture
def link(offline_link: EventLink) -> EventLink:
    return offline_link


@pytest.fixture
def run(db: Session, link: EventLink) -> SyncRun:
    return start_run(db, link, SyncStatus.QUEUED)


def _registration(db: Session, event: Event, ref: str, *, bib: str | None = None,
                  person_ref: str | None = None, email: str | None = None,
                  first_name: str = "Ada") -> tuple[EventParticipant, SyncedRecord]:
    ep = make_participant(db, event, first_name=first_name, bib=bib,
                          birth_date=date(1990, 12, 10))
    ep.person.email = email
    record = make_synced_record(db, ep, source_ref=ref, provider_person_ref=person_ref)
    return ep, record


def _changes(db: Session, run: SyncRun) -> list[tuple[str | None, ChangeAction]]:
    return sorted((c.source_ref, c.action) for c in db.scalars(
        select(SyncChange).where(SyncChange.run_id == run.id)))


def test_a_withdrawal_is_soft_frees_the_bib_and_is_applied_once(
    db: Session, ctx: TenantContext, event: Event, link: EventLink, run: SyncRun
) -> None:
    ep, record = _registration(db, event, "r1", bib="21")
    withdrawal = ProviderWithdrawal(ref="r1", event_ref="100:200", reason="Refunded",
                                    withdrawn_at=WHEN)

    outcome = apply_withdrawals(db, ctx, run=run, link=link, withdrawals=[withdrawal],
                                created={}, now=NOW)

    assert (outcome.withdrawn, outcome.transferred, outcome.problems) == (1, 0, 0)
    db.expire_all()
    after = db.get_one(EventParticipant, ep.id)
    assert (after.status, after.withdrawn_at, after.withdrawn_reason, after.bib) == (
        ParticipantStatus.WITHDRAWN, WHEN, "Refunded", "21")
    kept = db.get_one(SyncedRecord, record.id)
    assert (kept.withdrawn_at, kept.withdrawn_reason) == (WHEN, "Refunded")
    [change] = db.scalars(select(SyncChange).where(SyncChange.run_id == run.id)).all()
    assert (change.action, change.participant_id, change.record_id) == (
        ChangeAction.WITHDRAWN, ep.id, record.id)
    assert change.changes["status"] == ["active", "withdrawn"]
    # The bib is free for another active participant.
    make_participant(db, event, first_name="Grace", bib="21")
    # The overlap window sends the withdrawal again: nothing more happens.
    again = apply_withdrawals(db, ctx, run=run, link=link, withdrawals=[withdrawal],
                              created={}, now=NOW)
    assert (again.withdrawn, again.changes) == (0, [])


def test_a_withdrawal_of_a_registration_never_synced_is_ignored(
    db: Session, ctx: TenantContext, link: EventLink, run: SyncRun
) -> None:
    outcome = apply_withdrawals(
        db, ctx, run=run, link=link, created={}, now=NOW,
        withdrawals=[ProviderWithdrawal(ref="unknown", event_ref="100:200")])
    assert (outcome.withdrawn, outcome.changes) == (0, [])


def test_a_withdrawal_without_a_time_or_reason_takes_the_runs_time_and_a_default(
    db: Session, ctx: TenantContext, event: Event, link: EventLink, run: SyncRun
) -> None:
    ep, _ = _registration(db, event, "r1")
    apply_withdrawals(db, ctx, run=run, link=link, created={}, now=NOW,
                      withdrawals=[ProviderWithdrawal(ref="r1", event_ref="100:200")])
    db.expire_all()
    after = db.get_one(EventParticipant, ep.id)
    assert (after.withdrawn_at, after.withdrawn_reason) == (NOW, "withdrawn at the provider")


@pytest.mark.parametrize("match", ["provider_person", "email_birth_date"])
def test_a_transfer_moves_the_bib_to_the_new_registration_and_records_the_lineage(
    db: Session, ctx: TenantContext, event: Event, link: EventLink, run: SyncRun, match: str
) -> None:
    by_person_ref = match == "provider_person"
    old, old_record = _registration(db, event, "r1", bib="21",
                                    person_ref="u-9" if by_person_ref else None,
                                    email=None if by_person_ref else "ada@example.test")
    # The new registration, created by this run under a Person of its own; another one
    # of someone else beside it.
    new, new_record = _registration(db, event, "r2",
                                    person_ref="u-9" if by_person_ref else None,
                                    email=None if by_person_ref else "ADA@example.test")
    stranger, _ = _registration(db, event, "r3", person_ref="u-1",
                                email="grace@example.test", first_name="Grace")

    outcome = apply_withdrawals(
        db, ctx, run=run, link=link, now=NOW, created={"r2": new.id, "r3": stranger.id},
        withdrawals=[ProviderWithdrawal(ref="r1", event_ref="100:200",
                                        reason="Transferred to another event")])

    assert (outcome.withdrawn, outcome.transferred, outcome.problems) == (1, 1, 0)
    db.expire_all()
    before, after = db.get_one(EventParticipant, old.id), db.get_one(EventParticipant, new.id)
    assert before.status == ParticipantStatus.WITHDRAWN
    assert (after.status, after.bib, after.transferred_from_id) == (
        ParticipantStatus.ACTIVE, "21", old.id)
    assert db.get_one(EventParticipant, stranger.id).bib is None
    assert db.get_one(SyncedRecord, old_record.id).transferred_to_id == new_record.id
    assert _changes(db, run) == [("r1", ChangeAction.TRANSFERRED),
                                 ("r2", ChangeAction.TRANSFERRED)]


def test_a_transfer_without_a_new_registration_of_the_same_person_is_a_plain_withdrawal(
    db: Session, ctx: TenantContext, event: Event, link: EventLink, run: SyncRun
) -> None:
    old, _ = _registration(db, event, "r1", bib="21", person_ref="u-9")
    other, _ = _registration(db, event, "r2", person_ref="u-1", first_name="Grace")

    outcome = apply_withdrawals(
        db, ctx, run=run, link=link, now=NOW, created={"r2": other.id},
        withdrawals=[ProviderWithdrawal(ref="r1", event_ref="100:200", reason="Transferred")])

    assert (outcome.withdrawn, outcome.transferred) == (1, 0)
    db.expire_all()
    assert db.get_one(EventParticipant, other.id).bib is None
    assert _changes(db, run) == [("r1", ChangeAction.WITHDRAWN)]


def test_a_transfer_whose_new_entry_already_has_a_bib_keeps_it(
    db: Session, ctx: TenantContext, event: Event, link: EventLink, run: SyncRun
) -> None:
    old, _ = _registration(db, event, "r1", bib="21", person_ref="u-9")
    new, _ = _registration(db, event, "r2", bib="305", person_ref="u-9")

    outcome = apply_withdrawals(
        db, ctx, run=run, link=link, now=NOW, created={"r2": new.id},
        withdrawals=[ProviderWithdrawal(ref="r1", event_ref="100:200", reason="transfer")])

    assert outcome.transferred == 1
    db.expire_all()
    after = db.get_one(EventParticipant, new.id)
    assert (after.bib, after.transferred_from_id) == ("305", old.id)


def test_a_withdrawn_registration_that_comes_back_is_restored(
    db: Session, ctx: TenantContext, event: Event, link: EventLink, run: SyncRun
) -> None:
    ep, record = _registration(db, event, "r1", bib="21")
    apply_withdrawals(db, ctx, run=run, link=link, created={}, now=NOW,
                      withdrawals=[ProviderWithdrawal(ref="r1", event_ref="100:200")])
    active, _ = _registration(db, event, "r2", bib="22")

    outcome = restore_participants(db, ctx, run=run, link=link, source_refs=["r1", "r2"])

    assert (outcome.restored, outcome.problems) == (1, 0)
    db.expire_all()
    after = db.get_one(EventParticipant, ep.id)
    assert (after.status, after.withdrawn_at, after.withdrawn_reason, after.bib) == (
        ParticipantStatus.ACTIVE, None, None, "21")
    assert db.get_one(SyncedRecord, record.id).withdrawn_at is None
    assert db.get_one(EventParticipant, active.id).status == ParticipantStatus.ACTIVE
    assert _changes(db, run) == [("r1", ChangeAction.RESTORED), ("r1", ChangeAction.WITHDRAWN)]


def test_a_restore_whose_bib_was_taken_meanwhile_stays_withdrawn_as_a_problem(
    db: Session, ctx: TenantContext, event: Event, link: EventLink, run: SyncRun
) -> None:
    ep, record = _registration(db, event, "r1", bib="21")
    apply_withdrawals(db, ctx, run=run, link=link, created={}, now=NOW,
                      withdrawals=[ProviderWithdrawal(ref="r1", event_ref="100:200")])
    make_participant(db, event, first_name="Grace", last_name="Hopper", bib="21")

    outcome = restore_participants(db, ctx, run=run, link=link, source_refs=["r1"])

    assert (outcome.restored, outcome.problems) == (0, 1)
    db.expire_all()
    assert db.get_one(EventParticipant, ep.id).status == ParticipantStatus.WITHDRAWN
    assert db.get_one(SyncedRecord, record.id).withdrawn_at is not None
    problem = db.scalar(select(SyncChange).where(SyncChange.run_id == run.id,
                                                 SyncChange.action == ChangeAction.PROBLEM))
    assert problem is not None and "Hopper" in (problem.message or "")


def test_transfer_reasons() -> None:
    assert is_transfer("Transferred to another event") and is_transfer("TRANSFER")
    assert not is_transfer("Refunded") and not is_transfer(None)
