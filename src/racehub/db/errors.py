"""Reading database errors: which constraint a write broke."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError


def violates(exc: IntegrityError, constraint: str) -> bool:
    """True when ``exc`` is a violation of the named constraint or unique index."""
    diag = getattr(exc.orig, "diag", None)
    return diag is not None and diag.constraint_name == constraint
