"""Pydantic shapes of the alerts API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from racehub.alerts.models import AlertStatus, DeliveryStatus, NoticeKind
from racehub.core.schemas import _EMAIL, APIModel


class RuleSetting(APIModel):
    """One rule as a tenant set it: on or off, and its parameters (by name)."""

    enabled: bool = True
    params: dict[str, float] = Field(default_factory=dict)


class RuleRead(RuleSetting):
    name: str
    title: str
    description: str
    defaults: dict[str, float]


class AlertSettingsRead(APIModel):
    rules: list[RuleRead]
    repeat_hours: int
    email_recipients: list[str]
    webhook_url: str | None
    webhook_secret_set: bool
    # Only in the answer that made a new secret: shown once, never again.
    webhook_secret: str | None = None
    email_enabled: bool  # the platform configured an SMTP server


class AlertSettingsUpdate(APIModel):
    """Every field optional (only what is sent changes). ``rules`` merges by rule name."""

    rules: dict[str, RuleSetting] | None = None
    repeat_hours: int | None = Field(default=None, ge=1, le=24 * 30, title="Repeat every (hours)")
    email_recipients: list[str] | None = Field(default=None, max_length=50,
                                               title="E-mail recipients")
    webhook_url: str | None = Field(default=None, max_length=1000, title="Webhook URL")

    @field_validator("email_recipients")
    @classmethod
    def _addresses(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [a.strip() for a in value if a.strip()]
        for address in cleaned:
            if len(address) > 320 or not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an e-mail address like ada@example.com")
        return cleaned


class AcknowledgeRequest(APIModel):
    comment: str | None = Field(default=None, max_length=500)


class DeliveryRead(APIModel):
    id: uuid.UUID
    channel: str
    kind: NoticeKind
    target: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    sent_at: datetime | None
    error: str | None
    log: list[dict[str, Any]]
    created_at: datetime


class AlertRead(APIModel):
    id: uuid.UUID
    platform: bool  # a platform alert (platform admins), not the tenant's
    rule: str
    title: str
    fingerprint: str
    subject_type: str
    subject_id: str
    subject_label: str
    subject_url: str | None
    status: AlertStatus
    summary: str
    evidence: dict[str, Any]
    active_since: datetime
    fired_at: datetime | None
    last_seen_at: datetime
    last_notified_at: datetime | None
    notices: int
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledge_comment: str | None


class AlertDetail(AlertRead):
    deliveries: list[DeliveryRead]
