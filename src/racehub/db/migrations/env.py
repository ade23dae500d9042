"""Alembic environment: migrations run with lock and statement timeouts."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

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


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # procrastinate's tables are created from its own SQL, not from our models.
    if type_ == "table" and name and name.startswith("procrastinate_"):
        return False
    if reflected and compare_to is None and name and name.startswith("procrastinate_"):
        return False
    return True


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
