"""API shapes for events, categories, people and participants."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import EmailStr, Field, ValidationInfo, field_validator, model_validator

from racehub.core.schemas import APIModel, BirthDate, Name, SaneDateTime
from racehub.events.models import EventStatus, Gender, ParticipantStatus, TimingIdentifier
from racehub.jobs.schemas import JobRunRead
from racehub.providers.catalog import PROVIDERS

INT32_MAX = 2**31 - 1  # the bib range columns are INTEGER


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name like Europe/Paris"
        ) from exc
    return value


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


class EventCreate(APIModel):
    name: Name = Field(max_length=200)
    start_at: SaneDateTime = Field(title="Start",
                                   description="Start of the event; naive times are in `timezone`.")
    timezone: str = Field(default="UTC", title="Time zone",
                          description="IANA name, e.g. America/New_York")
    location: str = Field(default="", max_length=300)
    status: EventStatus = EventStatus.DRAFT
    preferred_timing_identifier: TimingIdentifier = Field(default=TimingIdentifier.PERSON_ID,
                                                          title="Timing identifier")

    _tz = field_validator("timezone")(_check_timezone)

    @model_validator(mode="after")
    def _localize(self) -> EventCreate:
        if self.start_at.tzinfo is None:
            self.start_at = self.start_at.replace(tzinfo=ZoneInfo(self.timezone))
        return self


class EventUpdate(APIModel):
    name: Name | None = Field(default=None, max_length=200)
    start_at: SaneDateTime | None = Field(default=None, title="Start")
    timezone: str | None = Field(default=None, title="Time zone")
    location: str | None = Field(default=None, max_length=300)
    status: EventStatus | None = None
    preferred_timing_identifier: TimingIdentifier | None = Field(default=None,
                                                                 title="Timing identifier")
    acknowledge_override: bool = Field(
        default=False,
        description="Required to change preferredTimingIdentifier after a timing export "
        "locked it: the timing system may then hold rows under the old identifier.",
    )
    confirm_full_repush: bool = Field(
        default=False,
        description="Required (instead of acknowledgeOverride) to change a locked "
        "preferredTimingIdentifier once a start list was pushed to a timing system: every "
        "linked timing event is then pushed again, its old ids withdrawn and the new ones "
        "sent. EVENT_MANAGER and up.",
    )

    _tz = field_validator("timezone")(_check_timezone)


class EventRead(APIModel):
    id: uuid.UUID
    name: str
    start_at: datetime
    timezone: str
    location: str
    status: EventStatus
    preferred_timing_identifier: TimingIdentifier
    preferred_timing_identifier_locked_at: datetime | None
    archived_at: datetime | None = Field(
        default=None, description="Set: archived, out of the default lists (archived=true "
                                  "lists them)")
    created_at: datetime
    updated_at: datetime


class CategoryCreate(APIModel):
    name: Name = Field(max_length=120)
    distance_m: int | None = Field(default=None, ge=0, le=1_000_000, title="Distance (m)")
    start_at: SaneDateTime | None = Field(default=None, title="Start")
    bib_range_start: int | None = Field(default=None, ge=1, le=INT32_MAX, title="Bibs from")
    bib_range_end: int | None = Field(default=None, ge=1, le=INT32_MAX, title="Bibs to")

    @field_validator("bib_range_end")
    @classmethod
    def _range(cls, end: int | None, info: ValidationInfo) -> int | None:
        # A field validator, so that the error names bibRangeEnd rather than the body.
        start = info.data.get("bib_range_start")
        if start is not None and end is not None and end < start:
            raise ValueError(f"must not be below the range's start ({start})")
        return end


class CategoryUpdate(APIModel):
    """Only the fields sent change; null clears an optional one."""

    name: Name | None = Field(default=None, max_length=120)
    distance_m: int | None = Field(default=None, ge=0, le=1_000_000, title="Distance (m)")
    start_at: SaneDateTime | None = Field(default=None, title="Start")
    bib_range_start: int | None = Field(default=None, ge=1, le=INT32_MAX, title="Bibs from")
    bib_range_end: int | None = Field(default=None, ge=1, le=INT32_MAX, title="Bibs to")


class CategoryDeleted(APIModel):
    moved_to: uuid.UUID | None = Field(description="Where its participants went")
    participants_moved: int


class BibAssignmentRequest(APIModel):
    # Defaults to the category's range start, else 1.
    first_bib: int | None = Field(default=None, ge=1, le=INT32_MAX)


class CategoryRead(APIModel):
    id: uuid.UUID
    event_id: uuid.UUID
    name: str
    distance_m: int | None
    start_at: datetime | None
    bib_range_start: int | None
    bib_range_end: int | None


class PersonFields(APIModel):
    birth_date: BirthDate | None = None
    gender: Gender | None = None
    email: EmailStr | None = Field(default=None, title="E-mail")
    nationality: str | None = Field(default=None, min_length=2, max_length=3)
    city: str | None = Field(default=None, max_length=120)
    region: str | None = Field(default=None, max_length=120)
    country: str | None = Field(default=None, min_length=2, max_length=3)


class PersonIn(PersonFields):
    first_name: Name = Field(max_length=120)
    last_name: Name = Field(max_length=120)


class PersonUpdate(PersonFields):
    first_name: Name | None = Field(default=None, max_length=120)
    last_name: Name | None = Field(default=None, max_length=120)


class PersonRead(APIModel):
    id: uuid.UUID
    first_name: str
    last_name: str
    birth_date: date | None
    gender: Gender | None
    email: str | None
    nationality: str | None
    city: str | None
    region: str | None
    country: str | None


class ParticipantFields(APIModel):
    category_id: uuid.UUID | None = Field(default=None, title="Category")
    bib: str | None = Field(default=None, max_length=20)
    registration_id: str | None = Field(default=None, max_length=100)
    team: str | None = Field(default=None, max_length=200)

    _blank = field_validator("bib", "registration_id", "team")(_blank_to_none)


class ParticipantCreate(ParticipantFields):
    person: PersonIn | None = Field(default=None, description="A new person, or give personId")
    person_id: uuid.UUID | None = None
    status: ParticipantStatus = ParticipantStatus.ACTIVE
    source_provider: str | None = Field(
        default=None, max_length=40,
        description="The provider this entry came from: " + ", ".join(PROVIDERS))
    source_id: str | None = Field(default=None, max_length=100,
                                  description="The entry's id at that provider")

    @field_validator("source_provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        value = _blank_to_none(value)
        if value is None:
            return None
        if value.upper() not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; use one of {', '.join(PROVIDERS)}")
        return value.upper()

    match_person: bool = Field(
        default=True,
        description="With person (new): reuse the tenant's one person with the same e-mail "
                    "and birth date, else the same name and birth date, as the sync does; "
                    "false: always a new person")

    _blank_source = field_validator("source_id")(_blank_to_none)

    @model_validator(mode="after")
    def _one_person(self) -> ParticipantCreate:
        if (self.person is None) == (self.person_id is None):
            raise ValueError("give exactly one of person (new) or personId (existing)")
        return self


class PersonScope(enum.StrEnum):
    """Whom a person edit is for, when other entries (other events, other providers'
    registrations matched to the same person) share the entry's person."""

    SHARED = "shared"  # the shared person: every entry sharing it shows the change
    OWN = "own"  # this entry gets its own copy of the person first, then the change


