"""The demo seed: what `make demo` shows a new user."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.demo import (
    DEMO_TENANT,
    seed_demo,
    seed_demo_connections,
    write_demo_manufacturer_file,
)
from racehub.events.models import Event, EventParticipant
from racehub.imports.reader import open_table
from racehub.inventory.models import NumberType, RaceNumber
from racehub.providers.demo import serve_simulators
from racehub.sync import service as sync_service


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


def test_the_demo_connections_reach_their_simulators(db: Session) -> None:
    seed_demo(db)
    keyring = Keyring([Fernet.generate_key()])
    with ExitStack() as stack:
        simulators = serve_simulators(stack)
        assert "RUNSIGNUP" in {s.provider for s in simulators}
        names = seed_demo_connections(db, keyring, simulators)
        tenant = core_service.get_tenant_by_slug(db, DEMO_TENANT)
        ctx = TenantContext.system(tenant.id)
        connections = {c.name: c for c in sync_service.list_connections(db, ctx)}
        assert sorted(connections) == sorted(names) == sorted(
            f"{s.label} (simulator)" for s in simulators)
        for connection in connections.values():  # each one's credentials are accepted
            check = sync_service.check_connection(db, ctx, keyring=keyring,
                                                  connection_id=connection.id)
            assert check.ok, (connection.name, check.message)

        # The next demo run re-points a connection whose simulator had to take another port.
        moved = [replace(simulators[0], base_url=simulators[0].base_url.replace(
            "127.0.0.1", "localhost"))]
        seed_demo_connections(db, keyring, moved)
        assert connections[names[0]].base_url == moved[0].base_url
        seed_demo_connections(db, keyring, moved)  # unchanged: nothing to do
        assert len(sync_service.list_connections(db, ctx)) == len(simulators)
