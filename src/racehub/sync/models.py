"""A tenant's connection to a provider: where, with which (encrypted) credentials, how;
and what the provider sent to it (webhook deliveries)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from racehub.db.base import Base, TenantMixin, TimestampMixin, UUIDPrimaryKey, pg_enum
from racehub.providers.catalog import PROVIDERS, Direction


class ConnectionStatus(enum.StrEnum):
    UNTESTED = "UNTESTED"  # created or credentials changed since the last check
    OK = "OK"
    FAILED = "FAILED"


class ProviderConnection(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    __tablename__ = "provider_connections"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_provider_connections_tenant_id_name"),
        CheckConstraint("provider IN (" + ", ".join(f"'{k}'" for k in PROVIDERS) + ")",
                        name="provider_known"),
    )

    provider: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(120))
    # Defaults to the provider's real API; only a platform admin may point it elsewhere.
    base_url: Mapped[str] = mapped_column(String(500))
    # One Fernet token holding the JSON object of every credential field; never logged.
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    # Which key encrypted it (crypto.key_id): tells when a rotation has reached every row.
    credentials_key_id: Mapped[str] = mapped_column(String(16))
    direction: Mapped[Direction] = mapped_column(pg_enum(Direction, "connection_direction"))
    # The provider's own settings (catalog.py); the provider events chosen on the connection
    # are EventLink rows (sync/links.py), read by the adapters as their "eventIds".
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # A list of transforms.MappingRule dicts overriding the adapter's default mapping.
    field_mapping: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    status: Mapped[ConnectionStatus] = mapped_column(
        pg_enum(ConnectionStatus, "connection_status"), default=ConnectionStatus.UNTESTED)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_check_message: Mapped[str | None] = mapped_column(String(500))
    # The end of the last complete discovery of its provider events (sync/discovery.py).
    events_discovered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(UUIDPrimaryKey, TenantMixin, Base):
    """One delivery as received (append-only). ``payload`` is the repaired JSON without
    its ``apiKey``."""

    __tablename__ = "provider_webhook_deliveries"
    __table_args__ = (
        # The connection page lists the newest deliveries of one connection.
        Index("ix_provider_webhook_deliveries_connection_id_received_at",
              "connection_id", "received_at"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("provider_connections.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))
    participant_id: Mapped[str | None] = mapped_column(Text)
    participant_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    point: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    raw_time: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                  server_default=func.now())


# --- the sync engine's model ---------------------------------------------------------------
# A stream in Singer/Airbyte terms: one provider event of one connection (an EventLink),
# keyed by the provider's registration id, with a cursor (the provider's modification time)
# checkpointed in the same transaction as the rows it covers.


class EventLink(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """A provider's event as one connection sees it, and the racehub event it feeds.

    A row exists once the provider event is chosen on the connection (``chosen``: its
    ``eventIds``) or discovered in the provider's listing (sync/discovery.py: a candidate,
    not chosen), and is linked when ``event_id`` is set (a linked row is chosen). One
    racehub event may link several provider events (a RunSignUp race and a Haku event of
    the same race day); a provider event feeds at most one racehub event per connection.
    The row is also the stream's state: its cursor, its last success, its schedule."""

    __tablename__ = "event_links"
    __table_args__ = (
        UniqueConstraint("connection_id", "provider_event_ref",
                         name="uq_event_links_connection_id_provider_event_ref"),
        Index("ix_event_links_tenant_id_event_id", "tenant_id", "event_id"),
        # The schedule's tick: the linked, auto-synced links by when they are due.
        Index("ix_event_links_next_run_at", "next_run_at",
              postgresql_where=text("auto_sync AND event_id IS NOT NULL")),
        # The event page lists the candidates whose start is near the event's.
        Index("ix_event_links_tenant_id_provider_start_at", "tenant_id", "provider_start_at"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("provider_connections.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(30))
    # The adapter's opaque event ref (ProviderEvent.ref), e.g. "12345" or "12345:678".
    provider_event_ref: Mapped[str] = mapped_column(String(200))
    provider_event_name: Mapped[str | None] = mapped_column(String(300))
    # RESTRICT: an event with links is not deleted under a sync (unlink first).
    event_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("events.id", ondelete="RESTRICT"))
    linked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Incremental state: the newest provider modification time fully applied. A run asks
    # for changes since (cursor - overlap window); NULL means the next run reads everything.
    cursor: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Anything else the stream keeps between runs (provider-specific paging state).
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Schedules (part 2): whether runs are deferred automatically, overrides, when next.
    auto_sync: Mapped[bool] = mapped_column(Boolean, default=True)
    sync_settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # How next_run_at was planned (sync/schedule.py ``LinkPlan``): the cadence's phase and
    # interval, whether the request budget stretched it and why. NULL: not planned.
    schedule_plan: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Chosen on the connection (its ``eventIds``, read by the adapters), or linked. A row
    # only discovered is not: it is a candidate on the Provider events page.
    chosen: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Discovery: first and last seen in the provider's listing; ``gone_at`` when a complete
    # listing no longer had it (marked, never deleted; cleared when it comes back).
    discovered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    gone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the listing said of it: its start (UTC), the time zone as the provider gave it
    # (NULL: not given; never guessed) and the rest (``discovery.DETAIL_KEYS``: end,
    # where the zone came from, its race/parent, distance, location, modified).
    provider_start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_time_zone: Mapped[str | None] = mapped_column(String(64))
    provider_details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb"))


class CategoryLink(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """A provider race/sub-event/distance of a linked event -> a racehub category.
    ``category_id`` NULL: seen, not mapped yet (its participants get no category)."""

    __tablename__ = "category_links"
    __table_args__ = (
        UniqueConstraint("link_id", "provider_ref", name="uq_category_links_link_id_provider_ref"),
    )

    link_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event_links.id", ondelete="CASCADE"))
    provider_ref: Mapped[str] = mapped_column(String(200))
    provider_name: Mapped[str | None] = mapped_column(String(300))
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"))


class SyncedRecord(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """One provider registration as last synced, keyed by (tenant, provider, the provider's
    own registration id): never by bib. A row keyed by a fallback (RunSignUp without a
    registration id: its user id within the event) says so; when the registration id
    arrives later the row is re-keyed in place and stays the same EP."""

    __tablename__ = "synced_records"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "source_ref",
                         name="uq_synced_records_tenant_id_provider_source_ref"),
        Index("ix_synced_records_link_id", "link_id"),
        # Registrations not withdrawn per link, counted from the index alone (monitoring).
        Index("ix_synced_records_link_id_active", "link_id",
              postgresql_where=text("withdrawn_at IS NULL")),
        Index("ix_synced_records_participant_id", "participant_id"),
        # The retention purge walks payloads by age.
        Index("ix_synced_records_payload_synced_at", "payload_synced_at",
              postgresql_where=text("payload IS NOT NULL")),
    )

    provider: Mapped[str] = mapped_column(String(30))
    source_ref: Mapped[str] = mapped_column(String(200))
    ref_is_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("provider_connections.id", ondelete="SET NULL"))
    link_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_links.id", ondelete="SET NULL"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    participant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_participants.id", ondelete="SET NULL"))
    provider_person_ref: Mapped[str | None] = mapped_column(String(200))
    # The mapped values as last applied (field -> value as JSON): the "last synced" column
    # of a three-way diff (provider now / last synced / racehub now).
    synced_values: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # sha256 of the canonical JSON of what the provider sent: unchanged -> no write at all.
    content_hash: Mapped[str] = mapped_column(String(64))
    # The raw payload; personal data, readable by EVENT_MANAGER and up, purged (set NULL)
    # after the retention setting.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    payload_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                     server_default=func.now())
    # How the EP's person was chosen: "new", "email_birth_date", "name_birth_date",
    # "provider_person" (same provider person id), "split" (an operator separated a wrong
    # match: never matched again automatically).
    person_match: Mapped[str | None] = mapped_column(String(30))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_reason: Mapped[str | None] = mapped_column(String(300))
    # A transfer: the registration this one was transferred to (lineage).
    transferred_to_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("synced_records.id", ondelete="SET NULL"))


