"""API shapes of provider connections. Credentials go in, never out: reads carry only
"set" and, for keys and ids, the last 4 characters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, SecretStr, field_validator

from racehub.core.schemas import APIModel, Name
from racehub.providers.catalog import PROVIDERS, Direction
from racehub.sync.models import ConnectionStatus
from racehub.sync.transforms import MappingRule, check_unique_targets

MAX_EVENT_IDS = 200
EVENT_IDS_HELP = (
    "The provider events chosen on this connection: its links, linked to a racehub event or "
    "not (GET /api/connections/{id}/links shows which event each feeds); empty: all events")


def _known_provider(provider: str) -> str:
    key = provider.strip().upper()
    if key not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    return key


def _clean_event_ids(ids: list[str] | None) -> list[str] | None:
    if ids is None:
        return None
    cleaned = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    for event_id in cleaned:
        if len(event_id) > 100:
            raise ValueError(f"event id {event_id[:20]!r}... is longer than 100 characters")
    return cleaned


def _unique_targets(rules: list[MappingRule] | None) -> list[MappingRule] | None:
    if rules is not None:
        check_unique_targets(rules)
    return rules


class ConnectionCreate(APIModel):
    provider: str = Field(description="RUNSIGNUP, RACE_ROSTER, HAKU, CHRONOTRACK or COPERNICO")
    name: Name = Field(max_length=120)
    base_url: str | None = Field(
        default=None, max_length=500,
        description="Unset: the provider's real API. Only a platform admin may set another.")
    credentials: dict[str, SecretStr] = Field(
        default_factory=dict, description="The provider's credential fields (write-only)")
    direction: Direction | None = Field(default=None, description="Unset: the provider's role")
    event_ids: list[str] = Field(default_factory=list, max_length=MAX_EVENT_IDS,
                                 description=EVENT_IDS_HELP)
    field_mapping: list[MappingRule] = Field(default_factory=list)
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="The provider's own settings (GET /api/providers lists them); those that "
                    "are URLs only a platform admin may set")

    _provider = field_validator("provider")(_known_provider)
    _events = field_validator("event_ids")(_clean_event_ids)
    _targets = field_validator("field_mapping")(_unique_targets)


class ConnectionUpdate(APIModel):
    """Only the fields sent change. A credential sent replaces that one field; an empty
    value clears an optional field. Credentials not sent keep their stored value."""

    name: Name | None = Field(default=None, max_length=120)
    base_url: str | None = Field(default=None, max_length=500)
    credentials: dict[str, SecretStr] | None = None
    direction: Direction | None = None
    event_ids: list[str] | None = Field(
        default=None, max_length=MAX_EVENT_IDS,
        description=EVENT_IDS_HELP + ". The list sent replaces the chosen ones; a provider "
                    "event linked to a racehub event must be unlinked before it is left out")
    field_mapping: list[MappingRule] | None = None
    settings: dict[str, Any] | None = Field(
        default=None, description="Only the settings sent change; an empty value removes one")

    _events = field_validator("event_ids")(_clean_event_ids)
    _targets = field_validator("field_mapping")(_unique_targets)


class CredentialHint(APIModel):
    set: bool
    secret: bool = Field(description="A secret shows only whether it is set, never a hint")
    last4: str | None = Field(
        default=None, description="Identifiers that are not secret only (a client id, a user "
        "name): their last 4 characters; never a secret's")


class ConnectionRead(APIModel):
    id: uuid.UUID
    provider: str
    provider_label: str
    name: str
    base_url: str
    is_default_base_url: bool
    direction: Direction
    event_ids: list[str] = Field(description=EVENT_IDS_HELP)
    field_mapping: list[dict[str, Any]]
    settings: dict[str, Any] = Field(description="The provider's own settings that are set")
    credentials: dict[str, CredentialHint]
    status: ConnectionStatus
    last_checked_at: datetime | None
    last_check_message: str | None
    created_at: datetime
    updated_at: datetime


# --- links: provider event -> racehub event, provider race -> category -----------------------


def _clean_ref(ref: str) -> str:
    ref = ref.strip()
    if not ref:
        raise ValueError("must not be blank")
    return ref


class DeletedLink(APIModel):
    provider_event_ref: str
    provider_event_name: str | None
    event_id: uuid.UUID | None = Field(description="The racehub event it fed (unset: none)")
    cursor: datetime | None = Field(description="Its stream's cursor, gone with it")
    last_success_at: datetime | None


class ConnectionDeleted(APIModel):
    """What a connection's deletion removed, and what stayed."""

    links: list[DeletedLink] = Field(description="Its provider events, deleted with their "
                                                 "cursors and category mappings")
    linked_events: int = Field(description="How many of them fed a racehub event")
    category_links: int
    webhook_deliveries: int
    runs_kept: int = Field(description="Sync runs whose history stays (without a connection)")
    records_kept: int = Field(description="Synced records that stay: a new connection to "
                                          "the same account takes their entries over")


