"""The settings a ChronoTrack connection's adapter reads (see providers/settings.py)."""

from __future__ import annotations

from pydantic import Field

from racehub.providers.settings import ProviderSettings


class ChronoTrackSettings(ProviderSettings):
    # Rows per request; the adapter asks at most ChronoTrack's own cap.
    page_size: int | None = Field(default=None, ge=1, le=10_000)
