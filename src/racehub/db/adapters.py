"""Reading a date or time that Python cannot hold never fails.

PostgreSQL keeps timestamps from 4713 BC to 294276 AD (and ``infinity``); Python's
datetime only years 1 to 9999. psycopg refuses the rest with a ``DataError`` on *read*, so
one such row (stored before input was bounded, by hand in SQL, or by another program)
would make every list, page and export that touches it answer 500 until someone edited
it in SQL. Instead such a value reads as the nearest day Python holds with room to spare
(``0001-01-02`` or ``9999-12-30``: far enough from either end that showing it in any time
zone still works), so the row can be seen and corrected through the app.

Input is bounded separately (``racehub.core.schemas.SaneDateTime``); this is the
reading side. The fast C loaders still do all the work; only a value they refuse takes
the slow path.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg import postgres
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

EARLIEST_DAY = date(1, 1, 2)
LATEST_DAY = date(9999, 12, 30)
EARLIEST_TIME = datetime(1, 1, 2)
LATEST_TIME = datetime(9999, 12, 30)

_CLAMPS: dict[str, tuple[Any, Any]] = {
    "timestamptz": (EARLIEST_TIME.replace(tzinfo=UTC), LATEST_TIME.replace(tzinfo=UTC)),
    "timestamp": (EARLIEST_TIME, LATEST_TIME),
    "date": (EARLIEST_DAY, LATEST_DAY),
}


def _before_year_one(data: Buffer, binary: bool) -> bool:
    if binary:
        # Microseconds (timestamps) or days (dates) from 2000-01-01 as a signed integer.
        return int.from_bytes(bytes(data), "big", signed=True) < 0
    text = bytes(data)
    return text.startswith(b"-") or text.endswith(b" BC")


def _lenient(type_name: str, binary: bool) -> type[Loader]:
    oid = postgres.types[type_name].oid
    found = psycopg.adapters.get_loader(oid, Format.BINARY if binary else Format.TEXT)
    assert found is not None
    inner_class: Any = getattr(found, "strict", found)  # registered twice
    earliest, latest = _CLAMPS[type_name]

    class LenientLoader(Loader):
        format = inner_class.format
        strict = inner_class

        def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
            super().__init__(oid, context)
            self._inner = inner_class(oid, context)

        def load(self, data: Buffer) -> Any:
            try:
                return self._inner.load(data)
            except psycopg.DataError:
                return earliest if _before_year_one(data, binary) else latest

    LenientLoader.__name__ = LenientLoader.__qualname__ = (
        f"Lenient{inner_class.__name__}")
    return LenientLoader


def register_lenient_loaders(context: AdaptContext | None = None) -> None:
    """Install the loaders on ``context`` (default: psycopg's global one, which every
    connection made afterwards copies: SQLAlchemy's, procrastinate's, the tests')."""
    adapters = (context or psycopg).adapters
    for type_name in _CLAMPS:
        for binary in (False, True):
            adapters.register_loader(type_name, _lenient(type_name, binary))


def as_read(column: Any) -> Any:
    """``column`` (a timestamptz) clamped in SQL the way the loaders clamp it in Python:
    a keyset sort on it orders rows as the cursor values read, so a page ending on an
    out-of-range value neither skips nor repeats the rows after it."""
    from sqlalchemy import func, literal

    earliest, latest = _CLAMPS["timestamptz"]
    return func.least(func.greatest(column, literal(earliest, type_=column.type)),
                      literal(latest, type_=column.type), type_=column.type)