class LinkCreate(APIModel):
    """Link one provider event of a connection to the event of the path. The provider event
    may already be chosen on the connection (its ``eventIds``): that row becomes linked."""

    connection_id: uuid.UUID
    provider_event_ref: str = Field(
        min_length=1, max_length=200,
        description="The provider's event ref, as GET /api/connections/{id}/events lists it")
    provider_event_name: str | None = Field(default=None, max_length=300)
    check_provider: bool = Field(
        default=False,
        description="Look the ref up in the provider's event list first (as when the operator "
                    "picks it from there): refused when the provider does not list it among "
                    "its first 200 events; the name comes from there when none is given")

    _ref = field_validator("provider_event_ref")(_clean_ref)


MAX_INTERVAL_MINUTES = 10_080  # a week


class LinkSyncSettings(APIModel):
    """A link's own cadence (minutes), overriding the settings' interval of each phase;
    unset or null: the setting. The request budget may still stretch them."""

    model_config = ConfigDict(extra="forbid")

    interval_minutes: float | None = Field(
        default=None, ge=1, le=MAX_INTERVAL_MINUTES,
        description="Outside race week and after the event (default "
                    "RACEHUB_SYNC_SCHEDULE_INTERVAL_MINUTES, 240)")
    near_start_interval_minutes: float | None = Field(
        default=None, ge=1, le=MAX_INTERVAL_MINUTES,
        description="Within RACEHUB_SYNC_SCHEDULE_NEAR_START_HOURS of the start (default 15)")
    race_day_interval_minutes: float | None = Field(
        default=None, ge=1, le=MAX_INTERVAL_MINUTES,
        description="From RACEHUB_SYNC_SCHEDULE_RACE_DAY_HOURS before the start until the "
                    "event ends (default 2)")
    results_auto_approve_below: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="Results publication: approve a prepared version by itself when it has "
                    "no validation error or warning and changes (adds, changes, removes) "
                    "fewer rows than this; unset: every version waits for a person")


class LinkUpdate(APIModel):
    """Only the fields sent change. To feed another event: unlink, then link there."""

    provider_event_name: str | None = Field(default=None, max_length=300)
    auto_sync: bool | None = Field(default=None,
                                   description="Whether scheduled runs sync this link")
    sync_settings: LinkSyncSettings | None = Field(
        default=None,
        description="The link's cadence overrides: the fields sent are set (null: back to the "
                    "setting), the others stay; null for the whole object clears them all")


class SchedulePlanRead(APIModel):
    """How the link's next run was planned."""

    planned_at: datetime
    phase: str = Field(description="base, near_start, race_day or over (after the event)")
    interval_minutes: float = Field(description="The cadence's interval in this phase")
    planned_interval_minutes: float = Field(
        description="The interval planned: the cadence's, stretched when the connection's "
                    "request budget cannot afford it")
    stretched: bool
    stretch: float = Field(description="The factor every interval of the connection was "
                                       "multiplied by (1: not stretched)")
    estimated_calls_per_run: int
    budget_per_hour: float = Field(description="Requests an hour the connection may make")
    planned_calls_per_hour: float = Field(
        description="What the connection's scheduled runs would need at their cadence")
    event_end: datetime | None = Field(description="When the event is taken to end")
    reason: str = Field(description="In words: the cadence, and why it was stretched")


