"""Engine and session factory. Sessions never commit in services: the edge does."""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event, exc
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


# A pooled connection older than this is replaced at checkout: it bounds how long a
# connection the liveness check cannot judge (a peer gone without closing the socket) lives.
POOL_RECYCLE_SECONDS = 1800
# The most connections one process holds, every one of them kept once opened. It was 10
# kept plus 10 "overflow" ones, opened when more than 10 requests overlapped (20 clients
# polling a page, a slow moment) and closed again at once on return: each a new Postgres
# backend (a fork, authentication, cold caches, no prepared statements), 30 of them in 30 s
# of 20 clients. The cap per process, and so the share of max_connections, is unchanged.
POOL_SIZE = 20


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=POOL_SIZE,
        max_overflow=0,
        pool_recycle=POOL_RECYCLE_SECONDS,
    )
    refuse_closed_connections(engine)
    return engine


def refuse_closed_connections(engine: Engine) -> None:
    """Check a pooled connection at checkout without a round trip to the server.

    ``pool_pre_ping`` sends ``SELECT 1`` at every checkout, one round trip per request. A
    connection at rest in the pool has nothing to read, unless the server closed it: a
    restart, ``pg_terminate_backend`` or an idle timeout all send a FATAL message and close
    the socket, which makes it readable. So a readable (or already closed) connection is
    refused: the pool drops it and checks out another, or connects anew. What this cannot
    see (a peer gone without a word) fails on its first query; SQLAlchemy then recognises
    the disconnect and renews the whole pool, and ``pool_recycle`` bounds a connection's age.
    """

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: object, record: object, proxy: object) -> None:
        if closed_by_server(dbapi_connection):
            # The pool discards this connection and retries the checkout.
            raise exc.DisconnectionError("the server closed this pooled connection")


def closed_by_server(dbapi_connection: object) -> bool:
    """Whether a psycopg connection at rest is closed, or has bytes waiting: an idle
    connection in the pool receives nothing but the server's goodbye."""
    if getattr(dbapi_connection, "closed", True) or getattr(dbapi_connection, "broken", True):
        return True
    try:
        fd = dbapi_connection.fileno()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - psycopg raises when the connection is unusable
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as db:
        yield db


def lend(db: Session) -> Callable[[], AbstractContextManager[Session]]:
    """A session factory handing out ``db`` itself and leaving it open: tests serve the app
    on their own rolled-back session (``create_app(settings, session_factory=lend(db))``)."""
    return lambda: nullcontext(db)
