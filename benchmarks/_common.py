"""What every benchmark script shares: the server, a scratch database, timing, memory.

The scripts run as ``.venv/bin/python benchmarks/<name>.py``, so this folder is on
``sys.path`` and they ``from _common import ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import make_url

from racehub.db.session import libpq_url, sqlalchemy_url

ROOT = Path(__file__).resolve().parents[1]
RESULT = "RESULT "  # prefix of the line a child process prints its figures on
T = TypeVar("T")


def server_url(arg: str | None) -> str:
    """``--url``, else RACEHUB_BENCH_DATABASE_URL, else the embedded server under var/."""
    url = arg or os.environ.get("RACEHUB_BENCH_DATABASE_URL")
    if url:
        return libpq_url(url)
    from racehub.db import embedded

    return embedded.start(ROOT / "var" / "bench-pg")


def database_url(admin: str, name: str) -> str:
    """The libpq URL of database ``name`` on the server of ``admin``."""
    return make_url(admin).set(database=name).render_as_string(False)


def fresh_database(admin: str, name: str) -> str:
    """Database ``name`` dropped, created and migrated; its SQLAlchemy URL."""
    # Imported here: the memory-measuring child processes never migrate, and Alembic
    # would add to the baseline they measure from.
    from racehub.db.bootstrap import migrate

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = sqlalchemy_url(database_url(admin, name))
    migrate(url)
    return url


def drop_database(admin: str, name: str) -> None:
    """Drop database ``name``, closing its connections."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_database(admin: str, name: str, keep: bool = False) -> Iterator[str]:
    """A fresh, migrated database ``name`` for the ``with`` block (its SQLAlchemy URL);
    dropped afterwards, even on error, unless ``keep`` (then its name is printed)."""
    url = fresh_database(admin, name)
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            drop_database(admin, name)


@contextlib.contextmanager
def cloned_database(admin: str, template: str, name: str) -> Iterator[str]:
    """A database ``name`` cloned from ``template`` (CREATE DATABASE ... TEMPLATE: a copy of
    its schema, rows and planner statistics) for the ``with`` block; its SQLAlchemy URL.
    Dropped afterwards, even on error. Nobody may be connected to ``template`` meanwhile.
    For runs that must each start from the same state where tables cannot be emptied (the
    race-number log refuses TRUNCATE and DELETE)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield sqlalchemy_url(database_url(admin, name))
    finally:
        drop_database(admin, name)


def add_smoke_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run that only shows the script still works (CI runs "
                             "it, tests/test_benchmarks.py); its figures mean nothing")


def bench_db_name(name: str, smoke: bool) -> str:
    """The scratch database's name: smoke runs add the pid, so two can run at once."""
    return f"{name}_smoke_{os.getpid()}" if smoke else name


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The median seconds of ``repeat`` runs after a warm-up one (cache and plan), and
    the last run's result."""
    result = fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def copy_from_seconds(admin: str, path: Path, copy_sql: str, repeat: int, *,
                      table: str = "staging") -> float:
    """The baseline of an import: median time of ``copy_sql`` (a ``COPY ... FROM STDIN``
    into ``table``) fed the file in 1 MiB chunks, committed; ``table`` is emptied first."""
    samples = []
    with psycopg.connect(admin) as conn:
        for _ in range(repeat + 1):  # the first run warms the cache
            conn.execute(f"TRUNCATE {table}")
            conn.commit()
            start = time.perf_counter()
            with conn.cursor() as cur, cur.copy(copy_sql) as copy, path.open("rb") as file:
                while chunk := file.read(1 << 20):
                    copy.write(chunk)
            conn.commit()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples[1:])


# --- child processes (each measures its own peak memory) --------------------------------------


def print_result(figures: dict[str, Any]) -> None:
    """What a child process reports to its parent (the last such line counts)."""
    print(RESULT + json.dumps(figures), flush=True)


def child_result(script: str, *args: str, what: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh Python; its reported figures. A child that
    fails or reports nothing stops the benchmark with its output and ``what`` failed."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         check=False, cwd=ROOT)
    lines = [line for line in out.stdout.splitlines() if line.startswith(RESULT)]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"{what} failed")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT))
    return result


# --- memory (Linux /proc; ru_maxrss elsewhere) -----------------------------------------------


def status_mb(field: str) -> float | None:
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    return None


def rss_mb() -> float:
    """Resident memory now (Linux), else the peak so far."""
    return status_mb("VmRSS") or max_rss_mb()


def max_rss_mb() -> float:
    """The peak RSS: VmHWM on Linux. ru_maxrss would do, but it also counts the parent's
    RSS at fork time (kept across exec), which here is the size of the benchmark itself."""
    peak = status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vm_hwm_kb() -> int:
    """This process's own peak RSS in kB (Linux ``VmHWM``; 0 where unknown)."""
    peak = status_mb("VmHWM")
    return int(peak * 1024) if peak is not None else 0


def reset_peak_rss() -> None:
    """Linux: restart the process's high-water mark (VmHWM) from now."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
