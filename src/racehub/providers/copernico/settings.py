"""The settings a Copernico connection's adapter reads (see providers/settings.py)."""

from __future__ import annotations

from pydantic import Field, field_validator

from racehub.providers.settings import MAX_LIST_ITEMS, ProviderSettings, http_url


class CopernicoSettings(ProviderSettings):
    results_base_url: str | None = Field(default=None, max_length=500)
    preset_owner: str | None = Field(default=None, max_length=320)
    preset: str | None = Field(default=None, max_length=200)
    race_slug: str | None = Field(default=None, max_length=200)
    # eventId -> the event's name in results URLs, where they differ.
    event_names: dict[str, str] = Field(default_factory=dict, max_length=MAX_LIST_ITEMS)

    _url = field_validator("results_base_url")(http_url)

    @field_validator("preset_owner", "preset", "race_slug")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None
