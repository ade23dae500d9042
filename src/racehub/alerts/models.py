"""Alerts: what the rules found (``Alert``), each tenant's alert settings, the delivery log
of the notices sent about them, and when each credential key was first seen."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from racehub.db.base import Base, TimestampMixin, UUIDPrimaryKey, pg_enum


class AlertStatus(enum.StrEnum):
    # The condition holds, not yet for the rule's "for" duration: nobody is told yet.
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(UUIDPrimaryKey, TimestampMixin, Base):
    """One occurrence of a rule's condition on one subject. ``fingerprint`` is the rule and
    the subject (``rule:subject_type:subject_id``): at most one open alert per tenant and
    fingerprint; once resolved the row stays as history and a new occurrence is a new row.

    ``tenant_id`` NULL: a platform alert (the credential key's age), for platform admins."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("uq_alerts_tenant_id_fingerprint_open", "tenant_id", "fingerprint", unique=True,
              postgresql_where=text("resolved_at IS NULL"), postgresql_nulls_not_distinct=True),
        # The list pages and the badge: a tenant's open alerts, its past ones newest first.
        Index("ix_alerts_tenant_id_resolved_at", "tenant_id", "resolved_at"),
        # The evaluation reads every open alert (all tenants) each minute.
        Index("ix_alerts_open", "rule", postgresql_where=text("resolved_at IS NULL")),
    )

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(40))
    fingerprint: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(120))
    subject_label: Mapped[str] = mapped_column(String(400))
    # Where the subject is fixed (a page path), shown beside the alert.
    subject_url: Mapped[str | None] = mapped_column(String(400))
    status: Mapped[AlertStatus] = mapped_column(pg_enum(AlertStatus, "alert_status"))
    summary: Mapped[str] = mapped_column(String(1000))
    # What the rule saw, refreshed at each evaluation while open (counts, run ids, errors).
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    active_since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notices: Mapped[int] = mapped_column(Integer, default=0)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    acknowledged_by_label: Mapped[str | None] = mapped_column(String(400))
    acknowledge_comment: Mapped[str | None] = mapped_column(String(500))


class AlertSettings(TimestampMixin, Base):
    """A tenant's alert settings (no row: every default). ``rules`` holds, per rule name,
    only what the tenant changed: ``{"sync_failures": {"enabled": true, "threshold": 5}}``.
    The webhook secret is encrypted with the credential keyring (``secret_key_id`` says
    which key: ``racehub keys rotate`` re-encrypts it) and never shown again."""

    __tablename__ = "alert_settings"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    repeat_hours: Mapped[int] = mapped_column(Integer, default=24)
    email_recipients: Mapped[list[str]] = mapped_column(JSONB, default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(1000))
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    webhook_secret_key_id: Mapped[str | None] = mapped_column(String(16))


class NoticeKind(enum.StrEnum):
    FIRING = "firing"
    REPEAT = "repeat"
    RESOLVED = "resolved"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt at ``next_attempt_at``
    SENT = "sent"
    FAILED = "failed"  # every attempt failed
    REFUSED = "refused"  # never sent: a private address, no SMTP server configured...


class AlertDelivery(UUIDPrimaryKey, TimestampMixin, Base):
    """One notice about one alert on one channel (e-mail, webhook), with its attempts: the
    delivery log. ``payload`` is what is sent (the webhook's JSON body, the mail's text)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        # The delivery job takes the due ones, oldest first.
        Index("ix_alert_deliveries_due", "next_attempt_at",
              postgresql_where=text("status = 'pending'")),
        Index("ix_alert_deliveries_alert_id", "alert_id"),
    )

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))  # "email" / "webhook"
    kind: Mapped[NoticeKind] = mapped_column(pg_enum(NoticeKind, "alert_notice_kind"))
    target: Mapped[str] = mapped_column(String(2000))  # the addresses, or the URL
    status: Mapped[DeliveryStatus] = mapped_column(
        pg_enum(DeliveryStatus, "alert_delivery_status"), default=DeliveryStatus.PENDING)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Each attempt: {"at", "ok", "detail"} (the HTTP status, the SMTP reply, the error).
    log: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(String(1000))


class CredentialKey(Base):
    """A credential encryption key id and when racehub first saw it in use: keys come from
    the environment with no date, so a key's age is measured from here."""

    __tablename__ = "credential_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                    server_default=func.now())
