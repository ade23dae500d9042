"""Events, categories, people and event participants (EPs): the store everything syncs into."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from racehub.db.base import Base, TenantMixin, TimestampMixin, UUIDPrimaryKey, pg_enum


class EventStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class TimingIdentifier(enum.StrEnum):
    """What the timing-system export writes as ExternalReferenceID (seed E11)."""

    EPID = "EPID"
    PERSON_ID = "PERSON_ID"
    REGISTRATION_ID = "REGISTRATION_ID"


class Gender(enum.StrEnum):
    MALE = "M"
    FEMALE = "F"
    NON_BINARY = "X"
    UNKNOWN = "U"


class ParticipantStatus(enum.StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class Event(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_tenant_id_start_at", "tenant_id", "start_at"),)

    name: Mapped[str] = mapped_column(String(200))
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    location: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[EventStatus] = mapped_column(
        pg_enum(EventStatus, "event_status"), default=EventStatus.DRAFT
    )
    preferred_timing_identifier: Mapped[TimingIdentifier] = mapped_column(
        pg_enum(TimingIdentifier, "timing_identifier"),
        default=TimingIdentifier.PERSON_ID,
        server_default=TimingIdentifier.PERSON_ID.value,
    )
    preferred_timing_identifier_locked_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True)
    )

    categories: Mapped[list[Category]] = relationship(
        back_populates="event", order_by="Category.name"
    )


class Category(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """A race or distance within an event (e.g. "10K", "Half Marathon")."""

    __tablename__ = "categories"
    __table_args__ = (UniqueConstraint("event_id", "name"),)

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    distance_m: Mapped[int | None] = mapped_column(Integer)
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bib_range_start: Mapped[int | None] = mapped_column(Integer)
    bib_range_end: Mapped[int | None] = mapped_column(Integer)

    event: Mapped[Event] = relationship(back_populates="categories")


class Person(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    __tablename__ = "persons"
    __table_args__ = (Index("ix_persons_tenant_id_last_name", "tenant_id", "last_name"),)

    first_name: Mapped[str] = mapped_column(String(120))
    last_name: Mapped[str] = mapped_column(String(120))
    birth_date: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[Gender | None] = mapped_column(pg_enum(Gender, "gender"))
    email: Mapped[str | None] = mapped_column(String(320))
    nationality: Mapped[str | None] = mapped_column(String(3))
    city: Mapped[str | None] = mapped_column(String(120))
    region: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str | None] = mapped_column(String(3))


class EventParticipant(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """A person's entry in one event ("EP")."""

    __tablename__ = "event_participants"
    __table_args__ = (
        # A bib identifies one active runner per event; withdrawn EPs free their bib.
        Index(
            "uq_event_participants_active_bib",
            "event_id",
            "bib",
            unique=True,
            postgresql_where=text("status = 'active' AND bib IS NOT NULL"),
        ),
        # Syncs upsert by the provider's own id, never by bib.
        Index(
            "uq_event_participants_source",
            "tenant_id",
            "source_provider",
            "source_id",
            unique=True,
            postgresql_where=text("source_provider IS NOT NULL AND source_id IS NOT NULL"),
        ),
        Index("ix_event_participants_event_id_registration_id", "event_id", "registration_id"),
        Index("ix_event_participants_event_id_created_at", "event_id", "created_at", "id"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("persons.id", ondelete="RESTRICT"), index=True
    )
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    bib: Mapped[str | None] = mapped_column(String(20))
    registration_id: Mapped[str | None] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[ParticipantStatus] = mapped_column(
        pg_enum(ParticipantStatus, "participant_status"), default=ParticipantStatus.ACTIVE
    )
    source_provider: Mapped[str | None] = mapped_column(String(40))
    source_id: Mapped[str | None] = mapped_column(String(100))

    event: Mapped[Event] = relationship()
    person: Mapped[Person] = relationship()
    category: Mapped[Category | None] = relationship()

    @property
    def category_name(self) -> str | None:
        return self.category.name if self.category else None
