"""A connection's settings as each adapter reads them: one validated model per provider.

The same model checks a setting when the API stores it (``sync.service``, through the
catalog's ``ProviderSpec.settings_model``) and when an adapter is built from what is
stored (``ProviderAdapter.__init__``): an adapter reads ``self.settings.<name>``, so a
setting it reads is a field here (mypy checks it), with its type and bounds. Unknown keys
are refused, named.

Two keys are racehub's, not the user's: ``eventIds`` (the events to sync, kept in the same
JSON and set through the connection's ``eventIds``) and ``mapping_sources`` (the paths the
connection's field mapping reads). ``INTERNAL`` names them; the API does not take them as
settings.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_MAX_PAGES = 10_000
MAX_LIST_ITEMS = 200


class ProviderSettings(BaseModel):
    """What every adapter reads (providers/base.py): paging bound, request budget, retries
    and timeouts of its HTTP client."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    INTERNAL: ClassVar[frozenset[str]] = frozenset({"eventIds", "mapping_sources"})

    eventIds: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)  # noqa: N815 - stored key
    mapping_sources: list[str] = Field(default_factory=list)

    rate_per_second: float | None = Field(default=None, gt=0, le=1000)
    rate_burst: int | None = Field(default=None, ge=1, le=1000)
    max_pages: int = Field(default=DEFAULT_MAX_PAGES, ge=1, le=100_000)
    max_attempts: int = Field(default=4, ge=1, le=10)
    max_retry_after: float = Field(default=120.0, ge=0, le=3600)
    backoff_base: float = Field(default=0.5, ge=0, le=60)
    backoff_max: float = Field(default=30.0, ge=0, le=600)
    connect_timeout: float = Field(default=5.0, gt=0, le=120)
    read_timeout: float = Field(default=30.0, gt=0, le=600)

    @field_validator("eventIds", "mapping_sources", mode="before")
    @classmethod
    def _text_list(cls, value: Any) -> Any:
        return text_list(value)

    @classmethod
    def user_fields(cls) -> list[str]:
        """The settings a user may store (in declaration order: the provider's own first)."""
        own = [n for n in cls.model_fields if n not in ProviderSettings.model_fields]
        common = [n for n in ProviderSettings.model_fields if n not in cls.INTERNAL]
        return own + common


def text_list(value: Any) -> Any:
    """One value or a list of them -> a list of stripped, non-blank texts."""
    if value is None:
        return []
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value
                if isinstance(v, str | int) and not isinstance(v, bool) and str(v).strip()]
    return value


def time_zone_name(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; a name such as America/Chicago"
                         ) from None
    return value.strip()


def http_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL such as https://api.example.com/v1")
    return value.strip().rstrip("/")


def problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(``settings.<field>``, message) of each error of a settings model."""
    found = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "no such setting"
        elif error.get("type") == "literal_error":
            expected = str((error.get("ctx") or {}).get("expected", ""))
            message = "must be one of " + expected.replace("'", "").replace(" or ", ", ")
        found.append((f"settings.{path}" if path else "settings", message))
    return found


def describe(exc: ValidationError) -> str:
    return "; ".join(f"{where}: {message}" for where, message in problems(exc))
