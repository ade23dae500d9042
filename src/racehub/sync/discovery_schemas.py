"""API shapes of discovered provider events (candidates) and what is done with them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, field_validator

from racehub.core.schemas import APIModel, Name, SaneDateTime
from racehub.events.schemas import EventRead
from racehub.sync.schemas import LinkRead


class CandidateRead(APIModel):
    """A provider event of a connection as its listing gave it, and what it feeds."""

    id: uuid.UUID = Field(description="The provider event's link row (linked or not)")
    connection_id: uuid.UUID
    connection_name: str
    provider: str
    provider_label: str
    provider_event_ref: str
    name: str = Field(description="As the provider lists it (race · sub-event), else the ref")
    start_at: datetime | None = Field(description="UTC; null: the provider gave none, or "
                                      "gave a local time without its time zone")
    end_at: datetime | None
    time_zone: str | None = Field(description="The zone the start is in, as given; null: "
                                  "not given (never guessed)")
    time_zone_source: str | None = Field(
        description="'provider' (the provider gave it) or 'setting' (it gave none: the "
                    "connection's time_zone setting was used)")
    parent_ref: str | None = Field(description="Its race (RunSignUp) or event (Race Roster)")
    parent_name: str | None
    race_name: str | None = Field(description="The sub-event/distance's own name")
    distance: str | None
    location: str = Field(description="City, region, country as listed ('' when none)")
    chosen: bool = Field(description="Chosen on the connection (its eventIds) or linked")
    discovered_at: datetime | None
    last_seen_at: datetime | None
    gone_at: datetime | None = Field(description="A complete listing no longer had it")
    event_id: uuid.UUID | None = Field(description="The racehub event it feeds; null: a "
                                       "candidate")
    event_name: str | None
    linked_at: datetime | None


class DiscoveryRead(APIModel):
    job_id: uuid.UUID = Field(description="The discovery job (GET /api/jobs/{id})")
    joined: bool = Field(description="A discovery of the connection was already queued or "
                         "running: this request joined it")


class CandidateLink(APIModel):
    event_id: uuid.UUID
    with_race: bool = Field(
        default=False, description="Also link the other unlinked provider events of its "
        "race/parent (their sub-events or distances) to the same event")


class CandidateEventCreate(APIModel):
    """A racehub event made from a provider event: each field left out is the provider's.
    A start or time zone the provider did not give must be sent."""

    name: Name | None = Field(default=None, max_length=200)
    start_at: SaneDateTime | None = Field(default=None, description="Naive: in timezone")
    timezone: str | None = Field(default=None, max_length=64)
    location: str | None = Field(default=None, max_length=300)
    with_race: bool = Field(
        default=True, description="Link the other unlinked provider events of its race/"
        "parent too; each becomes a category of the new event")

    @field_validator("name", "timezone", "location", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value


class CandidateEventRead(APIModel):
    event: EventRead
    links: list[LinkRead]
