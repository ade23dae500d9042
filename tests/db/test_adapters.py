"""Dates and times Python cannot hold are read as the nearest day it can, never an error."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from racehub.db.adapters import EARLIEST_DAY, EARLIEST_TIME, LATEST_DAY, LATEST_TIME


@pytest.mark.parametrize("binary", [False, True])
def test_out_of_range_values_read_as_the_nearest_day_python_holds(
    engine: Engine, binary: bool
) -> None:
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor(binary=binary)
        row = cursor.execute(
            "SELECT '9999-12-31T23:59:59-14:00'::timestamptz, 'infinity'::timestamptz,"
            " '-infinity'::timestamptz, '0001-01-01 00:00+00'::timestamptz - interval '1 day',"
            " '10000-01-01'::timestamp, '0044-03-15 BC'::timestamp,"
            " '20000-01-01'::date, '-infinity'::date,"
            " '2026-05-01T08:00Z'::timestamptz, '1999-12-31'::date").fetchone()
    assert row is not None
    latest, earliest = LATEST_TIME.replace(tzinfo=UTC), EARLIEST_TIME.replace(tzinfo=UTC)
    assert list(row[:8]) == [latest, latest, earliest, earliest, LATEST_TIME, EARLIEST_TIME,
                             LATEST_DAY, EARLIEST_DAY]
    # Values in range are read as ever.
    assert row[8] == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert row[9] == date(1999, 12, 31)