class SyncType(enum.StrEnum):
    PARTICIPANTS = "participants"  # registration platform -> racehub
    RESULTS_PULL = "results_pull"  # timing system -> racehub's results (sync/results_pull.py)
    START_LIST_PUSH = "start_list_push"  # racehub -> timing system (sync/timing_push.py)
    # racehub's results -> a version to approve before it goes to the registration platform
    # (sync/publications.py); the publish itself is the version's job, not a run.
    RESULTS_PUBLISH_PREPARE = "results_publish_prepare"


class SyncTrigger(enum.StrEnum):
    """Who or what asked for the run. A retried run keeps its trigger (its ``attempts``
    count the tries); migration 0022 gave back the trigger of runs once relabelled "retry"."""

    MANUAL = "manual"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    # Asked by another run: a start list push after a participant sync changed the event.
    AFTER_SYNC = "after_sync"


class SyncStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"  # failed with a retryable error, waiting for its next attempt
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent error, or retries exhausted
    CANCELLED = "cancelled"
    # Read and staged, applying nothing until a person decides (sync/review.py): a manual
    # run asked with a preview, or a run the circuit breaker held (``hold_reason``).
    AWAITING_REVIEW = "awaiting_review"
    HELD = "held"
    DISCARDED = "discarded"  # a person discarded the staged read: nothing was applied

    @property
    def is_active(self) -> bool:
        """The link's one run: a request meanwhile joins it (a run waiting for a person
        included, so a schedule does not read past what waits to be reviewed)."""
        return self in (SyncStatus.QUEUED, SyncStatus.RUNNING, SyncStatus.RETRYING,
                        SyncStatus.AWAITING_REVIEW, SyncStatus.HELD)

    @property
    def is_waiting(self) -> bool:
        """Staged, waiting for a person (no job runs it meanwhile)."""
        return self in (SyncStatus.AWAITING_REVIEW, SyncStatus.HELD)


