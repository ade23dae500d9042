"""API shapes of what a sync left on participants: conflicts and the sources of an EP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from racehub.core.schemas import APIModel
from racehub.sync.models import ConflictStatus
from racehub.sync.people import Source


class ConflictRead(APIModel):
    id: uuid.UUID
    event_id: uuid.UUID
    participant_id: uuid.UUID
    record_id: uuid.UUID | None
    run_id: uuid.UUID | None
    field: str
    local_value: Any
    provider_value: Any
    status: ConflictStatus
    resolved_by_label: str | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SourceRead(APIModel):
    """One provider registration behind a participant, and why its person was chosen.
    ``payload`` (the raw registration) only for ``sync:payload:read``; null once purged."""

    id: uuid.UUID
    provider: str
    source_ref: str
    ref_is_fallback: bool
    connection_id: uuid.UUID | None
    link_id: uuid.UUID | None
    provider_person_ref: str | None
    person_match: str | None
    person_match_reason: str | None
    last_synced_at: datetime
    provider_modified_at: datetime | None
    withdrawn_at: datetime | None
    withdrawn_reason: str | None
    transferred_to_id: uuid.UUID | None
    synced_values: dict[str, Any]
    payload_visible: bool
    payload: dict[str, Any] | None
    payload_synced_at: datetime | None

    @classmethod
    def of(cls, source: Source) -> SourceRead:
        r = source.record
        return cls(
            id=r.id, provider=r.provider, source_ref=r.source_ref,
            ref_is_fallback=r.ref_is_fallback, connection_id=r.connection_id,
            link_id=r.link_id, provider_person_ref=r.provider_person_ref,
            person_match=r.person_match, person_match_reason=source.person_match_reason,
            last_synced_at=r.last_synced_at, provider_modified_at=r.provider_modified_at,
            withdrawn_at=r.withdrawn_at, withdrawn_reason=r.withdrawn_reason,
            transferred_to_id=r.transferred_to_id, synced_values=r.synced_values or {},
            payload_visible=source.payload_visible, payload=source.payload,
            payload_synced_at=r.payload_synced_at)
