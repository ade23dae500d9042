"""The settings a Haku connection's adapter reads (see providers/settings.py)."""

from __future__ import annotations

from pydantic import Field, field_validator

from racehub.providers.settings import ProviderSettings, http_url


class HakuSettings(ProviderSettings):
    token_url: str | None = Field(default=None, max_length=500)
    # Rows per request; the adapter asks at most Haku's own cap.
    per_page: int | None = Field(default=None, ge=1, le=10_000)

    _url = field_validator("token_url")(http_url)
