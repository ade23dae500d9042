"""Withdrawals, restores and transfers of synced registrations.

A withdrawal is soft: the EP stays, with status withdrawn, when and why (its bib is freed
by the partial unique index, never deleted). A transfer (the provider's reason says
"transfer") whose new registration of the same person was created in the same run moves
the bib to the new registration's EP and records the lineage both ways
(``synced_records.transferred_to_id``, ``EventParticipant.transferred_from_id``). A
withdrawn registration that comes back active is restored. Every EP change goes through
the one write path (``events.writes.write_participants``, ``mark_local=False``); each
record's change is a SyncChange row of the run.

Who calls what (the engine, after it applied a batch of participant rows):
- ``restore_participants(..., source_refs=<the refs of the active rows it applied>)``:
  those withdrawn before come back (the others are left alone, so any refs will do);
- ``apply_withdrawals(..., withdrawals=<the run's staged withdrawals>,
  created=<source_ref -> new EP id of this run>)`` once every participant row is applied,
  so that a transfer finds the registration it went to.
The run's counts are the engine's to set from the outcomes: ``withdrawn`` counts every
registration withdrawn (transfers included), ``transferred`` the transfers among them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.query import any_of, scoped
from racehub.events.models import EventParticipant, ParticipantStatus, Person
from racehub.events.writes import ParticipantWrite, WriteOutcome, write_participants
from racehub.providers.base import ProviderWithdrawal
from racehub.sync.merge import as_json
from racehub.sync.models import ChangeAction, EventLink, SyncChange, SyncedRecord, SyncRun

REASON_MAX = 300  # EventParticipant.withdrawn_reason, SyncedRecord.withdrawn_reason
DEFAULT_REASON = "withdrawn at the provider"


@dataclass
class WithdrawalOutcome:
    withdrawn: int = 0  # registrations withdrawn, transfers included
    restored: int = 0
    transferred: int = 0
    problems: int = 0  # rows the write path refused (a problem change names why)
    changes: list[SyncChange] = field(default_factory=list)  # added to the session


def is_transfer(reason: str | None) -> bool:
    return reason is not None and "transfer" in reason.lower()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Entry:
    """An EP with what matching a transfer needs."""

    id: uuid.UUID
    status: ParticipantStatus
    bib: str | None
    person_id: uuid.UUID
    email: str | None
    birth_date: date | None


def _entries(db: Session, ctx: TenantContext, ids: Collection[uuid.UUID]
             ) -> dict[uuid.UUID, _Entry]:
    if not ids:
        return {}
    rows = db.execute(
        select(EventParticipant.id, EventParticipant.status, EventParticipant.bib,
               EventParticipant.person_id, func.lower(Person.email), Person.birth_date)
        .join(Person, Person.id == EventParticipant.person_id)
        .where(EventParticipant.tenant_id == ctx.tenant_id, any_of(EventParticipant.id, ids)))
    return {row[0]: _Entry(*row) for row in rows}


def _records(db: Session, ctx: TenantContext, link: EventLink, refs: Collection[str]
             ) -> dict[str, SyncedRecord]:
    if not refs:
        return {}
    rows = db.scalars(
        scoped(ctx, SyncedRecord)
        .where(SyncedRecord.provider == link.provider, any_of(SyncedRecord.source_ref, refs))
        .with_for_update())
    return {r.source_ref: r for r in rows}


def _change(ctx: TenantContext, run: SyncRun, record: SyncedRecord | None,
            participant_id: uuid.UUID | None, action: ChangeAction,
            changes: Mapping[str, tuple[Any, Any]], message: str | None = None,
            source_ref: str | None = None) -> SyncChange:
    return SyncChange(
        tenant_id=ctx.tenant_id, run_id=run.id, record_id=record.id if record else None,
        participant_id=participant_id, source_ref=record.source_ref if record else source_ref,
        action=action, message=message and message[:1000],
        changes={name: [as_json(old), as_json(new)] for name, (old, new) in changes.items()})


def _transfer_target(old: _Entry, old_record: SyncedRecord,
                     candidates: dict[str, tuple[SyncedRecord | None, _Entry]],
                     ) -> str | None:
    """The source ref of the one registration created in this run by the same person:
    the provider's person id, else the same Person, else e-mail and birth date."""
    tests: list[Callable[[SyncedRecord | None, _Entry], bool]] = []
    if old_record.provider_person_ref:
        tests.append(lambda r, _: r is not None
                     and r.provider_person_ref == old_record.provider_person_ref)
    tests.append(lambda _, e: e.person_id == old.person_id)
    if old.email and old.birth_date:
        tests.append(lambda _, e: e.email == old.email and e.birth_date == old.birth_date)
    for test in tests:
        found = [ref for ref, (record, entry) in candidates.items() if test(record, entry)]
        if len(found) == 1:
            return found[0]
    return None


