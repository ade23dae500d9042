"""API shapes of E08 results (the export's shapes are in schemas.py)."""

from __future__ import annotations

import uuid

from pydantic import Field

from racehub.core.schemas import APIModel
from racehub.events.models import Gender
from racehub.timing.models import ResultStatus


class ResultRead(APIModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    bib: str | None
    name: str
    gender: Gender | None
    category: str | None
    status: ResultStatus
    chip_ms: int | None
    gun_ms: int | None
    # H:MM:SS(.fff) renderings of the two times.
    chip_time: str
    gun_time: str
    overall_place: int | None
    gender_place: int | None
    category_place: int | None
    splits: dict[str, int]
    file_bib: str | None
    warning: str


class MissingResultRead(APIModel):
    participant_id: uuid.UUID
    bib: str | None
    name: str
    category: str | None


class ReconciliationRead(APIModel):
    event_id: uuid.UUID
    participants: int
    by_status: dict[str, int]
    bib_mismatch_warnings: int = Field(
        description="Results stored with a warning: a bib mismatch, or a place the file gave "
                    "a DNF/DNS/DQ (not used). The name predates the second kind.")
    without_result_count: int
    # The first ones, in bib order; the count covers them all.
    without_result: list[MissingResultRead]
