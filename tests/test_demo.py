"""The demo seed: what `make demo` shows a new user."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.demo import DEMO_TENANT, seed_demo, write_demo_manufacturer_file
from racehub.events.models import Event, EventParticipant
from racehub.imports.reader import open_table
from racehub.inventory.models import NumberType, RaceNumber


def count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_the_demo_tenant_is_seeded_once(db: Session) -> None:
    assert seed_demo(db) is True
    tenant = core_service.get_tenant_by_slug(db, DEMO_TENANT)
    assert tenant is not None
    assert count(db, Event) == 3 and 500 <= count(db, EventParticipant) <= 1000
    assert count(db, NumberType) == 2 and count(db, RaceNumber) == 200
    assert seed_demo(db) is False
    assert count(db, RaceNumber) == 200


def test_the_demo_manufacturer_file_shows_every_bucket(tmp_path: Path) -> None:
    table = open_table(write_demo_manufacturer_file(tmp_path))
    assert table.header == ["sequence", "number", "barcode"]
    rows = list(table.rows())
    sequences = [r.cells[0] for r in rows]
    assert "181" in sequences and "420" in sequences  # 181-200 are on file already
    assert sequences.count("300") == 2  # a duplicate sequence
    assert any(r.issues for r in rows)  # the barcode Excel mangled
    assert any(r.cells[2] == "" for r in rows)  # numbers without a chip