class WaitingRunRead(APIModel):
    """A link's run that stopped for a person before applying anything."""

    id: uuid.UUID
    status: str = Field(description="held: by the circuit breaker (confirm or discard it); "
                                    "awaiting_review: its preview waits (apply or discard it)")
    hold_reason: str | None
    waiting_since: datetime | None


class LinkRead(APIModel):
    id: uuid.UUID
    connection_id: uuid.UUID
    connection_name: str
    provider: str
    provider_label: str
    provider_event_ref: str
    provider_event_name: str | None
    event_id: uuid.UUID | None = Field(description="The racehub event it feeds; null: chosen "
                                       "on the connection, not linked yet")
    event_name: str | None
    participant_source: bool = Field(
        description="Whether its registrations are synced into the event: links of "
                    "registration connections are; a scoring (timing) connection's link "
                    "receives the event's start list and gives its results")
    linked_at: datetime | None
    cursor: datetime | None = Field(description="The newest provider change fully applied; "
                                    "null: the next run reads everything")
    last_success_at: datetime | None
    auto_sync: bool
    next_run_at: datetime | None = Field(description="When the schedule runs it next; null: "
                                         "auto-sync is off or the link is not linked")
    sync_settings: LinkSyncSettings = Field(default_factory=LinkSyncSettings)
    schedule: SchedulePlanRead | None = Field(default=None,
                                              description="How next_run_at was planned")
    syncing: bool = Field(description="A run of this link is queued, running or retrying, "
                          "or waits for a person (it cannot be unlinked until that run ends)")
    syncing_types: list[str] = Field(
        default_factory=list,
        description="The sync types of its active runs, one run per type (a timing link "
                    "may be pushing its start list while its results are pulled)")
    waiting_run: WaitingRunRead | None = Field(
        default=None, description="Its run held by the circuit breaker or awaiting review: "
                                  "nothing syncs until someone decides")
    created_at: datetime
    updated_at: datetime


class CategoryLinkSet(APIModel):
    provider_ref: str = Field(min_length=1, max_length=200,
                              description="The provider's race, sub-event or distance")
    provider_name: str | None = Field(default=None, max_length=300,
                                      description="Unset: the name stored stays")
    category_id: uuid.UUID | None = Field(
        description="A category of the linked event; null: not mapped (no category)")

    _ref = field_validator("provider_ref")(_clean_ref)


class CategoryLinksUpdate(APIModel):
    """The mappings sent are set; the link's other provider races stay as they are."""

    categories: list[CategoryLinkSet] = Field(max_length=500)

    @field_validator("categories")
    @classmethod
    def _unique(cls, rows: list[CategoryLinkSet]) -> list[CategoryLinkSet]:
        seen: set[str] = set()
        for row in rows:
            if row.provider_ref in seen:
                raise ValueError(f"provider race {row.provider_ref!r} is given twice")
            seen.add(row.provider_ref)
        return rows


class CategoryLinkRead(APIModel):
    id: uuid.UUID
    provider_ref: str
    provider_name: str | None
    category_id: uuid.UUID | None
    category_name: str | None


class CheckRead(APIModel):
    ok: bool
    status: ConnectionStatus
    message: str
    checked_at: datetime


class PreviewRequest(APIModel):
    field_mapping: list[MappingRule]
    sample: list[dict[str, Any]] | None = Field(
        default=None, max_length=50,
        description="Raw provider records to preview on; unset: fetched from the provider")
    event_id: str | None = Field(default=None, max_length=100,
                                 description="The provider event to fetch a sample from")

    _targets = field_validator("field_mapping")(_unique_targets)


class PreviewRow(APIModel):
    values: dict[str, str | None] = Field(
        description="Every racehub field as a sync would store it (null: empty): the "
                    "adapter's default mapping, then the rules")
    errors: dict[str, str] = Field(description="Fields a rule or value failed on, and why")
    from_rule: list[str] = Field(default_factory=list,
                                 description="The fields whose value a rule gave")
    unreadable: str | None = Field(
        default=None, description="Why the adapter could not read this record (a pasted "
        "one not in the provider's shape): only the rules fill it")


class PreviewRead(APIModel):
    rows: list[PreviewRow]
    source_paths: list[str]
    sample_origin: str = Field(description="'provider' (fetched live) or 'pasted'")
