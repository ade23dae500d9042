"""The settings a RunSignUp connection's adapter reads (see providers/settings.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from racehub.providers.settings import ProviderSettings, text_list, time_zone_name

PAGE_SIZE_MAX = 10_000  # what may be stored; the adapter asks at most RunSignUp's own cap


class RunSignUpSettings(ProviderSettings):
    auth_style: Literal["header", "query"] = "header"
    individual_result_set_id: str | None = Field(default=None, max_length=40,
                                                 pattern=r"^\d+$")
    result_set_name: str | None = Field(default=None, max_length=200)
    time_zone: str | None = None
    # The races to read events from; unset: those of eventIds, else every race the key sees.
    race_ids: list[str] = Field(default_factory=list, max_length=200)
    # Ask for question responses even when no mapping rule reads them.
    include_questions: bool = False
    results_per_page: int | None = Field(default=None, ge=1, le=PAGE_SIZE_MAX)
    races_per_page: int | None = Field(default=None, ge=1, le=PAGE_SIZE_MAX)

    _zone = field_validator("time_zone")(time_zone_name)

    @field_validator("individual_result_set_id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value).strip() if isinstance(value, int) and not isinstance(value, bool) \
            else value

    @field_validator("race_ids", mode="before")
    @classmethod
    def _race_ids(cls, value: Any) -> Any:
        ids = text_list(value)
        if isinstance(ids, list):
            for race_id in ids:
                if not race_id.isdigit():
                    raise ValueError(f"race id {race_id!r} is not a number")
        return ids
