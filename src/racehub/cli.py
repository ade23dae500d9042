"""``racehub`` command line: serve, worker, migrate, demo, and admin helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from racehub.core.models import Role
from racehub.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(help="racehub: registration platforms <-> timing systems.",
                  no_args_is_help=True, add_completion=False)
tenant_app = typer.Typer(help="Manage tenants.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
keys_app = typer.Typer(help="Manage the keys encrypting provider credentials.",
                         no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _database_url() -> str:
    """Resolve the database once and export it, so child processes share it."""
    from racehub.core.logging import configure_logging
    from racehub.db.bootstrap import database_url

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    url = database_url(settings)
    os.environ["RACEHUB_DATABASE_URL"] = url
    return url


def _require_keys() -> None:
    """Fail before starting a process that could not encrypt or read provider credentials."""
    from racehub.core.crypto import KeyConfigError, get_keyring

    try:
        get_keyring()
    except KeyConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


@contextmanager
def _session() -> Iterator[Session]:
    """A session for an admin command. What the services refuse (a slug or e-mail taken, a
    short password...) and an unreachable database end the command with a one-line error
    and exit code 1, not a traceback."""
    from sqlalchemy.exc import OperationalError

    from racehub.core.exceptions import DomainError
    from racehub.db.session import get_engine, make_sessionmaker

    try:
        with make_sessionmaker(get_engine(_database_url()))() as db:
            yield db
    except DomainError as exc:
        _fail(exc.detail)
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        _fail(f"cannot reach the database ({reason}); check RACEHUB_DATABASE_URL")


@app.command()
def migrate() -> None:
    """Apply all database migrations (Alembic upgrade head)."""
    from racehub.db.bootstrap import migrate as run_migrations

    run_migrations(_database_url())
    typer.echo("database is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Web processes (default: RACEHUB_WEB_CONCURRENCY, else one per CPU core, at "
             "most 8)")] = None,
) -> None:
    """Serve the web app and API. Background jobs run in `racehub worker` processes."""
    import uvicorn

    settings = get_settings()
    _database_url()
    _require_keys()
    if settings.metrics_token is not None:
        _prepare_multiprocess_metrics(settings.data_dir / "metrics")
    uvicorn.run("racehub.app:create_served_app", factory=True, host=host or settings.host,
                port=port or settings.port,
                workers=workers or settings.web_concurrency or default_web_processes(),
                # access_log off: our request line (web/middleware.py) says the same with
                # the request id; uvicorn's would build a log record per request for nothing.
                proxy_headers=True, log_config=None, access_log=False)


def default_web_processes() -> int:
    """One process per CPU core this process may use (containers limit it), at most 8:
    request handling is mostly waiting on Postgres, and each process holds its own pool."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _prepare_multiprocess_metrics(folder: Path) -> None:
    """Every web process writes its samples under PROMETHEUS_MULTIPROC_DIR and a scrape adds
    them up; the files of an earlier run would be added too, so ours start empty."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return  # the operator chose (and manages) the folder
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once")] = None,
    name: Annotated[str | None, typer.Option(help="Worker name in logs")] = None,
) -> None:
    """Run a background worker (imports, exports, syncs, bib assignment...)."""
    from racehub.db.session import libpq_url
    from racehub.jobs.worker import run_worker

    settings = get_settings()
    url = _database_url()
    _require_keys()
    run_worker(libpq_url(url), settings, concurrency=concurrency or settings.worker_concurrency,
               name=name)


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Migrate, seed a demo tenant, then serve the web app with a worker. Ctrl-C stops all."""
    from racehub.demo import run_demo

    run_demo(host=host, port=port)


@tenant_app.command("create")
def tenant_create(name: str, slug: Annotated[str | None, typer.Option()] = None) -> None:
    """Create a tenant (a timing company)."""
    from racehub.core import service

    with _session() as db:
        tenant = service.create_tenant(db, name=name, slug=slug)
        db.commit()
        typer.echo(f"tenant {tenant.slug} created (id {tenant.id})")


