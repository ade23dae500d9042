"""The admin commands a new installation starts with: they work, every command has --help,
and bad input ends in a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
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


def all_commands(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():  # groups have sub-commands
        yield from all_commands(sub, (*path, name))


COMMANDS = sorted(all_commands(typer.main.get_command(app)))


def test_every_command_is_listed_here() -> None:
    # A new command gets its --help checked below; this list says which ones there are.
    assert {" ".join(c) for c in COMMANDS} >= {
        "", "serve", "worker", "migrate", "demo", "tenant", "tenant create", "user",
        "user create", "token", "token create", "keys", "keys generate", "keys rotate"}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "racehub")
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    # No database: --help must not need one.
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--help" in result.output


@pytest.fixture
def no_database(monkeypatch):  # type: ignore[no-untyped-def]
    """Commands run against a server that is not there (port 9 of 127.0.0.1)."""
    monkeypatch.setenv("RACEHUB_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/none")
    monkeypatch.setenv("RACEHUB_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args), catch_exceptions=False)
    get_settings.cache_clear()


def one_line_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def test_token_create_refuses_an_unknown_role_before_touching_the_database(no_database) -> None:
    result = no_database("token", "create", "--tenant", "acme", "--name", "ci", "--role", "boss")
    assert result.exit_code == 2, result.output
    assert "--role" in result.output and "boss" in result.output
    for choice in ("tenant_admin", "event_manager", "results_officer", "viewer"):
        assert choice in result.output
    assert "database" not in result.output


def test_token_create_refuses_an_empty_name(no_database) -> None:
    result = no_database("token", "create", "--tenant", "acme", "--name", "")
    assert result.exit_code == 2, result.output
    assert "--name" in result.output and "database" not in result.output


def test_an_unreachable_database_is_one_line_not_a_traceback(no_database) -> None:
    result = no_database("tenant", "create", "Acme Timing")
    assert result.exit_code == 1
    error = one_line_error(result.output)
    assert "cannot reach the database" in error and "RACEHUB_DATABASE_URL" in error


def test_token_create_names_an_unknown_tenant(cli) -> None:
    result = cli("token", "create", "--tenant", "nope", "--name", "laptop")
    assert result.exit_code == 2
    assert "--tenant" in result.output and "nope" in result.output


def test_what_the_services_refuse_is_one_line(cli) -> None:
    assert cli("tenant", "create", "Acme Timing", "--slug", "acme").exit_code == 0
    result = cli("tenant", "create", "Other", "--slug", "acme")
    assert result.exit_code == 1
    assert one_line_error(result.output) == "error: a tenant with slug 'acme' exists already"
    result = cli("tenant", "create", "!!!")
    assert result.exit_code == 1
    assert "slug" in one_line_error(result.output)

    result = cli("user", "create", "ops@acme.example", "--password", "short")
    assert result.exit_code == 1
    assert "password must be at least" in one_line_error(result.output)
    assert cli("user", "create", "ops@acme.example", "--password",
               "long enough password").exit_code == 0
    result = cli("user", "create", "OPS@acme.example", "--password", "long enough password")
    assert result.exit_code == 1
    assert "exists already" in one_line_error(result.output)