class ParticipantUpdate(ParticipantFields):
    status: ParticipantStatus | None = None
    person: PersonUpdate | None = None
    person_scope: PersonScope | None = Field(
        default=None,
        description="Needed when a person field changes and other entries share the "
                    "person: 'shared' changes it for all of them, 'own' gives this entry "
                    "its own person first. Unset then: 409 naming the other entries")


class ParticipantRead(APIModel):
    id: uuid.UUID
    event_id: uuid.UUID
    person: PersonRead
    category_id: uuid.UUID | None
    category_name: str | None = None
    bib: str | None
    registration_id: str | None
    team: str | None
    status: ParticipantStatus
    withdrawn_at: datetime | None = Field(
        default=None, description="When the entry was withdrawn (soft: the entry stays)")
    withdrawn_reason: str | None = Field(
        default=None, description="Why, as the provider or the operator said")
    transferred_from_id: uuid.UUID | None = Field(
        default=None, description="The withdrawn entry whose registration (and bib) this "
                                  "one took over")
    source_provider: str | None = Field(
        default=None, description="The provider the entry came from (unset: made in racehub)")
    source_id: str | None = Field(
        default=None, description="The entry's registration at that provider (its key)")
    created_at: datetime
    updated_at: datetime


class ParticipantSourceBrief(APIModel):
    """A provider registration behind an entry, as a list shows it (the full record, with
    why its person was chosen: GET .../participants/{id}/sources)."""

    provider: str
    registration_id: str = Field(description="The provider's registration id (or, marked "
                                             "by refIsFallback, its next stable key)")
    ref_is_fallback: bool
    connection_id: uuid.UUID | None
    last_synced_at: datetime
    withdrawn_at: datetime | None = Field(description="When the provider withdrew it")