ACTIVE_SYNC_STATUSES = tuple(s.value for s in SyncStatus if s.is_active)
WAITING_SYNC_STATUSES = tuple(s.value for s in SyncStatus if s.is_waiting)
ONE_ACTIVE_RUN_INDEX = "uq_sync_runs_link_id_active"
ONE_ACTIVE_RUN_WHERE = ("status IN ('queued', 'running', 'retrying', 'awaiting_review', "
                        "'held')")


class SyncRun(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """One run of one sync type over one link: what it read, what it changed, how it ended."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index("ix_sync_runs_tenant_id_created_at", "tenant_id", "created_at", "id"),
        Index("ix_sync_runs_connection_id_created_at", "connection_id", "created_at"),
        Index("ix_sync_runs_link_id_created_at", "link_id", "created_at"),
        # One run per link at a time: a second request joins the active one.
        Index(ONE_ACTIVE_RUN_INDEX, "link_id", "sync_type", unique=True,
              postgresql_where=text(ONE_ACTIVE_RUN_WHERE)),
        # The alert rules (alerts/rules.py), bounded by time or by link, never by history:
        # the runs failing in the last hour, and each link's newest finished run of a type.
        Index("ix_sync_runs_failing", "finished_at",
              postgresql_where=text("status IN ('failed', 'retrying')")),
        Index("ix_sync_runs_link_id_sync_type_finished_at", "link_id", "sync_type",
              "finished_at", postgresql_where=text("status IN ('succeeded', 'failed')")),
    )

    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("provider_connections.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(30))
    link_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_links.id", ondelete="SET NULL"))
    event_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("events.id", ondelete="SET NULL"))
    sync_type: Mapped[str] = mapped_column(String(40))
    trigger: Mapped[str] = mapped_column(String(20))
    status: Mapped[SyncStatus] = mapped_column(pg_enum(SyncStatus, "sync_status"),
                                               default=SyncStatus.QUEUED)
    job_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("job_runs.id", ondelete="SET NULL"))
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    requested_by_label: Mapped[str] = mapped_column(String(400), default="system")
    full_refresh: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cursor_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cursor_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn: Mapped[int] = mapped_column(Integer, default=0)
    conflicts: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[int] = mapped_column(Integer, default=0)
    # A results pull: athletes the timing system has on the course (started, no result
    # yet). Counted, never stored as results; a later pull reads their finish.
    on_course: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What users are shown of a failure: one line, scrubbed of secrets; never a traceback.
    error: Mapped[str | None] = mapped_column(String(1000))
    retryable: Mapped[bool | None] = mapped_column(Boolean)
    # The guards between staging and applying (sync/review.py). ``preview``: asked to stop
    # for review once staged (a manual run's choice). ``hold_reason``: why the circuit
    # breaker held it. ``waiting_since``: when it stopped for a person; ``review``: what
    # that person decided ("applied", "confirmed", "discarded"), by whom and when.
    preview: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    hold_reason: Mapped[str | None] = mapped_column(String(1000))
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    review: Mapped[str | None] = mapped_column(String(20))
    reviewed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_by_label: Mapped[str | None] = mapped_column(String(400))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ChangeAction(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    WITHDRAWN = "withdrawn"
    RESTORED = "restored"  # a withdrawn registration came back
    TRANSFERRED = "transferred"
    CONFLICT = "conflict"
    PROBLEM = "problem"  # a row the adapter could not read: named by its id and field


class SyncChange(UUIDPrimaryKey, TenantMixin, Base):
    """One record's change in one run: ``changes`` is {field: [old, new]}. The history
    shows the fields the participants page shows; raw payloads are elsewhere."""

    __tablename__ = "sync_changes"
    # A run's changes are paged in (at, id) order.
    __table_args__ = (Index("ix_sync_changes_run_id_at_id", "run_id", "at", "id"),
                      Index("ix_sync_changes_participant_id", "participant_id"))

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    record_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("synced_records.id", ondelete="SET NULL"))
    participant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_participants.id", ondelete="SET NULL"))
    source_ref: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[ChangeAction] = mapped_column(pg_enum(ChangeAction, "sync_change_action"))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    message: Mapped[str | None] = mapped_column(String(1000))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConflictStatus(enum.StrEnum):
    OPEN = "open"
    KEPT = "kept"  # keep ours: racehub's value stays
    TAKEN = "taken"  # take theirs: the provider's value was written


class SyncConflict(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """A provider change to a racehub-owned field: never a silent overwrite. One open
    conflict per EP and field; a newer provider value updates it in place."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (
        Index("uq_sync_conflicts_participant_id_field_open", "participant_id", "field",
              unique=True, postgresql_where=text("status = 'open'")),
        Index("ix_sync_conflicts_tenant_id_event_id_status", "tenant_id", "event_id", "status"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    participant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("event_participants.id", ondelete="CASCADE"))
    record_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("synced_records.id", ondelete="SET NULL"))
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sync_runs.id", ondelete="SET NULL"))
    field: Mapped[str] = mapped_column(String(40))
    local_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    provider_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    status: Mapped[ConflictStatus] = mapped_column(pg_enum(ConflictStatus, "sync_conflict_status"),
                                                   default=ConflictStatus.OPEN)
    resolved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    resolved_by_label: Mapped[str | None] = mapped_column(String(400))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StagedKind(enum.StrEnum):
    PARTICIPANT = "participant"
    WITHDRAWAL = "withdrawal"
    PROBLEM = "problem"


