"""Events, categories, people and event participants (EPs): the store everything syncs into."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
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
    # Set: the event left the default lists (pages and API); a filter shows it again.
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

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
    __table_args__ = (
        # Name and e-mail search: LIKE '%word%' on search_text through trigrams.
        Index("ix_persons_search_text_trgm", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}),
        # Person matching (events.writes): candidates share a birth date in the tenant.
        Index("ix_persons_tenant_id_birth_date", "tenant_id", "birth_date"),
    )

    first_name: Mapped[str] = mapped_column(String(120))
    last_name: Mapped[str] = mapped_column(String(120))
    birth_date: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[Gender | None] = mapped_column(pg_enum(Gender, "gender"))
    email: Mapped[str | None] = mapped_column(String(320))
    nationality: Mapped[str | None] = mapped_column(String(3))
    city: Mapped[str | None] = mapped_column(String(120))
    region: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str | None] = mapped_column(String(3))
    # Kept by Postgres, never written by us: what the participant search matches words in,
    # folded (see ``fold`` below).
    search_text: Mapped[str] = mapped_column(
        Text,
        Computed("racehub_fold(first_name::text || ' ' || last_name::text || ' ' "
                 "|| coalesce(email, '')::text)", persisted=True),
    )


ACTIVE_BIB_INDEX = "uq_event_participants_active_bib"
SOURCE_INDEX = "uq_event_participants_source"


class EventParticipant(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """A person's entry in one event ("EP")."""

    __tablename__ = "event_participants"
    __table_args__ = (
        # A bib identifies one active runner per event; withdrawn EPs free their bib.
        Index(
            ACTIVE_BIB_INDEX,
            "event_id",
            "bib",
            unique=True,
            postgresql_where=text("status = 'active' AND bib IS NOT NULL"),
        ),
        # Syncs upsert by the provider's own id, never by bib.
        Index(
            SOURCE_INDEX,
            "tenant_id",
            "source_provider",
            "source_id",
            unique=True,
            postgresql_where=text("source_provider IS NOT NULL AND source_id IS NOT NULL"),
        ),
        Index("ix_event_participants_event_id_registration_id", "event_id", "registration_id"),
        # Search by bib must find withdrawn EPs too, which the unique index leaves out.
        Index("ix_event_participants_event_id_bib", "event_id", "bib"),
        Index("ix_event_participants_event_id_created_at", "event_id", "created_at", "id"),
        # Active entries per event counted from the index alone (monitoring's unified view).
        Index("ix_event_participants_event_id_active", "event_id",
              postgresql_where=text("status = 'active'")),
    )

    # No cascade (NO ACTION): an event with entries is never deleted under them; the
    # service refuses first, naming why (service.delete_event).
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id"))
    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("persons.id", ondelete="RESTRICT"), index=True
    )
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        # No SET NULL: a category's entries are moved (or it is kept), never left without.
        ForeignKey("categories.id"), index=True
    )
    bib: Mapped[str | None] = mapped_column(String(20))
    registration_id: Mapped[str | None] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[ParticipantStatus] = mapped_column(
        pg_enum(ParticipantStatus, "participant_status"), default=ParticipantStatus.ACTIVE
    )
    source_provider: Mapped[str | None] = mapped_column(String(40))
    source_id: Mapped[str | None] = mapped_column(String(100))
    # Fields edited in racehub since they came from a provider: racehub owns them now, and a
    # provider's change to one becomes a conflict instead of an overwrite (sync engine).
    local_fields: Mapped[list[str]] = mapped_column(
        ARRAY(String(40)), default=list, server_default=text("'{}'"))
    # A withdrawal is soft: the EP stays, with why and when (its bib is freed).
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_reason: Mapped[str | None] = mapped_column(String(300))
    # A transfer: the EP whose registration (and bib) this one took over.
    transferred_from_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_participants.id", ondelete="SET NULL"))

    event: Mapped[Event] = relationship()
    person: Mapped[Person] = relationship()
    category: Mapped[Category | None] = relationship()

    @property
    def category_name(self) -> str | None:
        return self.category.name if self.category else None


# --- sort keys of the participants table --------------------------------------------------
# The indexes below are built on these very expressions, so that a page is read straight off
# an index, even at 50k participants. Constants are literal_column, not bound parameters, so
# that a prepared statement's text still matches the index expression.

_EMPTY: ColumnElement[str] = literal_column("''")


def fold(value: Any) -> ColumnElement[str]:
    """Lower case without accents ("Émile" -> "emile"), in SQL: racehub_fold(), migration
    0013. What names sort by, and what search words and persons.search_text are compared
    in."""
    return func.racehub_fold(value, type_=String)


PERSON_LAST_NAME_KEY = fold(Person.last_name)
PERSON_FIRST_NAME_KEY = fold(Person.first_name)
# Missing bibs last (false sorts before true); then numeric-looking bibs in numeric order
# ("9" before "10").
BIB_MISSING_KEY = EventParticipant.bib.is_(None)
BIB_LENGTH_KEY = func.length(func.coalesce(EventParticipant.bib, _EMPTY), type_=Integer)
BIB_TEXT_KEY = func.coalesce(EventParticipant.bib, _EMPTY, type_=String)
REGISTRATION_ID_KEY = func.coalesce(EventParticipant.registration_id, _EMPTY, type_=String)

# The name sorts walk persons in name order and probe each one's EP in the event.
Index("ix_persons_tenant_id_last_first_name", Person.tenant_id, PERSON_LAST_NAME_KEY,
      PERSON_FIRST_NAME_KEY, Person.id)
Index("ix_persons_tenant_id_first_last_name", Person.tenant_id, PERSON_FIRST_NAME_KEY,
      PERSON_LAST_NAME_KEY, Person.id)
Index("ix_event_participants_event_id_bib_order", EventParticipant.event_id, BIB_MISSING_KEY,
      BIB_LENGTH_KEY, BIB_TEXT_KEY, EventParticipant.id)
Index("ix_event_participants_event_id_registration_order", EventParticipant.event_id,
      REGISTRATION_ID_KEY, EventParticipant.id)
