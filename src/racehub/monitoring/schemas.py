"""Shapes of the unified views and the sync monitoring API (read models only)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from racehub.core.pagination import Page
from racehub.core.schemas import APIModel
from racehub.events.models import EventStatus
from racehub.providers.catalog import Direction


class ConnectionBrief(APIModel):
    """A connection as the unified views name it: no health, no settings (those need
    sync:connection:read)."""

    id: uuid.UUID
    name: str
    provider: str
    direction: Direction


class LastRun(APIModel):
    id: uuid.UUID
    sync_type: str
    status: str
    created_at: datetime
    finished_at: datetime | None


class UnifiedLinkRead(APIModel):
    """One provider event linked to the racehub event, through one connection."""

    id: uuid.UUID
    provider: str
    connection_id: uuid.UUID
    connection_name: str
    provider_event_id: str = Field(description="The provider's event id as the connection "
                                                "knows it (its adapter's ref)")
    provider_event_name: str | None
    auto_sync: bool
    last_success_at: datetime | None = Field(
        description="The newest successful run of any sync type on this link (the link's "
                    "own record for participant pulls, its runs for the others)")
    last_success_sync_type: str | None
    next_run_at: datetime | None = Field(description="When the schedule runs it next "
                                                     "(null: not scheduled)")
    last_run: LastRun | None = Field(description="The newest run on the link, whatever "
                                                 "its outcome")
    participants: int | None = Field(
        description="Registrations synced from this provider event and not withdrawn "
                    "(null on a timing link, which sends none)")
    withdrawn: int | None = Field(description="Registrations synced from it and withdrawn")


class UnifiedEventRead(APIModel):
    id: uuid.UUID
    name: str
    start_at: datetime
    timezone: str
    location: str
    status: EventStatus
    participants: int = Field(description="Active participants in racehub")
    links: list[UnifiedLinkRead] = Field(
        description="Provider events of registration connections feeding it")
    timing_links: list[UnifiedLinkRead] = Field(
        description="Races of scoring (timing) connections it is linked to")


class UnifiedEventsPage(Page[UnifiedEventRead]):
    connections: list[ConnectionBrief] = Field(
        description="Every connection of the tenant (the seed's 'providers')")


class SyncTypeCounts(APIModel):
    sync_type: str
    runs: int
    succeeded: int
    failed: int


class SyncSummaryRow(APIModel):
    """One connection's (or, across tenants, one tenant's) sync health."""

    linked_links: int = Field(description="Provider events linked to a racehub event")
    active_links: int = Field(description="Of those, the ones synced on a schedule "
                                          "(auto-sync on)")
    syncs_24h: int = Field(alias="syncs24h", description="Runs requested in the last 24 h")
    succeeded_24h: int = Field(alias="succeeded24h")
    failed_24h: int = Field(alias="failed24h")
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed) over the last 24 h; null when no run "
                    "finished either way")
    last_success_at: datetime | None
    next_run_at: datetime | None = Field(description="The earliest scheduled run")
    running_now: int = Field(description="Runs running at this moment")
    queued_now: int = Field(description="Runs queued or waiting to retry")
    waiting_now: int = Field(description="Runs stopped for a person (awaiting review, held)")
    by_sync_type: list[SyncTypeCounts] = Field(description="The last 24 h by sync type")


class ConnectionSummary(SyncSummaryRow):
    connection_id: uuid.UUID
    name: str
    provider: str
    direction: Direction
    status: str = Field(description="The connection's last credential check (OK, FAILED, "
                                    "UNTESTED)")


class TenantSummary(SyncSummaryRow):
    tenant_id: uuid.UUID
    tenant_name: str
    connections: int


class SyncSummaryRead(APIModel):
    since: datetime = Field(description="Start of the 24 h window")
    connections: list[ConnectionSummary]
    total: SyncSummaryRow = Field(description="The tenant's connections together")
    tenants: list[TenantSummary] | None = Field(
        default=None, description="Every tenant (platform admins, allTenants=true only)")


class ProvidersPerPerson(APIModel):
    providers: int = Field(description="Distinct providers a person's registrations came "
                                       "from (0: entered in racehub only)")
    people: int


class LinkDrift(APIModel):
    link_id: uuid.UUID
    provider: str
    connection_id: uuid.UUID
    connection_name: str
    provider_event_id: str
    provider_count: int = Field(description="Registrations synced from it, not withdrawn")
    racehub_count: int = Field(description="Active racehub participants made from its "
                                           "registrations")
    drift: int = Field(description="racehubCount - providerCount (0: in step)")


class EventDrift(APIModel):
    event_id: uuid.UUID
    name: str
    start_at: datetime
    racehub_count: int = Field(description="Active participants in racehub")
    provider_count: int = Field(description="The providers' registrations together")
    drift: int = Field(description="racehubCount - providerCount: negative when racehub "
                                   "lacks registrations, positive when it holds entries no "
                                   "provider sent (entered by hand) or the providers "
                                   "withdrew")
    links: list[LinkDrift]


class ParticipantTrackingRead(APIModel):
    unique_people: int = Field(description="Persons with at least one entry")
    entries: int = Field(description="Entries (a person in an event) of those persons")
    avg_events_per_person: float | None
    avg_providers_per_person: float | None
    providers_per_person: list[ProvidersPerPerson]
    events: list[EventDrift] = Field(description="A keyset page of the events with a "
                                                 "registration link, newest first")
    next_cursor: str | None = None


class HourBucket(APIModel):
    hour: datetime
    succeeded: int
    failed: int
    other: int = Field(description="Cancelled or discarded")
    active: int = Field(description="Still queued, running, retrying or waiting for a person")
