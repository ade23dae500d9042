"""Migrations are reviewed code: they must match the models and undo cleanly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from racehub.db.bootstrap import alembic_config, include_object, migrate
from racehub.db.models import Base
from racehub.db.session import sqlalchemy_url


@pytest.fixture
def empty_database(admin_url: str) -> Iterator[str]:
    name = f"racehub_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield sqlalchemy_url(make_url(admin_url).set(database=name).render_as_string(False))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_match_the_models_and_downgrade_to_nothing(empty_database: str) -> None:
    migrate(empty_database)
    engine = create_engine(empty_database)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_object": include_object, "compare_type": True}
            )
            assert compare_metadata(context, Base.metadata) == []

        command.downgrade(alembic_config(empty_database), "base")
        with engine.connect() as conn:
            leftovers = set(inspect(conn).get_table_names()) - {"alembic_version"}
            enums = conn.exec_driver_sql(
                "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype = 'e'"
            ).scalars().all()
            functions = conn.exec_driver_sql(
                "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public'"
            ).scalars().all()
        assert leftovers == set()
        assert enums == []
        assert functions == []

        migrate(empty_database)  # and up again from nothing
    finally:
        engine.dispose()
