"""Alembic environment: migrations run with lock and statement timeouts."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from racehub.db.bootstrap import include_object
from racehub.db.models import Base

config = context.config
target_metadata = Base.metadata

# Fail fast instead of queueing behind a long transaction on a live table.
LOCK_TIMEOUT = "5s"
STATEMENT_TIMEOUT = "5min"


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from racehub.db.bootstrap import database_url
    from racehub.settings import get_settings

    return database_url(get_settings())


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
        connection.execute(text(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'"))
        context.configure(connection=connection, target_metadata=target_metadata,
                          include_object=include_object, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()  # the SETs above opened the outer transaction
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
