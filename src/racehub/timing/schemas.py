"""API shapes of the timing-system export."""

from __future__ import annotations

import uuid
from datetime import datetime

from racehub.core.schemas import APIModel
from racehub.events.models import TimingIdentifier


class MissingIdRead(APIModel):
    id: uuid.UUID
    name: str
    bib: str | None
    edit_url: str


class PreflightRead(APIModel):
    event_id: uuid.UUID
    mode: TimingIdentifier
    locked_at: datetime | None
    row_count: int
    missing_registration_count: int
    missing_registration_ids: list[MissingIdRead]
    download_url: str