@user_app.command("create")
def user_create(
    email: str,
    tenant: Annotated[str | None, typer.Option(help="Tenant slug to join")] = None,
    role: Annotated[Role, typer.Option(help="Role in that tenant",
                                       case_sensitive=False)] = Role.VIEWER,
    name: Annotated[str, typer.Option(help="Full name")] = "",
    platform_admin: Annotated[bool, typer.Option(help="Grant PLATFORM_ADMIN")] = False,
    password: Annotated[str | None, typer.Option(
        help="Password (prompted when omitted)", envvar="RACEHUB_NEW_USER_PASSWORD")] = None,
) -> None:
    """Create a user, optionally a member of a tenant with a role."""
    from racehub.core import service

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _session() as db:
        tenant_row = None
        if tenant:
            tenant_row = service.get_tenant_by_slug(db, tenant)
            if tenant_row is None:
                raise typer.BadParameter(f"no tenant with slug {tenant!r}", param_hint="--tenant")
        user = service.create_user(db, email=email, password=password, full_name=name,
                                   is_platform_admin=platform_admin)
        if tenant_row is not None:
            service.set_membership(db, tenant=tenant_row, user=user, role=role)
        db.commit()
        where = f" in {tenant_row.slug} as {role.value}" if tenant_row else ""
        typer.echo(f"user {user.email} created{where}")


@token_app.command("create")
def token_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    name: Annotated[str, typer.Option(help="What the token is for")],
    role: Annotated[Role, typer.Option(help="Role the token acts with",
                                       case_sensitive=False)] = Role.VIEWER,
) -> None:
    """Create an API token and print it (it is shown only this once)."""
    from pydantic import ValidationError

    from racehub.core import service
    from racehub.core.context import TenantContext
    from racehub.core.schemas import ApiTokenCreate

    try:  # checked before the database is touched
        data = ApiTokenCreate(name=name, role=role)
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"], param_hint="--name") from None
    with _session() as db:
        tenant_row = service.get_tenant_by_slug(db, tenant)
        if tenant_row is None:
            raise typer.BadParameter(f"no tenant with slug {tenant!r}", param_hint="--tenant")
        ctx = TenantContext.system(tenant_row.id, label="cli")
        _, secret = service.create_api_token(db, ctx, data=data)
        db.commit()
        typer.echo(secret)


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new Fernet key (to put first in RACEHUB_SECRET_KEYS)."""
    from racehub.core.crypto import generate_key

    typer.echo(generate_key())


@keys_app.command("rotate")
def keys_rotate(
    new_key: Annotated[str | None, typer.Option(
        help="The key to rotate to (default: a new one is generated)",
        envvar="RACEHUB_NEW_SECRET_KEY")] = None,
    generate: Annotated[bool, typer.Option(
        help="Add a new key first. --no-generate re-encrypts under the first key of "
             "RACEHUB_SECRET_KEYS (after you deployed a new one there)")] = True,
) -> None:
    """Add a new key and re-encrypt every stored credential with it.

    Old keys keep decrypting: remove them from RACEHUB_SECRET_KEYS only after this ran
    and every process runs with the printed value.
    """
    from racehub.core.crypto import KeyConfigError, generate_key, get_keyring, parse_keys
    from racehub.sync import service as sync_service

    try:
        keyring = get_keyring()
        if new_key is not None or generate:
            key = parse_keys(new_key)[0] if new_key else generate_key().encode()
            keyring = keyring.with_new_primary(key)
    except KeyConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--new-key / RACEHUB_SECRET_KEYS") from None
    if keyring.development and (new_key is not None or generate):
        typer.echo("note: no RACEHUB_SECRET_KEYS set; the development key stays second", err=True)
    from datetime import UTC, datetime

    from racehub.alerts import rules as alert_rules
    from racehub.alerts import service as alerts_service

    with _session() as db:
        report = sync_service.rotate_credentials(db, keyring=keyring, actor_label="cli")
        secrets_rotated, secrets_failed = alerts_service.rotate_webhook_secrets(
            db, keyring=keyring, actor_label="cli")
        # The new key's age (the old-key alert) counts from now.
        alert_rules.record_keys(db, keyring, datetime.now(UTC))
        db.commit()
    typer.echo(f"re-encrypted {report.rotated} credential set(s) with key {keyring.primary_id}")
    typer.echo(f"re-encrypted {secrets_rotated} alert webhook secret(s)")
    for failure in [*report.failed, *secrets_failed]:
        typer.echo(f"could not re-encrypt {failure}", err=True)
    if new_key is not None or generate:
        # The only place a key is ever printed: the operator must store it now.
        typer.echo("set this on every racehub process (newest first), then restart them:")
        typer.echo(f"RACEHUB_SECRET_KEYS={keyring.setting_value()}")
    if report.failed or secrets_failed:
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
