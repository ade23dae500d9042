"""Configuration from the environment (prefix ``RACEHUB_``); see README "Configuration"."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RACEHUB_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL is started under data_dir/pg.",
    )
    data_dir: Path = Field(default=Path("var"), description="Embedded database, uploads, exports.")
    host: str = "127.0.0.1"
    port: int = 8000
    web_concurrency: int | None = Field(
        default=None, ge=1,
        description="uvicorn worker processes for serve; default: one per CPU core, at most 8.",
    )

    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for GET /metrics (Prometheus); unset: /metrics is off (404).",
    )
    ready_worker_seconds: float = Field(
        default=120, gt=0, description="GET /readyz fails when no worker heartbeat is this recent."
    )

    log_level: str = "INFO"
    log_json: bool | None = Field(
        default=None, description="JSON log lines; default: JSON unless stderr is a terminal."
    )

    session_hours: int = Field(default=12, description="Idle lifetime of a login session.")
    secure_cookies: bool = Field(
        default=False,
        description="Always mark cookies Secure. They are Secure anyway on HTTPS requests.",
    )
    login_max_failures: int = Field(default=5, description="Failed logins before a lock-out.")
    login_lockout_minutes: int = 15
    max_upload_mb: int = Field(default=50, description="Largest file upload accepted.")
    max_json_kb: int = Field(
        default=1024, gt=0, description="Largest request body other than a file upload "
        "(JSON, forms), refused with 413 while it streams in.",
    )
    import_max_cells: int = Field(
        default=10_000_000, ge=1, description="An XLSX import's largest used range (rows x "
        "columns) and most cells present; larger files are refused (400) or fail their job.",
    )
    import_max_columns: int = Field(
        default=1000, ge=1, description="Most columns in an import file (a CSV row's cells, "
        "an XLSX sheet's columns counted from A).",
    )
    import_max_xml_mb: int = Field(
        default=256, ge=1, description="Largest uncompressed size of an XLSX import's sheet "
        "XML and of its sharedStrings.xml (a zip bomb is refused before it is unpacked).",
    )

    worker_concurrency: int = 4
    job_heartbeat_seconds: float = Field(default=10, description="Worker heartbeat period.")
    job_stalled_seconds: float = Field(
        default=30, description="A running job whose worker is silent this long is retried."
    )
    job_batch_size: int = Field(default=500, description="Rows per committed batch in jobs.")
    bulk_edit_inline_max: int = Field(
        default=300, ge=0, description="A bulk edit of more participants than this runs as "
        "a job (with progress) instead of in the request.",
    )
    job_shutdown_seconds: float = Field(
        default=5, ge=0, description="On SIGTERM/SIGINT, how long a worker lets running jobs "
        "finish before stopping them at their next batch (they resume elsewhere).",
    )

    sync_cursor_overlap_minutes: float = Field(
        default=10, ge=0, description="An incremental sync asks the provider for changes "
        "since its cursor minus this much, so a change saved late is not skipped.",
    )
    sync_breaker_withdraw_percent: float = Field(
        default=10, ge=0, le=100, description="The circuit breaker holds a sync run whose "
        "read would withdraw more than this share of the event's active participants; "
        "it applies nothing until someone with sync:run:start confirms it (100: never).",
    )
    sync_breaker_withdraw_min: int = Field(
        default=5, ge=1, description="The mass-withdrawal check holds a run only when it "
        "would withdraw at least this many participants: in a small event one or two "
        "withdrawals are above any percentage and are ordinary.",
    )
    sync_breaker_zero_rows_min_records: int = Field(
        default=10, ge=1, description="The circuit breaker holds a full read that returned "
        "no registration at all while the link has at least this many synced registrations "
        "(not withdrawn).",
    )
    sync_schedule_interval_minutes: float = Field(
        default=240, ge=1, le=10_080, description="Scheduled participant syncs of a linked "
        "provider event: every this many minutes outside race week (and after the event).",
    )
    sync_schedule_near_start_hours: float = Field(
        default=24, ge=0, le=720, description="Within this many hours of the event's start "
        "the cadence tightens to RACEHUB_SYNC_SCHEDULE_NEAR_START_INTERVAL_MINUTES.",
    )
    sync_schedule_near_start_interval_minutes: float = Field(
        default=15, ge=1, le=10_080, description="The cadence within "
        "RACEHUB_SYNC_SCHEDULE_NEAR_START_HOURS of the start.",
    )
    sync_schedule_race_day_hours: float = Field(
        default=4, ge=0, le=720, description="From this many hours before the start until "
        "the event ends (the end of its last start's day in its time zone) the cadence is "
        "RACEHUB_SYNC_SCHEDULE_RACE_DAY_INTERVAL_MINUTES.",
    )
    sync_schedule_race_day_interval_minutes: float = Field(
        default=2, ge=1, le=10_080, description="The cadence on race day.",
    )
    sync_schedule_budget_share: float = Field(
        default=0.8, gt=0, le=1, description="The share of a connection's request budget "
        "scheduled runs plan to use (the rest is left to manual runs, checks and discovery); "
        "intervals stretch when a connection's links would need more.",
    )

    sync_results_pull_interval_minutes: float = Field(
        default=30, ge=1, le=1440, description="While a linked timing event is live, its "
        "results are pulled every this many minutes (stretched when the connection's request "
        "budget is short).",
    )
    timing_live_hours: float = Field(
        default=12, ge=0, le=240, description="An event is live from its start until this "
        "many hours after its last start (the event's or a category's; racehub events have "
        "no end time): its results are pulled on schedule, and a start list push needs an "
        "event manager's confirmation to change or withdraw a registration on a timing "
        "system that does so by removing it (Copernico).",
    )

    export_storage: Literal["local", "s3"] = Field(
        default="local", description="Where finished exports are kept: a folder or S3."
    )
    export_dir: Path | None = Field(
        default=None, description="Folder of the local export storage; default data_dir/exports."
    )
    export_s3_bucket: str = Field(default="", description="S3 bucket of exports (storage s3).")
    export_s3_prefix: str = Field(default="exports/", description="Key prefix in the bucket.")
    export_s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, Ceph...); unset: AWS."
    )
    export_s3_region: str = "us-east-1"
    export_s3_access_key_id: str | None = Field(
        default=None, description="Unset: boto3's usual credential chain (env, profile, role)."
    )
    export_s3_secret_access_key: SecretStr | None = None
    export_expiry_hours: float = Field(
        default=72, description="Finished export files are deleted this long after completion."
    )
    export_batch_size: int = Field(default=1000, description="Rows read per keyset page.")
    publish_batch_size: int = Field(
        default=100, ge=1, le=1000, description="Result rows per request when a results "
        "version is published to the registration platform (RunSignUp full-results): "
        "small, so a failed request costs little and the progress shows; each batch is "
        "committed with the platform's answers.",
    )

    sync_payload_retention_days: int = Field(
        default=365, ge=1, description="Raw provider payloads (personal data) older than "
        "this are purged by a daily job; the synced records themselves stay.",
    )

    public_url: str | None = Field(
        default=None, description="The address users reach racehub at (https://racehub."
        "example.com): alert notices link to their alert there; unset: they give the path only.",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server alert e-mails are sent through; unset: no "
        "e-mail (deliveries are logged as refused, saying so).",
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="Port of RACEHUB_SMTP_HOST.")
    smtp_starttls: bool = Field(
        default=True, description="Upgrade the SMTP connection with STARTTLS (certificate "
        "checked) before logging in and sending.",
    )
    smtp_user: str | None = Field(default=None, description="SMTP login; unset: no login.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_from: str = Field(default="racehub@localhost",
                           description="The From address of alert e-mails.")
    smtp_timeout_seconds: float = Field(
        default=10, gt=0, description="Connect and reply timeout of the SMTP server and of "
        "alert webhooks.",
    )
    alert_webhook_allow_private: bool = Field(
        default=False, description="Let alert webhooks reach private, loopback and "
        "link-local addresses (tests and the demo). Off: such a URL is refused, checked "
        "after resolving its name, so a tenant cannot aim racehub at internal services.",
    )
    alert_key_max_age_days: float = Field(
        default=90, gt=0, description="Platform admins are alerted when the newest credential "
        "encryption key was first seen longer ago than this (rotate: racehub keys rotate).",
    )

    environment: Literal["development", "test", "production"] = Field(
        default="development",
        description="production refuses to start without RACEHUB_SECRET_KEYS; development "
        "and test derive a fixed, publicly known key instead (with a warning).",
    )
    secret_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys encrypting provider credentials, comma separated, newest "
        "first. New secrets use the first; every key decrypts (rotation: racehub keys rotate).",
    )

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_json_bytes(self) -> int:
        return self.max_json_kb * 1024


@lru_cache
def get_settings() -> Settings:
    return Settings()
