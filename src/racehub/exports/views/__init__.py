"""The registry of exportable list views.

A view says what its list is: a key and label, the permission reading it needs, its
columns (each a labelled SQL expression), the filters it accepts (a pydantic model, extra
keys refused), its sorts, and a query builder returning the tenant-scoped, filtered
statement with the keyset order and the creation-time cutoff applied. The export job
does the rest (counting, keyset batches, CSV/XLSX, storage, expiry).

A new list plugs in with one module here that calls ``register``, declared in its
domain's ``export_views`` (racehub.domains).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import QueryableAttribute, Session

from racehub import domains
from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.pagination import SortKey
from racehub.core.rbac import Perm


class ExportFilters(BaseModel):
    """Base of a view's filters: camelCase names, unknown names refused, empty text = unset."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              extra="forbid", str_strip_whitespace=True)


@dataclass(frozen=True)
class ExportColumn:
    key: str
    label: str
    expr: ColumnElement[Any] | QueryableAttribute[Any]  # a model's column will do
    default: bool = True  # chosen when the caller names no columns


@dataclass(frozen=True)
class ViewQuery:
    """Rows of the view: FROM/JOIN/WHERE (tenant, filters, cutoff), and the keyset order
    (its last column unique) the batches walk."""

    stmt: Select[Any]
    key: SortKey


@dataclass(frozen=True)
class ExportView:
    key: str
    label: str
    permission: Perm
    columns: tuple[ExportColumn, ...]
    filters: type[ExportFilters]
    sorts: tuple[str, ...]  # the first is the default
    # (ctx, filters, sort, descending, cutoff) -> the rows, ordered by the keyset
    query: Callable[[TenantContext, Any, str, bool, datetime], ViewQuery]
    # The export's title ("Participants — Lake Run"); raises NotFound for ids not in the tenant
    describe: Callable[[Session, TenantContext, Any], str]
    # The list page these filters show (the status page links back to it)
    list_url: Callable[[Any, str, bool], str]
    default_descending: bool = False

    def column(self, key: str) -> ExportColumn:
        return next(c for c in self.columns if c.key == key)

    def parse_filters(self, raw: dict[str, Any]) -> Any:
        cleaned = {k: v for k, v in raw.items() if v not in (None, "")}
        try:
            return self.filters.model_validate(cleaned)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or "filters"
            if first.get("type") == "extra_forbidden":
                accepted = ", ".join(
                    f.alias or name for name, f in self.filters.model_fields.items())
                raise Invalid(f"the {self.label} export has no filter {field!r}; "
                              f"it accepts: {accepted}", field=f"filters.{field}") from exc
            raise Invalid(f"filters.{field}: {first.get('msg', 'invalid')}",
                          field=f"filters.{field}") from exc

    def choose_columns(self, keys: list[str] | None) -> list[str]:
        """The columns asked (None: the view's default ones). An empty choice is refused:
        a file of no columns is nobody's wish, and the defaults are not what was asked."""
        if keys is None:
            return [c.key for c in self.columns if c.default]
        if not keys:
            raise Invalid("choose at least one column to export", field="columns")
        known = {c.key for c in self.columns}
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise Invalid(f"the {self.label} export has no column {unknown[0]!r}; columns: "
                          + ", ".join(c.key for c in self.columns), field="columns")
        if len(set(keys)) != len(keys):
            raise Invalid("a column is chosen twice", field="columns")
        return list(keys)

    def choose_sort(self, sort: str | None) -> str:
        if not sort:
            return self.sorts[0]
        if sort not in self.sorts:
            raise Invalid(f"the {self.label} export cannot sort by {sort!r}; sorts: "
                          + ", ".join(self.sorts), field="sort")
        return sort


EXPORT_VIEWS: dict[str, ExportView] = {}


def register(view: ExportView) -> ExportView:
    EXPORT_VIEWS[view.key] = view
    return view


def load_views() -> dict[str, ExportView]:
    domains.load_export_views()
    return EXPORT_VIEWS


def get_view(key: str | None) -> ExportView:
    views = load_views()
    if not key or key not in views:
        what = f"unknown view {key!r}" if key else "view is required"
        raise Invalid(f"{what}; one of: {', '.join(sorted(views))}", field="view")
    return views[key]
