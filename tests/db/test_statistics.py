"""Planner statistics are refreshed as a bulk write grows, not on every batch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from racehub.db.statistics import (
    FIRST_ANALYZE_AT,
    analyze_points_crossed,
    refresh_while_growing,
)


def test_points_are_first_then_each_doubling() -> None:
    crossed = [n for n in range(0, 100_001, 500) if analyze_points_crossed(n, n + 500)]
    assert crossed == [1_500, 3_500, 7_500, 15_500, 31_500, 63_500]


def test_a_batch_below_the_first_point_does_not_analyze() -> None:
    assert not analyze_points_crossed(0, FIRST_ANALYZE_AT - 1)
    assert analyze_points_crossed(0, FIRST_ANALYZE_AT)


@given(st.lists(st.integers(min_value=1, max_value=5_000), min_size=1, max_size=60))
def test_any_batching_of_a_write_analyzes_once_per_point_passed(sizes: list[int]) -> None:
    total, analyzed = 0, 0
    for size in sizes:
        analyzed += analyze_points_crossed(total, total + size)
        total += size
    points = [p for p in (FIRST_ANALYZE_AT * 2**k for k in range(20)) if p <= total]
    # One batch may pass several points at once: never more ANALYZEs than points.
    assert (analyzed > 0) == bool(points)
    assert analyzed <= len(points)


def _estimated_rows(db: Session) -> float:
    return db.execute(text(
        "SELECT reltuples FROM pg_class WHERE relname = 'bulk_target'")).scalar_one()


def test_refresh_analyzes_the_tables_only_when_a_point_is_passed(db: Session) -> None:
    db.execute(text("CREATE TABLE bulk_target AS SELECT g FROM generate_series(1, 3000) g"))
    assert _estimated_rows(db) == -1  # never analyzed

    assert not refresh_while_growing(db, ["bulk_target"], rows_before=0, rows_after=1_000)
    assert _estimated_rows(db) == -1

    assert refresh_while_growing(db, ["bulk_target"], rows_before=1_000, rows_after=3_000)
    assert _estimated_rows(db) == 3000


def test_refresh_analyzes_only_the_columns_named(db: Session) -> None:
    db.execute(text("CREATE TABLE bulk_target AS SELECT g, g::text AS label "
                    "FROM generate_series(1, 3000) g"))

    assert refresh_while_growing(db, {"bulk_target": ("g",)}, rows_before=1_000,
                                 rows_after=3_000)
    assert _estimated_rows(db) == 3000
    analyzed = set(db.execute(text(
        "SELECT attname FROM pg_stats WHERE tablename = 'bulk_target'")).scalars())
    assert analyzed == {"g"}