def apply_withdrawals(db: Session, ctx: TenantContext, *, run: SyncRun, link: EventLink,
                      withdrawals: Sequence[ProviderWithdrawal],
                      created: Mapping[str, uuid.UUID],
                      now: datetime | None = None) -> WithdrawalOutcome:
    """Withdraw the EPs of ``withdrawals`` (soft), moving the bib of a transfer to the
    registration it went to (one of ``created``: source_ref -> the EP this run created).
    A registration never synced, or already withdrawn, is left alone (the overlap window
    resends withdrawals). Adds the run's SyncChange rows; returns the counts."""
    outcome = WithdrawalOutcome()
    if link.event_id is None or not withdrawals:
        return outcome
    event_id = link.event_id
    when_default = now or _now()
    by_ref = {w.ref: w for w in withdrawals}
    records = {ref: r for ref, r in _records(db, ctx, link, by_ref).items()
               if r.withdrawn_at is None and r.event_id == event_id}
    new_records = _records(db, ctx, link, [ref for ref in created if ref not in records])
    entries = _entries(db, ctx, {r.participant_id for r in records.values()
                                 if r.participant_id is not None} | set(created.values()))
    candidates = {ref: (new_records.get(ref), entries[ep_id]) for ref, ep_id in created.items()
                  if ep_id in entries}

    writes: list[ParticipantWrite] = []
    targets: dict[str, str] = {}  # withdrawn ref -> the ref it was transferred to
    for ref, record in records.items():
        withdrawal = by_ref[ref]
        reason = (withdrawal.reason or DEFAULT_REASON)[:REASON_MAX]
        when = withdrawal.withdrawn_at or when_default
        record.withdrawn_at, record.withdrawn_reason = when, reason
        old = entries.get(record.participant_id) if record.participant_id else None
        if old is None:  # its EP was deleted: the record alone remembers the withdrawal
            outcome.withdrawn += 1
            outcome.changes.append(_change(ctx, run, record, None, ChangeAction.WITHDRAWN, {},
                                           f"withdrawn ({reason}); it has no participant"))
            continue
        values: dict[str, Any] = {"status": ParticipantStatus.WITHDRAWN, "withdrawn_at": when,
                                  "withdrawn_reason": reason}
        target = _transfer_target(old, record, candidates) if is_transfer(reason) else None
        if target is not None:
            targets[ref] = target
            new_entry = candidates.pop(target)[1]
            moved: dict[str, Any] = {"transferred_from_id": old.id}
            if old.bib and not new_entry.bib:
                # The withdrawn EP keeps it, as history (the index frees it): a refused
                # move then loses nothing.
                moved["bib"] = old.bib
            writes.append(ParticipantWrite(participant_id=new_entry.id, values=moved,
                                           key=f"to:{ref}"))
        writes.append(ParticipantWrite(participant_id=old.id, values=values, key=ref))
    results = _write(db, ctx, run, event_id, writes)

    for ref, record in records.items():
        if ref not in results:
            continue
        written = results[ref]
        if written.error is not None:
            _refused(ctx, run, record, written, outcome)
            record.withdrawn_at = record.withdrawn_reason = None  # not withdrawn after all
            continue
        outcome.withdrawn += 1
        target = targets.get(ref)
        if target is None:
            outcome.changes.append(_change(ctx, run, record, written.participant_id,
                                           ChangeAction.WITHDRAWN, written.changes))
            continue
        outcome.transferred += 1
        new_record = new_records.get(target)
        record.transferred_to_id = new_record.id if new_record else None
        took = results[f"to:{ref}"]
        bib = took.changes.get("bib", (None, None))[1]
        outcome.changes.append(_change(
            ctx, run, record, written.participant_id, ChangeAction.TRANSFERRED, written.changes,
            f"transferred to registration {target} (participant {took.participant_id})"
            + (f"; bib {bib} moved with it" if bib else "")))
        if took.error is not None:
            _refused(ctx, run, new_record, took, outcome, source_ref=target)
        else:
            outcome.changes.append(_change(
                ctx, run, new_record, took.participant_id, ChangeAction.TRANSFERRED,
                took.changes, f"took over registration {ref} (participant "
                              f"{written.participant_id})", source_ref=target))
    db.add_all(outcome.changes)
    db.flush()  # the records' new state with the changes, before the caller reads either
    return outcome


def restore_participants(db: Session, ctx: TenantContext, *, run: SyncRun, link: EventLink,
                         source_refs: Collection[str]) -> WithdrawalOutcome:
    """Bring back the EPs of the registrations among ``source_refs`` that were withdrawn
    and are active at the provider again (status active, withdrawal cleared). One whose bib
    another active EP took meanwhile stays withdrawn, as a problem naming the holder."""
    outcome = WithdrawalOutcome()
    if link.event_id is None or not source_refs:
        return outcome
    records = {ref: r for ref, r in _records(db, ctx, link, source_refs).items()
               if r.withdrawn_at is not None and r.event_id == link.event_id}
    writes = [ParticipantWrite(participant_id=r.participant_id, key=ref,
                               values={"status": ParticipantStatus.ACTIVE, "withdrawn_at": None,
                                       "withdrawn_reason": None})
              for ref, r in records.items() if r.participant_id is not None]
    results = _write(db, ctx, run, link.event_id, writes)
    for ref, record in records.items():
        written = results.get(ref)
        if written is not None and written.error is not None:
            _refused(ctx, run, record, written, outcome)
            continue
        record.withdrawn_at = record.withdrawn_reason = None
        outcome.restored += 1
        outcome.changes.append(_change(
            ctx, run, record, record.participant_id, ChangeAction.RESTORED,
            written.changes if written else {}, "active at the provider again"))
    db.add_all(outcome.changes)
    db.flush()  # the records' new state with the changes, before the caller reads either
    return outcome


def _write(db: Session, ctx: TenantContext, run: SyncRun, event_id: uuid.UUID,
           writes: list[ParticipantWrite]) -> dict[str, WriteOutcome]:
    if not writes:
        return {}
    outcomes = write_participants(db, ctx, event_id=event_id, rows=writes,
                                  origin=f"sync run {run.id}", mark_local=False)
    return {o.key: o for o in outcomes if o.key is not None}


def _refused(ctx: TenantContext, run: SyncRun, record: SyncedRecord | None,
             written: WriteOutcome, outcome: WithdrawalOutcome,
             source_ref: str | None = None) -> None:
    outcome.problems += 1
    outcome.changes.append(_change(
        ctx, run, record, written.participant_id, ChangeAction.PROBLEM, {},
        f"{written.error_field or 'row'}: {written.error}", source_ref=source_ref))
