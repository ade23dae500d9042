"""Cells that are safe to open in a spreadsheet: formula neutralization, in Python and SQL.

Shared by every file racehub writes for operators (timing export, list exports).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, case, func, literal_column

# A cell starting with one of these runs as a formula (or hides one) in a spreadsheet.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: str) -> str:
    """The Python twin of ``neutralized``: a leading ' makes the cell plain text."""
    return "'" + value if value[:1] in FORMULA_TRIGGERS else value


_TRIGGER_LITERALS: list[ColumnElement[str]] = [
    literal_column({"\t": "E'\\t'", "\r": "E'\\r'"}.get(t, f"'{t}'")) for t in FORMULA_TRIGGERS]


def neutralized(expr: Any) -> Any:
    """``neutralize`` in SQL, so that a ``COPY`` of the same SELECT does it too."""
    return case((func.left(expr, 1).in_(_TRIGGER_LITERALS),
                 literal_column("''''", String) + expr), else_=expr)
