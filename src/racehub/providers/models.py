"""The shared request budget of each provider connection (see ``ratelimit.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Text
from sqlalchemy.orm import Mapped, mapped_column

from racehub.db.base import Base


class ProviderRateLimit(Base):
    """One token bucket per key (a connection id). No FK: keys may name any budget, and
    buckets of deleted connections are harmless and tiny."""

    __tablename__ = "provider_rate_limits"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    tokens: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Set when the provider asked us to back off: nobody spends the budget before then.
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
