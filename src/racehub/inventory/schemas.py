"""API shapes for number types, race numbers, tags and the state log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from racehub.core.schemas import APIModel, Name
from racehub.inventory.models import RaceNumberState


class NumberTypeCreate(APIModel):
    name: Name = Field(max_length=120)
    prefix: str | None = Field(default=None, max_length=20)
    range_start: int | None = Field(default=None, ge=1, description="Lowest sequence allowed")
    range_end: int | None = Field(default=None, ge=1, description="Highest sequence allowed")
    description: str | None = Field(default=None, max_length=500)

    @field_validator("range_end")
    @classmethod
    def _range(cls, end: int | None, info: ValidationInfo) -> int | None:
        start = info.data.get("range_start")
        if start is not None and end is not None and end < start:
            raise ValueError(f"rangeEnd must not be below rangeStart ({start})")
        return end


class NumberTypeRead(APIModel):
    id: uuid.UUID
    name: str
    prefix: str | None
    range_start: int | None
    range_end: int | None
    description: str | None
    created_at: datetime


class RaceNumberRead(APIModel):
    id: uuid.UUID
    number_type_id: uuid.UUID
    number_type_name: str
    sequence: int
    number: str
    state: RaceNumberState
    tag_id: uuid.UUID | None
    tag_code: str | None
    created_at: datetime
    updated_at: datetime


class RaceNumberLogRead(APIModel):
    id: int
    action: str
    from_state: RaceNumberState | None
    to_state: RaceNumberState | None
    detail: dict[str, Any]
    actor_label: str
    job_run_id: uuid.UUID | None
    at: datetime


class RaceNumberDetail(RaceNumberRead):
    log: list[RaceNumberLogRead]
