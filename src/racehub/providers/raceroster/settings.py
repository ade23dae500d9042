"""The settings a Race Roster connection's adapter reads (see providers/settings.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from racehub.providers.settings import MAX_LIST_ITEMS, ProviderSettings, http_url


class RaceRosterSettings(ProviderSettings):
    token_url: str | None = Field(default=None, max_length=500)
    results_api: Literal["v2", "v1"] = "v2"
    results_base_url: str | None = Field(default=None, max_length=500)
    # eventId -> the results API's event id, where they differ.
    result_event_ids: dict[str, str] = Field(default_factory=dict, max_length=MAX_LIST_ITEMS)
    # Rows per request (registrations; v1 results; v2 results); the adapter keeps each
    # within Race Roster's own caps (and registrations at 2 or more: each page re-reads a
    # row).
    page_size: int | None = Field(default=None, ge=1, le=10_000)
    results_per_page: int | None = Field(default=None, ge=1, le=10_000)
    results_limit: int | None = Field(default=None, ge=1, le=10_000)

    _urls = field_validator("token_url", "results_base_url")(http_url)
