"""Reading the values providers send, shared by every adapter's ``mapping.py``.

Each parser names the field it failed on (:class:`MappingError`), so a bad cell becomes a
per-row problem that says which field of which row, and the rest of the page goes on.
What differs between providers (date formats, gender codes, id shapes) stays in their
own ``mapping.py``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class MappingError(ValueError):
    """One field of one row could not be read; becomes a RowProblem."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def text_or_none(value: Any) -> str | None:
    """Stripped text; None for a missing or blank value (and for a nested object or list,
    which is never the text a field means)."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def id_text(value: Any, field: str) -> str:
    """A required numeric id (int or digits) as text."""
    if value in (None, "") or isinstance(value, bool):
        raise MappingError(field, "missing")
    text = str(value).strip()
    if not text.isdigit():
        raise MappingError(field, f"expected a numeric id, got {value!r}")
    return text


def parse_int(value: Any, field: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise MappingError(field, f"expected a whole number, got {value!r}")
    try:
        return int(value) if isinstance(value, float) else int(str(value).strip())
    except ValueError:
        raise MappingError(field, f"expected a whole number, got {value!r}") from None


def parse_zone(value: Any, field: str) -> ZoneInfo | None:
    """An IANA time zone name."""
    if value in (None, ""):
        return None
    try:
        return ZoneInfo(str(value).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(field, f"unknown time zone {value!r}") from None


_DURATION_RE = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d{1,6})?)\s*$")


def parse_duration(value: Any, field: str) -> timedelta | None:
    """``H:MM:SS(.fff)`` or ``MM:SS(.fff)`` -> timedelta."""
    if value in (None, ""):
        return None
    match = _DURATION_RE.match(str(value))
    if not match:
        raise MappingError(field, f"expected H:MM:SS(.fff), got {value!r}")
    hours, minutes, seconds = match.groups()
    if int(minutes) >= 60 or float(seconds) >= 60:
        raise MappingError(field, f"minutes and seconds must be below 60 in {value!r}")
    return timedelta(hours=int(hours or 0), minutes=int(minutes), seconds=float(seconds))


def format_duration(value: timedelta, *, two_digit_hours: bool = False,
                    always_millis: bool = True) -> str:
    """timedelta -> ``H:MM:SS.fff`` (``HH:`` with ``two_digit_hours``; without ``.fff``
    for whole seconds unless ``always_millis``)."""
    total_ms = round(value.total_seconds() * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{hours:02d}" if two_digit_hours else str(hours)
    text += f":{minutes:02d}:{seconds:02d}"
    return f"{text}.{millis:03d}" if millis or always_millis else text
