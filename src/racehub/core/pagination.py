"""Keyset pagination: stable pages on big tables, no OFFSET scans."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, literal, tuple_
from sqlalchemy.orm import QueryableAttribute

from racehub.core.exceptions import Invalid
from racehub.core.schemas import APIModel, hostile_value

T = TypeVar("T")
# A column to sort by: an expression, or a model's attribute as it is.
SortColumn = ColumnElement[Any] | QueryableAttribute[Any]
MAX_PAGE_SIZE = 500


class Page(APIModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    total: int | None = None


@dataclass(frozen=True)
class SortKey:
    """Ordered columns ending with a unique one; all ascending or all descending."""

    columns: Sequence[SortColumn]
    descending: bool = False


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([None if v is None else str(v) for v in values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise Invalid("cursor is not a cursor returned by this API", field="cursor") from exc
    if not isinstance(values, list) or len(values) != width:
        raise Invalid("cursor does not fit this list and sort order", field="cursor")
    return values


def apply_keyset(stmt: Select[Any], key: SortKey, cursor: str | None, limit: int) -> Select[Any]:
    """Order by ``key`` and start after ``cursor``; fetches one extra row to know if more follow."""
    cols = list(key.columns)
    if cursor:
        after = decode_cursor(cursor, len(cols))
        typed = [_coerce(col, value) for col, value in zip(cols, after, strict=True)]
        row, bound = tuple_(*cols), tuple_(*typed)
        stmt = stmt.where(row < bound if key.descending else row > bound)
        if len(cols) > 2:
            # Implied by the row comparison, but on the leading columns only: when the last
            # column (the tie-breaker) comes from another table of a join, this bound is
            # the one an index on the leading columns can seek with.
            lead, lead_bound = tuple_(*cols[:-1]), tuple_(*typed[:-1])
            stmt = stmt.where(lead <= lead_bound if key.descending else lead >= lead_bound)
    order = [c.desc() for c in cols] if key.descending else [c.asc() for c in cols]
    return stmt.order_by(*order).limit(limit + 1)


def _coerce(col: SortColumn, value: str | None) -> Any:
    """Turn a cursor's text back into the column's Python type, bound with that type."""
    if value is None:
        return literal(None, type_=col.type)
    try:
        python_type = col.type.python_type
    except NotImplementedError:
        python_type = object
    if python_type is object:
        # A programming error, not bad input: the sort expression needs an explicit type_.
        raise TypeError(f"keyset column {col} has no SQL type to restore a cursor value")
    try:
        if python_type is datetime:
            typed: Any = datetime.fromisoformat(value)
        elif python_type is date:
            typed = date.fromisoformat(value)
        elif python_type is bool:
            typed = {"True": True, "False": False}[value]  # as encode_cursor wrote it
        elif python_type is str:
            typed = value
        else:
            typed = python_type(value)
        if hostile_value(typed):  # a NUL character or an integer beyond 64 bits
            raise ValueError(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise Invalid("cursor is not a cursor returned by this API", field="cursor") from exc
    return literal(typed, type_=col.type)


def split_page(rows: Sequence[T], limit: int, key_of: Any) -> tuple[list[T], str | None]:
    """Cut the extra row and build the next cursor from the last row kept."""
    items = list(rows[:limit])
    if len(rows) > limit and items:
        return items, encode_cursor(key_of(items[-1]))
    return items, None


def check_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_PAGE_SIZE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE_SIZE}", field="limit")
    return limit
