"""Number and tag inventory: bib designs (NumberType), physical race numbers, RFID tags,
and each race number's append-only state log."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from racehub.db.base import Base, TenantMixin, TimestampMixin, UUIDPrimaryKey, pg_enum


class RaceNumberState(enum.StrEnum):
    MANUFACTURED = "MANUFACTURED"  # in stock, not given to anybody
    ASSIGNED = "ASSIGNED"  # handed to a participant
    RETIRED = "RETIRED"  # disposed of; never handed out again
    LOST = "LOST"


class NumberType(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """A bib design in the tenant's catalogue; a manufactured batch belongs to one."""

    __tablename__ = "number_types"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_number_types_tenant_id_name"),
        CheckConstraint("range_start IS NULL OR range_start >= 1", name="range_start_positive"),
        CheckConstraint("range_end IS NULL OR range_start IS NULL OR range_end >= range_start",
                        name="range_ordered"),
    )

    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str | None] = mapped_column(String(20))
    # Sequences this design may carry; an import refuses rows outside it.
    range_start: Mapped[int | None] = mapped_column(BigInteger)
    range_end: Mapped[int | None] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(String(500))


class Tag(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """An RFID chip or printed barcode, by the code it reads as (text: leading zeros count)."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_tags_tenant_id_code"),)

    code: Mapped[str] = mapped_column(String(128))


NATURAL_KEY = "uq_race_numbers_number_type_id_sequence"
TAG_PAIRING_INDEX = "uq_race_numbers_tag_id"


class RaceNumber(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """One physical number. Its natural key is (number type, sequence)."""

    __tablename__ = "race_numbers"
    __table_args__ = (
        UniqueConstraint("number_type_id", "sequence", name=NATURAL_KEY),
        CheckConstraint("sequence >= 1", name="sequence_positive"),
        # A tag is fixed to one race number: pairing it to a second one is refused.
        Index(TAG_PAIRING_INDEX, "tag_id", unique=True,
              postgresql_where=text("tag_id IS NOT NULL")),
        Index("ix_race_numbers_tenant_id_number", "tenant_id", "number"),
        Index("ix_race_numbers_tenant_id_sequence", "tenant_id", "sequence", "id"),
    )

    number_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("number_types.id", ondelete="RESTRICT"))
    sequence: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[str] = mapped_column(String(40))
    state: Mapped[RaceNumberState] = mapped_column(
        pg_enum(RaceNumberState, "race_number_state"), default=RaceNumberState.MANUFACTURED)
    tag_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tags.id", ondelete="RESTRICT"))

    number_type: Mapped[NumberType] = relationship()
    tag: Mapped[Tag | None] = relationship()

    @property
    def tag_code(self) -> str | None:
        return self.tag.code if self.tag else None

    @property
    def number_type_name(self) -> str:
        return self.number_type.name


class RaceNumberLogEntry(Base):
    """What happened to a race number, by whom, and through which import. Append-only."""

    __tablename__ = "race_number_log"
    __table_args__ = (Index("ix_race_number_log_race_number_id_id", "race_number_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    race_number_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("race_numbers.id", ondelete="RESTRICT"))
    action: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[RaceNumberState | None] = mapped_column(
        pg_enum(RaceNumberState, "race_number_state"))
    to_state: Mapped[RaceNumberState | None] = mapped_column(
        pg_enum(RaceNumberState, "race_number_state"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_label: Mapped[str] = mapped_column(String(400))
    job_run_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
