"""The participant pull against the RunSignUp simulator over HTTP, on real Postgres: full
and incremental reads, an unchanged re-sync writing nothing, a row keyed by its fallback
that later gains its registration id, unreadable rows, and a fault storm converging."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.events.models import Event, EventParticipant, ParticipantStatus, Person
from racehub.events.writes import ParticipantWrite, write_participants
from racehub.jobs.retry import RetryScheduled
from racehub.providers.runsignup.simulator import RunSignUpSimulator
from racehub.sync.models import (
    CategoryLink,
    ChangeAction,
    EventLink,
    ProviderConnection,
    StagedRow,
    SyncChange,
    SyncConflict,
    SyncedRecord,
    SyncRun,
    SyncStatus,
)
from tests.factories import make_category
from tests.sync.engine_helpers import (
    T0,
    Clock,
    attempt,
    provider_event_id,
    rows_written,
    sync,
)


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"real_shapes": True}


def _rows(sim: RunSignUpSimulator) -> list[dict[str, Any]]:
    return sim.participants[provider_event_id(sim)]


def _key(row: dict[str, Any]) -> str:
    """The ref a row is synced under: its registration id, else its user within the event."""
    if row.get("_keyless") or "registration_id" not in row:
        return f"user:{row['user']['user_id']}@{row['event_id']}"
    return str(row["registration_id"])


def _eps(db: Session, event: Event) -> list[EventParticipant]:
    return list(db.scalars(select(EventParticipant).where(EventParticipant.event_id == event.id)
                           .execution_options(populate_existing=True)))


def _records(db: Session) -> dict[str, SyncedRecord]:
    return {r.source_ref: r for r in db.scalars(
        select(SyncedRecord).execution_options(populate_existing=True))}


def test_a_full_pull_creates_one_ep_per_registration_and_records_each(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    simulator_ = sim[0]
    rows = _rows(simulator_)

    run = sync(db, ctx, keyring, connection, event_link)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert (run.fetched, run.created, run.updated, run.unchanged) == (len(rows), len(rows), 0, 0)
    eps = _eps(db, event)
    assert len(eps) == len(rows)
    records = _records(db)
    assert set(records) == {_key(r) for r in rows}
    keyless = [r for r in rows if r.get("_keyless")]
    assert keyless and all(records[_key(r)].ref_is_fallback for r in keyless)
    by_id = {ep.id: ep for ep in eps}
    for row in rows:
        record = records[_key(row)]
        ep = by_id[record.participant_id]  # type: ignore[index]
        assert (ep.source_provider, ep.source_id) == ("RUNSIGNUP", _key(row))
        assert ep.registration_id == (None if row.get("_keyless") else str(row["registration_id"]))
        assert ep.person.last_name == row["user"]["last_name"]
        assert ep.person.email == row["user"]["email"]
        assert record.payload is not None and record.content_hash
        assert record.person_match == "new"
    # The cursor is the newest modification applied; nothing stays staged.
    newest = max([int(r["last_modified"]) for r in rows]
                 + [int(r["last_modified_ts"])
                    for r in simulator_.removed[provider_event_id(simulator_)]])
    assert event_link.cursor == datetime.fromtimestamp(newest, UTC) == run.cursor_after
    assert event_link.last_success_at == run.finished_at
    assert db.scalar(select(func.count()).select_from(StagedRow)) == 0
    # The history: one change per EP, only the fields the participants page shows.
    changes = list(db.scalars(select(SyncChange).where(SyncChange.run_id == run.id)))
    created = [c for c in changes if c.action == ChangeAction.CREATED]
    assert len(created) == len(rows)
    shown = {field for c in created for field in c.changes}
    assert "bib" in shown and not shown & {"email", "birth_date", "city"}
    # The provider's race of the registrations: a category link, not mapped yet.
    [category_link] = db.scalars(select(CategoryLink).where(CategoryLink.link_id == event_link.id))
    assert category_link.provider_ref == event_link.provider_event_ref
    assert category_link.category_id is None and all(ep.category_id is None for ep in eps)


def test_an_incremental_pull_reads_only_changes_and_a_mapped_category_applies(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    rows = _rows(simulator_)
    changed = next(r for r in rows if not r.get("_keyless"))
    simulator_.modify(changed["registration_id"], first_name="Zed")
    added = simulator_.add_participant(provider_event_id(simulator_))

    run = sync(db, ctx, keyring, connection, event_link)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.fetched < len(rows) / 4  # the overlap window's rows, not all of them
    assert (run.created, run.updated) == (1, 1)
    records = _records(db)
    by_id = {ep.id: ep for ep in _eps(db, event)}
    assert by_id[records[str(changed["registration_id"])].participant_id].person.first_name \
        == "Zed"  # type: ignore[index]
    assert str(added["registration_id"]) in records
    assert len(by_id) == len(rows)

    # The provider's race mapped to a category: a full refresh reads everything again and
    # the category reaches every EP (an unchanged payload with something to write is written).
    category = make_category(db, event, name="5K")
    db.execute(update(CategoryLink).values(category_id=category.id))
    full = sync(db, ctx, keyring, connection, event_link, full_refresh=True)
    assert full.fetched == len(rows) and full.created == 0 and full.updated == len(rows)
    assert {ep.category_id for ep in _eps(db, event)} == {category.id}


def test_an_unchanged_resync_writes_no_row(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    first = sync(db, ctx, keyring, connection, event_link)
    before = rows_written(db)

    again = sync(db, ctx, keyring, connection, event_link, full_refresh=True)

    assert again.status == SyncStatus.SUCCEEDED, again.error
    assert again.fetched == first.fetched and again.unchanged == first.fetched
    assert (again.created, again.updated, again.conflicts) == (0, 0, 0)
    assert rows_written(db) == before


def _staged_inserts(db: Session) -> int:
    db.flush()
    return int(db.execute(text(
        "SELECT n_tup_ins FROM pg_stat_xact_user_tables WHERE relname = 'sync_staged_rows'"))
        .scalar() or 0)


def test_an_unchanged_resync_stages_nothing_and_still_moves_the_cursor(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    first = sync(db, ctx, keyring, connection, event_link)
    staged = _staged_inserts(db)
    event_link.cursor = None  # as if the cursor had never moved: the re-read moves it
    db.flush()

    again = sync(db, ctx, keyring, connection, event_link, full_refresh=True)

    assert again.status == SyncStatus.SUCCEEDED, again.error
    assert again.unchanged == again.fetched == first.fetched
    # The withdrawals the simulator lists are staged (the apply step decides on them);
    # no registration is.
    withdrawn = len(sim[0].removed[provider_event_id(sim[0])])
    assert _staged_inserts(db) - staged == withdrawn
    assert event_link.cursor == first.cursor_after == again.cursor_after


def test_an_unchanged_registration_withdrawn_in_racehub_is_staged_and_restored(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    sync(db, ctx, keyring, connection, event_link)
    row = next(r for r in _rows(sim[0]) if not r.get("_keyless"))
    record = _records(db)[str(row["registration_id"])]
    record.withdrawn_at = T0
    db.execute(update(EventParticipant).where(EventParticipant.id == record.participant_id)
               .values(status=ParticipantStatus.WITHDRAWN, withdrawn_at=T0))
    db.flush()

    again = sync(db, ctx, keyring, connection, event_link, full_refresh=True)

    assert again.status == SyncStatus.SUCCEEDED, again.error
    # Its payload is unchanged (counted so); coming back counts as an update.
    assert (again.updated, again.unchanged) == (1, again.fetched)
    ep = db.get_one(EventParticipant, record.participant_id)
    db.refresh(ep)
    assert (ep.status, ep.withdrawn_at) == (ParticipantStatus.ACTIVE, None)


def test_a_row_without_registration_id_that_gains_one_stays_the_same_ep(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    row = next(r for r in _rows(simulator_) if r.get("_keyless"))
    fallback = _key(row)
    ep_id = _records(db)[fallback].participant_id
    count = len(_eps(db, event))

    simulator_.give_registration_id(row["registration_id"])
    run = sync(db, ctx, keyring, connection, event_link)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    records = _records(db)
    assert fallback not in records
    record = records[str(row["registration_id"])]
    assert record.participant_id == ep_id and not record.ref_is_fallback
    ep = db.get(EventParticipant, ep_id)
    assert ep is not None
    db.refresh(ep)
    assert ep.registration_id == str(row["registration_id"])
    assert (ep.source_provider, ep.source_id) == ("RUNSIGNUP", str(row["registration_id"]))
    assert len(_eps(db, event)) == count and run.created == 0


def test_unreadable_rows_are_problems_naming_id_and_field_and_the_rest_applies(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    simulator_ = sim[0]
    simulator_.faults.arm("malformed_rows", 1, rows=[1])  # its user.dob: "1990-13-45"
    rows = _rows(simulator_)

    run = sync(db, ctx, keyring, connection, event_link)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.problems >= 1 and run.created == len(rows) - 1
    [problem] = db.scalars(select(SyncChange).where(SyncChange.run_id == run.id,
                                                    SyncChange.action == ChangeAction.PROBLEM))
    assert problem.source_ref == _key(rows[1])
    assert problem.message and "user.dob" in problem.message and _key(rows[1]) in problem.message


def test_a_local_bib_edit_survives_a_resync_as_a_conflict(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    row = next(r for r in _rows(simulator_) if r["bib_num"] and not r.get("_keyless"))
    ep_id = _records(db)[str(row["registration_id"])].participant_id
    write_participants(db, ctx, event_id=event.id, origin="api", mark_local=True,
                       rows=[ParticipantWrite(participant_id=ep_id, values={"bib": "9999"})])
    simulator_.modify(row["registration_id"], bib_num=77777, last_name="Renamed")

    run = sync(db, ctx, keyring, connection, event_link)

    assert (run.updated, run.conflicts) == (1, 1)
    ep = db.get(EventParticipant, ep_id)
    assert ep is not None
    db.refresh(ep)
    person = db.get(Person, ep.person_id)
    assert ep.bib == "9999" and person is not None and person.last_name == "Renamed"
    [conflict] = db.scalars(select(SyncConflict).where(SyncConflict.participant_id == ep_id))
    assert (conflict.field, conflict.local_value, conflict.provider_value) == \
        ("bib", "9999", "77777")
    # The same provider value again raises nothing new.
    simulator_.modify(row["registration_id"], last_name="Renamed Again")
    again = sync(db, ctx, keyring, connection, event_link)
    assert again.conflicts == 0
    assert db.scalar(select(func.count()).select_from(SyncConflict)) == 1


def test_a_fault_storm_converges_with_no_duplicate_and_no_lost_ep(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    from racehub.sync import runs

    simulator_ = sim[0]
    faults = simulator_.faults
    faults.arm("http_429", 2, retry_after=0)
    faults.arm("http_500", 3)
    faults.arm("throttle", 2)
    faults.arm("malformed_rows", 2, rows=[0, 2])
    faults.arm("repeat_page", 1)  # the read fails (RepeatedPage): retried later
    faults.arm("change_between_pages", 2)  # a row changes, another is removed, mid-read
    clock = Clock()
    [request] = runs.request_participant_sync(db, ctx, connection_id=connection.id)
    run = request.run
    for _ in range(6):
        try:
            attempt(db, ctx, keyring, run, clock=clock)
        except RetryScheduled:
            assert run.status == SyncStatus.RETRYING, run.error
            assert run.next_attempt_at is not None
            clock.now = run.next_attempt_at
            simulator_.add_participant(provider_event_id(simulator_))  # arrives meanwhile
            continue
        break
    assert run.status == SyncStatus.SUCCEEDED, run.error
    # Then a full read picks up the rows the storm left unreadable, while one more
    # registration arrives and a synced one is removed between two of its pages.
    simulator_.add_participant(provider_event_id(simulator_))
    faults.arm("change_between_pages", 1)
    after = sync(db, ctx, keyring, connection, event_link, full_refresh=True)
    assert after.status == SyncStatus.SUCCEEDED and after.problems == 0
    assert after.withdrawn == 1

    rows = _rows(simulator_)
    removed = {_key(r) for r in simulator_.removed[provider_event_id(simulator_)]}
    records = _records(db)
    eps = _eps(db, event)
    active = [ep for ep in eps if ep.status == ParticipantStatus.ACTIVE]
    # Every registration is one EP (none lost, none twice); the ones removed at the
    # provider while it was read are withdrawn, not deleted.
    assert {ep.source_id for ep in active} == {_key(r) for r in rows}
    assert len({ep.source_id for ep in eps}) == len(eps)
    assert {r.participant_id for r in records.values()} == {ep.id for ep in eps}
    withdrawn = {ep.source_id for ep in eps if ep.status == ParticipantStatus.WITHDRAWN}
    assert withdrawn and withdrawn == removed & set(records)
    assert db.scalar(select(func.count()).select_from(SyncRun)
                     .where(SyncRun.status != SyncStatus.SUCCEEDED)) == 0


def test_a_withdrawal_is_soft_and_a_transfer_moves_the_bib_with_its_lineage(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    keyed = [r for r in _rows(simulator_) if r["bib_num"] and not r.get("_keyless")]
    cancelled, moved = keyed[0], keyed[1]
    records = _records(db)
    cancelled_ep = records[str(cancelled["registration_id"])].participant_id
    moved_ep = records[str(moved["registration_id"])].participant_id
    simulator_.remove(cancelled["registration_id"], reason="Cancelled by participant")
    simulator_.remove(moved["registration_id"], reason="Transferred to another registration")
    new = simulator_.add_participant(provider_event_id(simulator_))
    new["user"] = dict(moved["user"])  # the same person, registered again
    new["bib_num"] = None

    run = sync(db, ctx, keyring, connection, event_link)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert (run.created, run.withdrawn) == (1, 2)
    by_id = {ep.id: ep for ep in _eps(db, event)}
    gone = by_id[cancelled_ep]  # type: ignore[index]
    assert gone.status == ParticipantStatus.WITHDRAWN and gone.withdrawn_at is not None
    assert gone.withdrawn_reason == "Cancelled by participant"
    old = by_id[moved_ep]  # type: ignore[index]
    successor = by_id[_records(db)[str(new["registration_id"])].participant_id]  # type: ignore[index]
    assert old.status == ParticipantStatus.WITHDRAWN
    assert successor.bib == str(moved["bib_num"]) and successor.transferred_from_id == old.id
    assert successor.person_id == old.person_id
    actions = {c.action for c in db.scalars(select(SyncChange).where(SyncChange.run_id == run.id))}
    assert {ChangeAction.CREATED, ChangeAction.WITHDRAWN, ChangeAction.TRANSFERRED} <= actions


def test_a_registration_the_write_path_refuses_is_read_again_by_the_next_incremental_run(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    simulator_ = sim[0]
    sync(db, ctx, keyring, connection, event_link)
    refused, later = [r for r in _rows(simulator_) if not r.get("_keyless")][:2]
    # A bib entered by hand in racehub, then given to a registration at the provider.
    [holder] = write_participants(db, ctx, event_id=event.id, origin="api", mark_local=True,
                                  rows=[ParticipantWrite(participant_id=None, values={
                                      "first_name": "Hand", "last_name": "Entered",
                                      "bib": "4242"})])
    simulator_.modify(refused["registration_id"], bib_num=4242)
    # A change long after it (beyond the overlap window) moves the cursor on.
    simulator_.pass_time(24 * 3600)
    simulator_.modify(later["registration_id"], first_name="Later")

    run = sync(db, ctx, keyring, connection, event_link)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.problems == 1 and run.updated == 1
    [problem] = db.scalars(select(SyncChange).where(SyncChange.run_id == run.id,
                                                    SyncChange.action == ChangeAction.PROBLEM))
    assert problem.source_ref == str(refused["registration_id"]) and "4242" in (
        problem.message or "")
    # The bib is freed in racehub; the provider changes nothing: the next incremental run
    # still reads the refused registration and applies it.
    write_participants(db, ctx, event_id=event.id, origin="api", mark_local=True,
                       rows=[ParticipantWrite(participant_id=holder.participant_id,
                                              values={"status": ParticipantStatus.WITHDRAWN})])
    again = sync(db, ctx, keyring, connection, event_link)

    assert again.status == SyncStatus.SUCCEEDED, again.error
    assert again.problems == 0 and again.updated == 1
    ep_id = _records(db)[str(refused["registration_id"])].participant_id
    ep = db.get(EventParticipant, ep_id)
    assert ep is not None
    db.refresh(ep)
    assert ep.bib == "4242"
    # Nothing refused any more: the cursor moves past both changes.
    third = sync(db, ctx, keyring, connection, event_link)
    assert third.fetched < again.fetched or third.updated == 0
