"""E08: one result per event participant (EP), as the timing system's result file gave it."""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from racehub.db.base import Base, TenantMixin, TimestampMixin, UUIDPrimaryKey, pg_enum
from racehub.events.models import EventParticipant


class ResultStatus(enum.StrEnum):
    FINISHED = "finished"
    DNF = "DNF"
    DNS = "DNS"
    DQ = "DQ"


class Result(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """An EP's result. Re-importing a corrected file updates this row (one per EP).

    Times are integer milliseconds. Each place is the file's when it gave one
    (``file_*_place``), else computed per event, gender and category among finished
    results (see ``results.recompute_places``); ``*_place`` holds the one shown.
    """

    __tablename__ = "results"
    __table_args__ = (
        # One result per EP: the upsert key of every import.
        Index("uq_results_event_participant_id", "event_participant_id", unique=True),
        # The results page: an event's results in ranking order.
        Index("ix_results_event_id_status_overall_place", "event_id", "status",
              "overall_place"),
    )

    # No cascade: an event with results is never deleted (events.service.delete_event).
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id"))
    event_participant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("event_participants.id", ondelete="CASCADE"))
    status: Mapped[ResultStatus] = mapped_column(pg_enum(ResultStatus, "result_status"))
    chip_ms: Mapped[int | None] = mapped_column(BigInteger)
    gun_ms: Mapped[int | None] = mapped_column(BigInteger)
    # The Number the file gave (differs from the EP's bib on a "bib mismatch").
    file_bib: Mapped[str | None] = mapped_column(String(20))
    file_overall_place: Mapped[int | None] = mapped_column(Integer)
    file_gender_place: Mapped[int | None] = mapped_column(Integer)
    file_category_place: Mapped[int | None] = mapped_column(Integer)
    overall_place: Mapped[int | None] = mapped_column(Integer)
    gender_place: Mapped[int | None] = mapped_column(Integer)
    category_place: Mapped[int | None] = mapped_column(Integer)
    # Split name (the file's column header) -> milliseconds.
    splits: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default="{}")
    warning: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The import that last wrote this result.
    import_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("imports.id", ondelete="SET NULL"), index=True)

    participant: Mapped[EventParticipant] = relationship()

    @property
    def ranking_ms(self) -> int | None:
        """The time places are computed from: chip time, else gun time."""
        return self.chip_ms if self.chip_ms is not None else self.gun_ms
