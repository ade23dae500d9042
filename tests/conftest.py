"""Test fixtures: real PostgreSQL, one database per xdist worker, rollback per test.

- ``RACEHUB_TEST_DATABASE_URL`` (CI: the machine's server) or else an embedded server
  shared by the workers under ``var/test-pg``.
- The schema is migrated once into a template database named after a hash of the
  migrations; each worker clones it (``CREATE DATABASE ... TEMPLATE``).
- ``db`` wraps each test in a transaction that is rolled back; ``client`` serves the app
  on that same session. Tests that need other processes or threads to see their rows
  (browser, worker) use ``committed_db``, which truncates afterwards.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from racehub.app import create_app
from racehub.core.context import TenantContext
from racehub.core.models import Tenant
from racehub.db.bootstrap import MIGRATIONS_DIR, migrate
from racehub.db.session import lend, libpq_url, sqlalchemy_url
from racehub.inventory.models import NumberType
from racehub.settings import Settings
from tests.workers import Workers

ROOT = Path(__file__).resolve().parents[1]

# Property tests check what happens, never how fast: Hypothesis's per-example deadline is a
# timed assertion, and on a loaded 2-core CI machine it fails code that is correct.
hypothesis.settings.register_profile(
    "racehub", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("racehub")
TEMPLATE_LOCK_KEY = 724_311_001


def _admin_url() -> str:
    url = os.environ.get("RACEHUB_TEST_DATABASE_URL")
    if url:
        return libpq_url(url)
    from racehub.db import embedded

    data_dir = ROOT / "var" / "test-pg"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir.parent / "test-pg.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker initialises the data dir
        return embedded.start(data_dir)


def _migrations_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS_DIR.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _prepare_database(admin_url: str, target: str) -> str:
    template = f"racehub_tpl_{_migrations_hash()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (TEMPLATE_LOCK_KEY,))
        try:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (template,)).fetchone()
            if not exists:
                building = template + "_build"
                conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{building}"')
                migrate(sqlalchemy_url(_with_database(admin_url, building)))
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
                conn.execute(f'ALTER DATABASE "{template}" WITH is_template true')
            conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{template}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (TEMPLATE_LOCK_KEY,))
    return sqlalchemy_url(_with_database(admin_url, target))


@pytest.fixture(scope="session")
def admin_url() -> str:
    """libpq URL of a database on the test server from which others can be created."""
    return _admin_url()


@pytest.fixture(scope="session")
def database_url(admin_url: str, worker_id: str, testrun_uid: str) -> Iterator[str]:
    # Unique per run and worker: two runs on one server never touch each other's rows.
    name = f"racehub_test_{testrun_uid[:8]}_{worker_id}"
    yield _prepare_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url, pool_pre_ping=True)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path, log_json=True,
                    log_level="WARNING")


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session whose commits are savepoints inside one transaction rolled back at the end."""
    connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        if outer.is_active:
            outer.rollback()
        connection.close()


@pytest.fixture
def app(settings: Settings, db: Session):  # type: ignore[no-untyped-def]
    return create_app(settings, session_factory=lend(db))


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


TABLES_TO_KEEP = {"alembic_version"}
APPEND_ONLY_TABLES = ("audit_log", "race_number_log")


@pytest.fixture
def committed_db(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Real commits (seen by servers, workers and browsers); every table emptied afterwards."""
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    yield factory
    # A request still in flight in a live server (a browser's last poll) can hold one table
    # while wanting another that the TRUNCATE holds: Postgres then aborts one of the two as
    # a deadlock. The request finishes either way; the emptying is simply tried again.
    for attempt in range(5):
        try:
            _empty_every_table(engine)
            return
        except OperationalError as exc:
            if not isinstance(exc.orig, psycopg.errors.DeadlockDetected) or attempt == 4:
                raise


def _empty_every_table(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )).scalars().all()
        names = ", ".join(f'"{t}"' for t in tables if t not in TABLES_TO_KEEP)
        # The append-only logs refuse TRUNCATE (migration 0012); lift that for this one
        # transaction only, so no other session ever sees them unguarded.
        for table in APPEND_ONLY_TABLES:
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        for table in APPEND_ONLY_TABLES:
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


@pytest.fixture
def tenant(db: Session) -> Tenant:
    """A tenant of its own for the test (rolled back with it)."""
    from tests.factories import make_tenant

    return make_tenant(db)


@pytest.fixture
def ctx(tenant: Tenant) -> TenantContext:
    """Full rights in ``tenant``, as a worker or the CLI would act."""
    return TenantContext.system(tenant.id, label="test")


@pytest.fixture
def number_type(db: Session, tenant: Tenant) -> NumberType:
    """A bib design of ``tenant`` taking sequences 1-5000."""
    from tests.factories import make_number_type

    return make_number_type(db, tenant, name="Marathon 2027", range_start=1, range_end=5000)


@pytest.fixture
def workers(database_url: str, committed_db: sessionmaker[Session],
            tmp_path: Path) -> Iterator[Workers]:
    """Starts real ``racehub worker`` processes on the test database; kills them after."""
    pool = Workers(database_url, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()
        # A killed worker's sessions may outlive it; end them before committed_db truncates.
        with committed_db() as db:
            db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :name"), {"name": pool.app_name})
