"""Engine and session factory. Sessions never commit in services: the edge does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from racehub.db.adapters import register_lenient_loaders

# Once per process, before any connection: every engine and pool reads out-of-range dates.
register_lenient_loaders()


def sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (libpq style) and pick the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL for psycopg itself (procrastinate connects without SQLAlchemy)."""
    parsed = make_url(sqlalchemy_url(url)).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    return create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as db:
        yield db


def lend(db: Session) -> Callable[[], AbstractContextManager[Session]]:
    """A session factory handing out ``db`` itself and leaving it open: tests serve the app
    on their own rolled-back session (``create_app(settings, session_factory=lend(db))``)."""
    return lambda: nullcontext(db)