class StagedRow(TenantMixin, Base):
    """What a run read, before it is applied: nothing is applied from a partial read. Rows
    are deleted when their run is applied (or given up)."""

    __tablename__ = "sync_staged_rows"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"),
                                              primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[StagedKind] = mapped_column(pg_enum(StagedKind, "sync_staged_kind"))
    source_ref: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)


class PreviewAction(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    WITHDRAWN = "withdrawn"
    CONFLICT = "conflict"
    UNCHANGED = "unchanged"


class SyncPreviewItem(TenantMixin, Base):
    """What applying a staged run would do to one registration, computed without writing
    when the run stops for a person (sync/preview.py). ``fields`` holds, per changed field
    the participants page shows, {"provider", "synced", "local"}; ``other_fields`` names
    the changed fields it does not show (contact data, birth date): never their values.
    ``selected``: applied when the run is (a reviewer may apply only some). Deleted with
    the staged rows when the run is applied or discarded."""

    __tablename__ = "sync_preview_items"
    __table_args__ = (
        Index("ix_sync_preview_items_run_id_action_seq", "run_id", "action", "seq"),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"),
                                              primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_ref: Mapped[str] = mapped_column(String(200))
    kind: Mapped[StagedKind] = mapped_column(pg_enum(StagedKind, "sync_staged_kind"))
    action: Mapped[PreviewAction] = mapped_column(pg_enum(PreviewAction,
                                                          "sync_preview_action"))
    participant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_participants.id", ondelete="SET NULL"))
    name: Mapped[str | None] = mapped_column(String(300))
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    other_fields: Mapped[list[str]] = mapped_column(JSONB, default=list)
    message: Mapped[str | None] = mapped_column(String(1000))
    selected: Mapped[bool] = mapped_column(Boolean, default=True)


class TimingPushState(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """What racehub last pushed to a timing system's event (a SCORING link) under one
    external id: the id (the event's timing identifier mode: EP id, person id or
    registration id; never the bib), the hash of what was sent, and whether it was then
    withdrawn there. One row per id the timing system holds: an EP whose id changed (the
    mode was changed, a registration id corrected) has its old row withdrawn and a new one.
    Written only for what the provider accepted, so the next push sends only changes."""

    __tablename__ = "timing_push_states"
    __table_args__ = (
        UniqueConstraint("link_id", "external_id",
                         name="uq_timing_push_states_link_id_external_id"),
        Index("ix_timing_push_states_participant_id", "participant_id"),
    )

    link_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event_links.id", ondelete="CASCADE"))
    # SET NULL: an EP deleted after its push still has its id withdrawn by the next push.
    participant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_participants.id", ondelete="SET NULL"))
    external_id: Mapped[str] = mapped_column(String(200))
    # sha256 of the canonical JSON of the fields sent (``pushed_values``).
    content_hash: Mapped[str] = mapped_column(String(64))
    # The fields as sent: what a preview compares a change with. Personal data, as the
    # synced records' values are.
    pushed_values: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    pushed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when the timing system was told it is out (removed or marked DNS, per provider);
    # cleared when it is pushed again.
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sync_runs.id", ondelete="SET NULL"))


# --- results publication (sync/publications.py) ---------------------------------------------


class PublicationStatus(enum.StrEnum):
    INVALID = "invalid"  # validation found errors: it cannot be approved
    READY = "ready"  # passes validation (maybe with warnings): waiting for approval
    APPROVED = "approved"  # approved; its publish job is queued
    PUBLISHING = "publishing"  # the publish job is sending it (or waits for its retry)
    PUBLISHED = "published"
    FAILED = "failed"  # the publish failed for good; approving it again retries it
    SUPERSEDED = "superseded"  # a newer version of the link was prepared before this went out


class RowChange(enum.StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    REMOVED = "removed"  # in the last published version, not in this one


class RowAnswer(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"  # the platform holds the row as sent (its row id in provider_row_id)
    REFUSED = "refused"  # the platform refused it: ``answer_message`` says why
    NOT_SENT = "not_sent"  # not sendable (no registration on the platform), or removed


class ResultPublication(UUIDPrimaryKey, TenantMixin, TimestampMixin, Base):
    """One version of an event's results for one link (a provider event of a registration
    platform): the rows as prepared, what validation said, the diff against the link's last
    published version, who approved it and when, and what the platform answered. Versions
    are numbered per event and kept."""

    __tablename__ = "result_publications"
    __table_args__ = (
        UniqueConstraint("event_id", "version", name="uq_result_publications_event_id_version"),
        Index("ix_result_publications_link_id_version", "link_id", "version"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    # SET NULL: a version outlives its link and connection (it is the record of what went out).
    link_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_links.id", ondelete="SET NULL"))
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("provider_connections.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(30))
    provider_event_ref: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[PublicationStatus] = mapped_column(
        pg_enum(PublicationStatus, "publication_status"))
    # The prepare run (sync_type results_publish_prepare) that built it.
    sync_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sync_runs.id", ondelete="SET NULL"))
    prepared_by_label: Mapped[str] = mapped_column(String(400))
    # The published version this one is diffed against (None: the first).
    base_version: Mapped[int | None] = mapped_column(Integer)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[int] = mapped_column(Integer, default=0)
    # [{"code", "severity" (error|warning), "message", "category", "seq"}]: each names its row.
    validation: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    approved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    approved_by_label: Mapped[str | None] = mapped_column(String(400))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The warning codes the approver named (every warning of the version, or it was refused).
    acknowledged_warnings: Mapped[list[str]] = mapped_column(JSONB, default=list)
    auto_approved: Mapped[bool] = mapped_column(Boolean, default=False)
    # The platform's result set the rows went into: kept so a retried or repeated publish
    # reuses it; ``result_set_requested`` is set (and committed) before asking for a new
    # set, so an attempt cut between the ask and the answer looks for it by name first.
    result_set_id: Mapped[str | None] = mapped_column(String(100))
    result_set_name: Mapped[str | None] = mapped_column(String(200))
    result_set_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    publish_job_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("job_runs.id", ondelete="SET NULL"))
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)  # rows posted (edits included)
    error: Mapped[str | None] = mapped_column(String(1000))


class PublicationRow(TenantMixin, Base):
    """One row of a version: the result as prepared, its change against the base version
    (``previous``: {field: old value} of what changed; a removed row holds the old row),
    its validation codes and the platform's answer."""

    __tablename__ = "result_publication_rows"
    __table_args__ = (
        Index("ix_result_publication_rows_publication_id_change_seq", "publication_id",
              "change", "seq"),
    )

    publication_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("result_publications.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_participants.id", ondelete="SET NULL"))
    # The registration on the platform (SyncedRecord.source_ref); None: not mapped.
    registration_ref: Mapped[str | None] = mapped_column(String(200))
    bib: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(10))
    place: Mapped[int | None] = mapped_column(Integer)
    chip_ms: Mapped[int | None] = mapped_column(BigInteger)
    gun_ms: Mapped[int | None] = mapped_column(BigInteger)
    gender: Mapped[str | None] = mapped_column(String(10))
    age: Mapped[int | None] = mapped_column(Integer)
    change: Mapped[RowChange] = mapped_column(pg_enum(RowChange, "publication_row_change"))
    previous: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    problems: Mapped[list[str]] = mapped_column(JSONB, default=list)
    sendable: Mapped[bool] = mapped_column(Boolean, default=True)
    answer: Mapped[RowAnswer] = mapped_column(pg_enum(RowAnswer, "publication_row_answer"),
                                              default=RowAnswer.PENDING)
    answer_message: Mapped[str | None] = mapped_column(String(1000))
    provider_row_id: Mapped[str | None] = mapped_column(String(100))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
