"""People across providers: where a participant came from, why its person was chosen, and
splitting a person the sync matched wrongly."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.query import any_of, scoped
from racehub.core.rbac import Perm
from racehub.core.schemas import construct_trusted
from racehub.events import service as events_service
from racehub.events.exceptions import ParticipantNotFound
from racehub.events.models import EventParticipant
from racehub.events.schemas import ParticipantSourceBrief
from racehub.sync.exceptions import NothingToSplit
from racehub.sync.models import SyncedRecord

# SyncedRecord.person_match -> what it means, as the sources read explains a match.
PERSON_MATCH_REASONS = {
    **events_service.PERSON_MATCH_REASONS,
    "provider_person": "matched the person of another registration with the same "
                       "provider person id",
    "split": "split from a wrong match by an operator: never matched automatically again",
}
SPLIT = "split"


@dataclass
class Source:
    """One provider registration behind a participant. ``payload`` is None unless the
    caller may read raw payloads (``payload_visible``), or once it is purged."""

    record: SyncedRecord
    person_match_reason: str | None
    payload_visible: bool

    @property
    def payload(self) -> dict[str, Any] | None:
        return self.record.payload if self.payload_visible else None


def _participant(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                 participant_id: uuid.UUID, lock: bool = False) -> EventParticipant:
    events_service.get_event_or_raise(db, ctx, event_id=event_id)
    stmt = scoped(ctx, EventParticipant).where(EventParticipant.id == participant_id,
                                               EventParticipant.event_id == event_id)
    ep = db.scalar(stmt.with_for_update() if lock else stmt)
    if ep is None:
        raise ParticipantNotFound()
    return ep


def list_sources(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                 participant_id: uuid.UUID) -> list[Source]:
    """The provider registrations that feed the participant, the most recently synced
    first, each with why its person was chosen."""
    ep = _participant(db, ctx, event_id=event_id, participant_id=participant_id)
    records = db.scalars(
        scoped(ctx, SyncedRecord).where(SyncedRecord.participant_id == ep.id)
        .order_by(SyncedRecord.last_synced_at.desc(), SyncedRecord.id))
    visible = ctx.can(Perm.SYNC_PAYLOAD_READ)
    return [Source(record=r, payload_visible=visible,
                   person_match_reason=PERSON_MATCH_REASONS.get(r.person_match or ""))
            for r in records]


def sources_of(db: Session, ctx: TenantContext, *,
               participant_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[ParticipantSourceBrief]]:
    """The registrations behind each of the participants (a list's page), newest sync
    first: one query over the records' participant index, whatever the page's size."""
    if not participant_ids:
        return {}
    rows = db.execute(
        select(SyncedRecord.participant_id, SyncedRecord.provider, SyncedRecord.source_ref,
               SyncedRecord.ref_is_fallback, SyncedRecord.connection_id,
               SyncedRecord.last_synced_at, SyncedRecord.withdrawn_at)
        .where(SyncedRecord.tenant_id == ctx.tenant_id,
               any_of(SyncedRecord.participant_id, participant_ids))
        .order_by(SyncedRecord.participant_id, SyncedRecord.last_synced_at.desc(),
                  SyncedRecord.id)).all()
    out: dict[uuid.UUID, list[ParticipantSourceBrief]] = {}
    for participant_id, *values in rows:
        assert participant_id is not None  # asked for by id
        out.setdefault(participant_id, []).append(construct_trusted(
            ParticipantSourceBrief, dict(zip(_SOURCE_FIELDS, values, strict=True))))
    return out


_SOURCE_FIELDS = ("provider", "registration_id", "ref_is_fallback", "connection_id",
                  "last_synced_at", "withdrawn_at")


def split_person(db: Session, ctx: TenantContext, *, event_id: uuid.UUID,
                 participant_id: uuid.UUID) -> EventParticipant:
    """Give the participant a Person of its own (a copy of the shared one), and mark its
    provider records ``split`` so that the mistake is visible and not made again."""
    ep = _participant(db, ctx, event_id=event_id, participant_id=participant_id, lock=True)
    shared = db.scalar(
        select(func.count()).select_from(EventParticipant)
        .where(EventParticipant.tenant_id == ctx.tenant_id,
               EventParticipant.person_id == ep.person_id, EventParticipant.id != ep.id))
    if not shared:
        raise NothingToSplit("this participant's person has no other entry: there is no "
                             "match to split")
    old_id = ep.person_id
    person = events_service.separate_person(db, ctx, ep=ep)
    records = db.execute(
        update(SyncedRecord)
        .where(SyncedRecord.tenant_id == ctx.tenant_id, SyncedRecord.participant_id == ep.id)
        .values(person_match=SPLIT)
        .returning(SyncedRecord.id)).scalars().all()
    audit.record(db, ctx, action="participant.split_person", target_type="participant",
                 target_id=ep.id, before={"person_id": old_id},
                 after={"person_id": person.id, "records": len(records),
                        "others_sharing_the_old_person": shared})
    return ep

