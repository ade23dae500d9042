"""Bulk writes with ``COPY ... FROM STDIN``, in the session's own transaction.

An import writes several rows per file row (tags, race numbers, their state log, the row's
result). Sent as INSERTs, each batch cost Postgres a statement with thousands of
parameters and psycopg the adapting of each; as a COPY stream the same rows go in at a
fraction of that (benchmarks/import_numbers.py). What COPY does not do: Python-side column
defaults (pass every such column) and RETURNING (callers make the ids they need).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from psycopg import sql
from sqlalchemy import JSON, FromClause, Table
from sqlalchemy import Enum as EnumType
from sqlalchemy.orm import Session


def _identity(value: Any) -> Any:
    return value


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


class JsonText(str):
    """A JSON value already encoded (e.g. a payload read back as text, or encoded once for
    its hash): a JSON column's COPY takes the text as it is instead of encoding it again."""

    __slots__ = ()


def _json_text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, JsonText):
        return str.__str__(value)
    return json.dumps(value, ensure_ascii=False)


def _converter(column_type: Any) -> Callable[[Any], Any]:
    """How a Python value becomes COPY text for a column: enums by their stored value (what
    ``db.base.pg_enum`` stores), JSON as its text, the rest as psycopg adapts it."""
    if isinstance(column_type, JSON):
        return _json_text
    if isinstance(column_type, EnumType):
        return _enum_value
    return _identity


def copy_rows(db: Session, table: FromClause, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``rows`` (dicts with the same keys: the columns written) into ``table`` (a
    model's ``__table__``, which SQLAlchemy types as a mere FromClause).

    Constraints, triggers and foreign keys apply as for an INSERT; a violation fails the
    COPY and leaves the transaction to be rolled back, with no row of it written.
    """
    if not isinstance(table, Table):
        raise TypeError(f"COPY needs a table, not {table!r}")
    if not rows:
        return
    names = list(rows[0])
    # Only the columns whose values need converting are touched per row (JSON, enums).
    converted = [(i, convert) for i, name in enumerate(names)
                 if (convert := _converter(table.c[name].type)) is not _identity]
    values_of = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(n) for n in names))
    driver_connection = db.connection().connection.driver_connection
    assert driver_connection is not None  # a checked-out connection has its driver's
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        write = copy.write_row
        for row in rows:
            if converted:
                values = list(values_of(row))
                for i, convert in converted:
                    values[i] = convert(values[i])
                write(values)
            else:
                write(values_of(row))
