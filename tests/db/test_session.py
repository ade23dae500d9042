"""The app's pool checks a connection's liveness without a round trip (no ``SELECT 1`` at
every checkout) and still never hands out a connection the server has closed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, QueuePool, event, text

from racehub.db.session import POOL_SIZE, closed_by_server, get_engine, libpq_url


@pytest.fixture
def app_engine(database_url: str) -> Iterator[Engine]:
    """The engine ``racehub serve`` builds (``get_engine``), on the test database."""
    get_engine.cache_clear()
    engine = get_engine(database_url)
    yield engine
    engine.dispose()
    get_engine.cache_clear()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(admin_url: str, pid: int) -> None:
    """End one server process as a restart would (FATAL 57P01, socket closed), and wait
    until it is gone."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        for _ in range(500):  # bounded: the backend exits within milliseconds
            if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                             (pid,)).fetchone() == (0,):
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} did not exit")


def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    app_engine: Engine, admin_url: str
) -> None:
    pool = app_engine.pool
    assert isinstance(pool, QueuePool)
    first = _backend_pid(app_engine)
    assert pool.checkedin() == 1
    _terminate(admin_url, first)

    # The next checkout gets a working connection, not the error of the closed one.
    second = _backend_pid(app_engine)

    assert second != first
    assert pool.checkedin() == 1  # the dead one was dropped, not kept


def test_checkout_of_a_live_connection_sends_nothing(app_engine: Engine) -> None:
    first = _backend_pid(app_engine)
    sent: list[str] = []
    event.listen(app_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: sent.append(statement))

    assert _backend_pid(app_engine) == first  # the same pooled connection, reused
    assert sent == ["SELECT pg_backend_pid()"]
    # pool_pre_ping's SELECT 1 goes around the cursor events: it must be off.
    assert app_engine.pool._pre_ping is False


def test_closed_by_server_reads_the_socket_of_a_raw_connection(
    database_url: str, admin_url: str
) -> None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("SELECT 1").fetchone()
        conn.rollback()
        assert closed_by_server(conn) is False
        pid = conn.info.backend_pid
        _terminate(admin_url, pid)
        assert closed_by_server(conn) is True


def test_the_pool_keeps_every_connection_it_opens_up_to_its_cap(app_engine: Engine) -> None:
    """Connections opened for overlapping requests stay for the next burst: an "overflow"
    connection was closed on return, and the next burst forked new backends again."""
    pool = app_engine.pool
    assert isinstance(pool, QueuePool)
    held = [app_engine.connect() for _ in range(POOL_SIZE)]
    pids = {int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()) for conn in held}
    for conn in held:
        conn.close()
    assert pool.checkedin() == POOL_SIZE

    held = [app_engine.connect() for _ in range(POOL_SIZE)]
    again = {int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()) for conn in held}
    for conn in held:
        conn.close()
    assert again == pids  # the same backends: none was opened anew
