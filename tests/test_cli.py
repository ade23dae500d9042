"""The admin commands a new installation starts with."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from racehub.cli import app
from racehub.core.models import ApiToken, Membership, Role, Tenant, User
from racehub.core.security import token_digest
from racehub.settings import get_settings


@pytest.fixture
def cli(database_url, committed_db, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RACEHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("RACEHUB_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args, **kw: runner.invoke(app, list(args), catch_exceptions=False, **kw)
    get_settings.cache_clear()


def test_tenant_user_and_token_commands_set_up_a_working_tenant(cli, committed_db) -> None:
    result = cli("tenant", "create", "Acme Timing", "--slug", "acme")
    assert result.exit_code == 0, result.output
    result = cli("user", "create", "ops@acme.example", "--tenant", "acme", "--role",
                 "tenant_admin", "--password", "long enough password")
    assert result.exit_code == 0, result.output
    assert "TENANT_ADMIN" in result.output
    result = cli("token", "create", "--tenant", "acme", "--name", "laptop", "--role",
                 "RESULTS_OFFICER")
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]

    with committed_db() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == "acme"))
        user = db.scalar(select(User).where(User.email == "ops@acme.example"))
        membership = db.scalar(select(Membership).where(Membership.user_id == user.id))
        token = db.scalar(select(ApiToken).where(ApiToken.tenant_id == tenant.id))
    assert membership.role == Role.TENANT_ADMIN and membership.tenant_id == tenant.id
    assert user.password_hash.startswith("$argon2")
    assert token.role == Role.RESULTS_OFFICER
    assert token.token_hash == token_digest(secret)  # stored hashed, printed once


def test_user_create_names_the_bad_option(cli) -> None:
    result = cli("user", "create", "x@example.test", "--tenant", "nope", "--password",
                 "long enough password")
    assert result.exit_code != 0
    assert "--tenant" in result.output and "nope" in result.output
    result = cli("user", "create", "x@example.test", "--role", "BOSS", "--password",
                 "long enough password")
    assert result.exit_code != 0
    assert "--role" in result.output


def test_migrate_is_idempotent(cli) -> None:
    result = cli("migrate")
    assert result.exit_code == 0
    assert "up to date" in result.output