class ParticipantListItem(ParticipantRead):
    sources: list[ParticipantSourceBrief] = Field(
        default_factory=list,
        description="The provider registrations it came from, newest sync first (empty: "
                    "entered in racehub)")


class ParticipantCreated(ParticipantRead):
    person_match: str | None = Field(
        default=None, description="How the person was chosen: new, email_birth_date, "
                                  "name_birth_date, or given (personId)")
    person_match_reason: str | None = Field(default=None, description="The same, in words")


class ParticipantUpdated(ParticipantRead):
    person_shared_with: int = Field(
        default=0, description="How many other entries share the person this edit changed "
                               "(personScope 'shared'); 0 when it changed this entry's only")


# --- bulk edits of participants ----------------------------------------------------------

BULK_MAX_IDS = 5000  # more rows: select them by a filter
BULK_REASON_MAX = 300  # EventParticipant.withdrawn_reason


class BulkAction(enum.StrEnum):
    WITHDRAW = "withdraw"
    REINSTATE = "reinstate"
    MOVE_CATEGORY = "move_category"
    CLEAR_BIBS = "clear_bibs"
    ASSIGN_BIBS = "assign_bibs"


class ParticipantSelection(APIModel):
    """Every participant of the event matching these, as the participants list filters
    them (nothing set: all of them). Evaluated by the server when the change runs."""

    q: str | None = Field(default=None, max_length=200, title="Search")
    status: ParticipantStatus | None = None
    category_id: uuid.UUID | None = Field(default=None, title="Category")


class BulkEditRequest(APIModel):
    action: BulkAction
    ids: list[uuid.UUID] | None = Field(
        default=None, max_length=BULK_MAX_IDS, title="Participants",
        description="The participants to change (of this event); or give `filter`")
    filter: ParticipantSelection | None = Field(
        default=None, description="Instead of `ids`: every participant matching it")
    category_id: uuid.UUID | None = Field(
        default=None, title="Category",
        description="move_category: the category of the event to move them to")
    first_bib: int | None = Field(
        default=None, ge=1, le=INT32_MAX, title="First bib",
        description="assign_bibs: the first number to try (default: each category's range "
                    "start, else 1)")
    reason: str | None = Field(default=None, max_length=BULK_REASON_MAX, title="Reason",
                               description="withdraw: why (kept on each entry)")

    _reason = field_validator("reason")(_blank_to_none)


class BulkRefusal(APIModel):
    participant_id: uuid.UUID
    name: str | None = Field(description="The participant's name (none: not found)")
    bib: str | None
    field: str | None = Field(description="The field at fault, as the API names it")
    reason: str


class BulkEditResult(APIModel):
    action: BulkAction
    selected: int = Field(description="Participants selected when the change started")
    changed: int
    unchanged: int
    refused: int
    refusals: list[BulkRefusal] = Field(
        description="Why each refused participant was refused (the first 100)")
    job: JobRunRead | None = Field(
        default=None, description="Set when the change runs as a job (more rows than "
                                  "RACEHUB_BULK_EDIT_INLINE_MAX): the counts are then its own")
