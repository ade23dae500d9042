"""``racehub keys generate`` and ``racehub keys rotate`` on a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from racehub.cli import app
from racehub.core.crypto import Keyring, get_keyring, key_id
from racehub.core.models import AuditEntry
from racehub.settings import get_settings
from racehub.sync import service
from racehub.sync.models import ProviderConnection
from racehub.sync.schemas import ConnectionCreate
from tests.factories import make_tenant, system_ctx

OLD = Fernet.generate_key()
SECRET = "haku-secret-Kk3Jj2Hh1"


@pytest.fixture
def cli(database_url: str, committed_db: sessionmaker[Session],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    monkeypatch.setenv("RACEHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("RACEHUB_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("RACEHUB_SECRET_KEYS", OLD.decode())
    get_settings.cache_clear()
    get_keyring.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args), catch_exceptions=False)
    get_settings.cache_clear()
    get_keyring.cache_clear()


def _connections(committed_db: sessionmaker[Session], count: int = 2) -> list[str]:
    ids = []
    with committed_db() as db:
        for _ in range(count):
            tenant = make_tenant(db)
            connection = service.create_connection(
                db, system_ctx(tenant), keyring=Keyring([OLD]), data=ConnectionCreate(
                    provider="HAKU", name="Haku", credentials={
                        "client_id": SecretStr("client-0042"),
                        "client_secret": SecretStr(SECRET)}))
            ids.append(str(connection.id))
        db.commit()
    return ids


def test_generate_prints_a_fernet_key(cli: Callable[..., Result]) -> None:
    result = cli("keys", "generate")
    assert result.exit_code == 0
    Fernet(result.output.strip().encode())  # a valid key


def test_rotate_adds_a_key_and_reencrypts_every_credential(
    cli: Callable[..., Result], committed_db: sessionmaker[Session]
) -> None:
    _connections(committed_db)
    result = cli("keys", "rotate")
    assert result.exit_code == 0, result.output
    assert "re-encrypted 2 credential set(s)" in result.output
    setting = next(line for line in result.output.splitlines()
                   if line.startswith("RACEHUB_SECRET_KEYS="))
    new, old = setting.split("=", 1)[1].split(",")
    assert old == OLD.decode() and new != old  # newest first; the old key still listed

    with committed_db() as db:
        rows = db.scalars(select(ProviderConnection)).all()
        assert {r.credentials_key_id for r in rows} == {key_id(new)}
        only_new = Keyring([new.encode()])
        assert all(service.read_credentials(only_new, r)["client_secret"] == SECRET
                   for r in rows)
        actions = db.scalars(select(AuditEntry.action)).all()
        assert actions.count("connection.credentials_rotate") == 2
        assert actions.count("keys.rotate") == 1
        logged = " ".join(str(e.after) for e in db.scalars(select(AuditEntry)))
        assert new not in logged and SECRET not in logged


def test_rotate_without_generating_moves_rows_to_the_first_configured_key(
    cli: Callable[..., Result], committed_db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _connections(committed_db, count=1)
    deployed = Fernet.generate_key()
    monkeypatch.setenv("RACEHUB_SECRET_KEYS", f"{deployed.decode()},{OLD.decode()}")
    get_settings.cache_clear()
    get_keyring.cache_clear()
    result = cli("keys", "rotate", "--no-generate")
    assert result.exit_code == 0, result.output
    assert "RACEHUB_SECRET_KEYS=" not in result.output  # nothing new to deploy
    with committed_db() as db:
        [row] = db.scalars(select(ProviderConnection)).all()
        assert service.read_credentials(Keyring([deployed]), row)["client_secret"] == SECRET


def test_rotate_fails_loudly_when_a_row_is_no_longer_readable(
    cli: Callable[..., Result], committed_db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [connection_id] = _connections(committed_db, count=1)
    monkeypatch.setenv("RACEHUB_SECRET_KEYS", Fernet.generate_key().decode())  # OLD removed
    get_settings.cache_clear()
    get_keyring.cache_clear()
    result = CliRunner().invoke(app, ["keys", "rotate", "--no-generate"])
    assert result.exit_code == 1
    assert connection_id in result.output
