"""A tenant's connection to a provider: where, with which (encrypted) credentials, how;
and what the provider sent to it (webhook deliveries)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
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
    # {"eventIds": [...]}: the provider's events to sync; empty means all of them.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # A list of transforms.MappingRule dicts overriding the adapter's default mapping.
    field_mapping: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    status: Mapped[ConnectionStatus] = mapped_column(
        pg_enum(ConnectionStatus, "connection_status"), default=ConnectionStatus.UNTESTED)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_check_message: Mapped[str | None] = mapped_column(String(500))


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
