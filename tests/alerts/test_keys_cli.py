"""``racehub keys rotate`` re-encrypts the alert webhook secrets too, and records when the
new key was first seen (the old-key alert counts its age from then)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.factories import make_tenant
from typer.testing import CliRunner, Result

from racehub.alerts import service
from racehub.alerts.models import AlertSettings, CredentialKey
from racehub.alerts.schemas import AlertSettingsUpdate
from racehub.cli import app
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring, get_keyring, key_id
from racehub.core.models import AuditEntry
from racehub.settings import Settings, get_settings

OLD = Fernet.generate_key()


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


def test_rotate_reencrypts_every_webhook_secret_and_records_the_new_key(
    cli: Callable[..., Result], committed_db: sessionmaker[Session], database_url: str,
) -> None:
    settings = Settings(database_url=database_url, alert_webhook_allow_private=True)
    secrets = {}
    with committed_db() as db:
        for _ in range(2):
            tenant = make_tenant(db)
            answer = service.update_settings(
                db, TenantContext.system(tenant.id, label="test"), keyring=Keyring([OLD]),
                settings=settings,
                data=AlertSettingsUpdate(webhook_url="http://127.0.0.1:9/hook"))
            secrets[tenant.id] = answer.webhook_secret
        db.commit()

    result = cli("keys", "rotate")
    assert result.exit_code == 0, result.output
    assert "re-encrypted 2 alert webhook secret(s)" in result.output
    new = next(line for line in result.output.splitlines()
               if line.startswith("RACEHUB_SECRET_KEYS=")).split("=", 1)[1].split(",")[0]

    with committed_db() as db:
        rows = db.scalars(select(AlertSettings)).all()
        assert {r.webhook_secret_key_id for r in rows} == {key_id(new)}
        only_new = Keyring([new.encode()])
        assert {r.tenant_id: only_new.decrypt(r.webhook_secret_encrypted or "")
                for r in rows} == secrets
        assert db.get(CredentialKey, key_id(new)) is not None
        actions = db.scalars(select(AuditEntry.action).where(
            AuditEntry.action == "alerts.webhook_secret_rotate")).all()
        assert len(actions) == 2
