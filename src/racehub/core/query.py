"""Query helpers every domain's service starts from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from racehub.core.context import TenantContext

M = TypeVar("M")


def scoped(ctx: TenantContext, model: type[M]) -> Select[M]:
    """``SELECT model`` limited to the caller's tenant: the start of every tenant query."""
    tenant_column: Any = model.tenant_id  # type: ignore[attr-defined]
    return select(model).where(tenant_column == ctx.tenant_id)


def any_of(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column = ANY(:values)``, the values sent as one array parameter. Unlike ``IN (...)``
    the statement's text is the same for any number of values, so a batch job's lookups
    (hundreds of keys per batch) are parsed and planned once, not once per batch."""
    array = bindparam(None, list(values), type_=ARRAY(column.type))
    condition: ColumnElement[bool] = column == any_(array)
    return condition


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(term: str) -> str:
    """A LIKE pattern matching ``term`` anywhere, its own % and _ taken literally."""
    return f"%{_escape_like(term)}%"


def prefix_pattern(term: str) -> str:
    """A LIKE pattern matching values that start with ``term``."""
    return f"{_escape_like(term)}%"
