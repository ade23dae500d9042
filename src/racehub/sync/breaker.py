"""The circuit breaker of a sync run: a staged read that looks like a provider's mistake is
held, whatever started the run, instead of applied.

Two checks, on what the run staged (nothing is written to find out):

- **mass withdrawal**: the staged withdrawals would withdraw more than
  ``RACEHUB_SYNC_BREAKER_WITHDRAW_PERCENT`` of the event's active participants (counted
  as ``apply_withdrawals`` would: a synced, not yet withdrawn registration of this event
  whose participant is active) and at least ``RACEHUB_SYNC_BREAKER_WITHDRAW_MIN`` of them
  (one withdrawal in an event of five is 20% and ordinary);
- **zero rows**: a full read (the link's first, or ``fullRefresh``) returned no
  registration at all while the link has at least
  ``RACEHUB_SYNC_BREAKER_ZERO_ROWS_MIN_RECORDS`` synced registrations that are not
  withdrawn. An incremental read returning nothing is the normal "nothing changed" and is
  not held. (The engine never infers a withdrawal from a registration's absence, so such a
  read would change nothing; it is held because the provider answering "nobody" for an
  event with registrants is what a wrong account or event looks like.)

A read that fails is not held: it is retried by the job's retry policy (part 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.events.models import EventParticipant, ParticipantStatus
from racehub.settings import get_settings
from racehub.sync.models import EventLink, StagedKind, StagedRow, SyncedRecord, SyncRun


@dataclass(frozen=True)
class Limits:
    withdraw_percent: float
    zero_rows_min_records: int
    withdraw_min: int = 1

    @classmethod
    def from_settings(cls) -> Limits:
        settings = get_settings()
        return cls(withdraw_percent=settings.sync_breaker_withdraw_percent,
                   zero_rows_min_records=settings.sync_breaker_zero_rows_min_records,
                   withdraw_min=settings.sync_breaker_withdraw_min)


def would_withdraw(db: Session, run: SyncRun, link: EventLink) -> int:
    """Active participants of the link's event that the run's staged withdrawals would
    withdraw."""
    return db.scalar(
        select(func.count(func.distinct(SyncedRecord.id)))
        .select_from(StagedRow)
        .join(SyncedRecord, (SyncedRecord.tenant_id == StagedRow.tenant_id)
              & (SyncedRecord.provider == link.provider)
              & (SyncedRecord.source_ref == StagedRow.source_ref))
        .join(EventParticipant, EventParticipant.id == SyncedRecord.participant_id)
        .where(StagedRow.run_id == run.id, StagedRow.kind == StagedKind.WITHDRAWAL,
               SyncedRecord.withdrawn_at.is_(None), SyncedRecord.event_id == link.event_id,
               EventParticipant.status == ParticipantStatus.ACTIVE)) or 0


def active_participants(db: Session, run: SyncRun, link: EventLink) -> int:
    return db.scalar(select(func.count()).select_from(EventParticipant).where(
        EventParticipant.tenant_id == run.tenant_id, EventParticipant.event_id == link.event_id,
        EventParticipant.status == ParticipantStatus.ACTIVE)) or 0


def synced_registrations(db: Session, link: EventLink) -> int:
    """The link's synced registrations that are not withdrawn."""
    return db.scalar(select(func.count()).select_from(SyncedRecord).where(
        SyncedRecord.tenant_id == link.tenant_id, SyncedRecord.link_id == link.id,
        SyncedRecord.withdrawn_at.is_(None))) or 0


def was_full_read(run: SyncRun) -> bool:
    """The read asked for everything (no cursor to start from, or a full refresh)."""
    return run.full_refresh or run.cursor_before is None


def hold_reason(db: Session, run: SyncRun, link: EventLink,
                limits: Limits | None = None) -> str | None:
    """Why the breaker holds the run's staged read, or None to let it through."""
    limits = limits or Limits.from_settings()
    if run.fetched == 0 and was_full_read(run):
        synced = synced_registrations(db, link)
        if synced >= limits.zero_rows_min_records:
            return (f"the provider returned no registration on a full read, while this "
                    f"provider event has {synced} synced registration(s): confirm only if "
                    f"the event really has no registrants left")
    withdrawing = would_withdraw(db, run, link)
    if withdrawing >= limits.withdraw_min:
        active = active_participants(db, run, link)
        if active and withdrawing * 100 > limits.withdraw_percent * active:
            share = 100 * withdrawing / active
            return (f"the read would withdraw {withdrawing} of the event's {active} active "
                    f"participant(s) ({share:.0f}%, above the {limits.withdraw_percent:g}% "
                    f"limit of RACEHUB_SYNC_BREAKER_WITHDRAW_PERCENT)")
    return None
