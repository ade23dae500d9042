"""Planner statistics kept fresh during bulk writes.

A big import into a tenant's tables changes what the planner should know faster than
autovacuum notices (its trigger is 10% of the whole, shared table; it may be switched
off). With statistics from before the import, the planner believes the tenant owns almost
no rows and reads all of them through the ``tenant_id`` index for every batch's key
lookup: measured at 70k rows, 2.6 s per lookup instead of 2 ms, an import slowing down as
it grows. ANALYZE at a few points as the write grows keeps the plans on the unique keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

# ANALYZE when a bulk write passes 2k, 4k, 8k, ... rows: often while the tables' shape
# changes fastest, then rarely (100k rows cost 6 ANALYZEs of well under a second each).
FIRST_ANALYZE_AT = 2_000


def analyze_points_crossed(rows_before: int, rows_after: int,
                           first: int = FIRST_ANALYZE_AT) -> bool:
    """Whether growing from ``rows_before`` to ``rows_after`` rows passes a point
    (``first``, twice that, four times ...) at which statistics should be refreshed."""
    point = first
    while point <= rows_after:
        if rows_before < point:
            return True
        point *= 2
    return False


def refresh_while_growing(db: Session, tables: Iterable[str] | Mapping[str, Sequence[str]],
                          *, rows_before: int, rows_after: int) -> bool:
    """ANALYZE ``tables`` if this batch took the write past one of the points.

    ``tables`` may map a table to the columns the write's own lookups filter on: only those
    are analyzed (the row count is refreshed all the same; no columns: the whole table). A
    whole-table ANALYZE also samples every other column and the expression indexes' values
    (a JSON payload, the sort keys of a page), which the lookups may never read; autovacuum
    gets to those later.

    ANALYZE runs inside the batch's transaction and takes a lock that does not block
    readers or writers. Returns whether it ran.
    """
    if not analyze_points_crossed(rows_before, rows_after):
        return False
    columns: Mapping[str, Sequence[str]] = (
        tables if isinstance(tables, Mapping) else dict.fromkeys(tables, ()))
    for table, names in columns.items():
        # Names come from code, never from input; quoted as identifiers anyway.
        listed = f" ({', '.join(_quoted(n) for n in names)})" if names else ""
        db.execute(text(f"ANALYZE {_quoted(table)}{listed}"))
    return True


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
