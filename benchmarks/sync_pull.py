"""The participant pull of 50k RunSignUp registrations into an empty linked event.

(a) Against the RunSignUp simulator over HTTP (in a process of its own, as a real API is;
    every request answered after ``--page-wait`` seconds, 0.25 by default): the sync run's
    wall time (the job's body: fetch into staging, then apply) against the pure paginated
    fetch of the same pages (the adapter's ``list_participants`` and ``list_withdrawn``
    loops alone, through the same adapter and rate limiter), timed before and after the
    sync in the same run. Target: the sync within 1.25x the fetch.
(b) From an in-memory page source (no HTTP; the pages are built before the clock starts),
    the sync's own work alone, staging and apply, in a fresh process per size:
    registrations/s (target >= 5,000) and peak RSS at 5k and 50k (target: flat). The
    growth of the peak during the sync is printed apart from the process's peak, which also
    holds the pages themselves.
(c) A full re-read of the same 50k unchanged registrations: its rows written, from
    ``pg_stat_user_tables`` (data tables: target 0; the run's own staging and bookkeeping
    shown apart), and its time against the fetch.

    .venv/bin/python benchmarks/sync_pull.py [--url postgresql://...] [--participants N]

Without ``--url`` it uses RACEHUB_BENCH_DATABASE_URL, else the embedded server under var/.
It creates (and drops at the end) a database named ``racehub_bench_sync``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import structlog
from _common import (
    add_smoke_argument,
    bench_db_name,
    child_result,
    max_rss_mb,
    print_result,
    reset_peak_rss,
    rss_mb,
    scratch_database,
    server_url,
)
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.db.session import libpq_url, make_sessionmaker
from racehub.events import service as events_service
from racehub.events.models import EventParticipant
from racehub.events.schemas import EventCreate
from racehub.jobs.retry import PROVIDER_OUTAGES
from racehub.jobs.runner import run_job
from racehub.providers.base import Capability, Page, ProviderParticipant
from racehub.providers.runsignup.client import RunSignUpAdapter
from racehub.providers.runsignup.simulator import DEMO_CREDENTIALS, RunSignUpSimulator, make_app
from racehub.sync import engine as sync_engine
from racehub.sync import runs, service
from racehub.sync.adapters import build_adapter
from racehub.sync.models import EventLink, ProviderConnection, SyncRun
from racehub.sync.schemas import ConnectionCreate

BENCH_DB = "racehub_bench_sync"
PAGE_SIZE = 2500  # RunSignUp's largest participants page, the adapter's default
# Tables holding synced data; the rest written by a run is its own bookkeeping.
DATA_TABLES = ("event_participants", "persons", "synced_records", "sync_changes",
               "sync_conflicts", "category_links")


# --- the simulator, in a process of its own ---------------------------------------------------


def serve_simulator(participants: int, port: int) -> None:
    """The child: one race, one event of ``participants`` registrations, real shapes."""
    import uvicorn

    sim = RunSignUpSimulator(races=1, events_per_race=1, participants_per_event=participants,
                             real_shapes=True, with_results=False)
    print(f"READY {_event_ref(sim)}", flush=True)
    uvicorn.run(make_app(simulator=sim), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)


def _event_ref(sim: RunSignUpSimulator) -> str:
    race = next(iter(sim.races.values()))
    return f"{race['race_id']}:{race['events'][0]['event_id']}"


@contextlib.contextmanager
def simulator_process(participants: int, page_wait: float) -> Iterator[tuple[str, str]]:
    """The simulator serving on a free port, each request answered after ``page_wait`` s
    (the generic ``slow`` fault); yields (base URL, provider event ref)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--serve-simulator", str(participants),
                             str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"the simulator did not start: {line!r}")
        ref = line.split()[1]
        server = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(f"{server}/_sim/faults", json={
                    "name": "slow", "times": -1, "seconds": page_wait}).raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the simulator did not answer") from None
                time.sleep(0.1)
        yield server + "/Rest", ref
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- a tenant, an empty event, a connection and its link --------------------------------------


@dataclass
class Setup:
    tenant_id: uuid.UUID
    event_id: uuid.UUID
    connection_id: uuid.UUID
    link_id: uuid.UUID
    event_ref: str

    @property
    def ctx(self) -> TenantContext:
        return TenantContext.system(self.tenant_id, label="bench")


def seed(factory: sessionmaker[Session], keyring: Keyring, base_url: str, ref: str,
         slug: str) -> Setup:
    with factory() as db:
        tenant = core_service.create_tenant(db, name=f"Bench {slug}", slug=slug)
        ctx = TenantContext.system(tenant.id, label="bench")
        event = events_service.create_event(db, ctx, data=EventCreate(
            name="City Run", start_at=datetime(2026, 10, 4, 9, 0), timezone="UTC"))
        # A platform admin may point a connection at the simulator.
        connection = service.create_connection(
            db, replace(ctx, is_platform_admin=True), keyring=keyring,
            data=ConnectionCreate(provider="RUNSIGNUP", name="RunSignUp", base_url=base_url,
                                  credentials=dict(DEMO_CREDENTIALS)))
        link = EventLink(tenant_id=tenant.id, connection_id=connection.id,
                         provider=connection.provider, provider_event_ref=ref,
                         provider_event_name="City Run", event_id=event.id,
                         linked_at=datetime.now().astimezone(), state={}, sync_settings={})
        db.add(link)
        db.commit()
        return Setup(tenant.id, event.id, connection.id, link.id, ref)


# --- what is timed ------------------------------------------------------------------------------


def fetch(factory: sessionmaker[Session], keyring: Keyring, setup: Setup) -> tuple[float, int]:
    """The pure paginated read of the link's pages through the connection's adapter
    (seconds, rows): what the sync reads, without staging or applying anything."""
    with factory() as db:
        connection = db.get(ProviderConnection, setup.connection_id)
        assert connection is not None
        credentials = service.read_credentials(keyring, connection)
        rows = 0
        start = time.perf_counter()
        with build_adapter(connection, credentials) as adapter:
            for page in adapter.list_participants(setup.event_ref):
                rows += page.row_count
            for withdrawn in adapter.list_withdrawn(setup.event_ref):
                rows += withdrawn.row_count
        return time.perf_counter() - start, rows


class PhaseTimer:
    """Seconds spent in the engine's two steps (fetch -> stage, apply), by wrapping them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        originals: dict[str, Callable[..., Any]] = {
            "stage": sync_engine.stage, "apply_run": sync_engine.apply_run}

        def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.seconds[name] = time.perf_counter() - start
            return wrapper

        for name, fn in originals.items():
            setattr(sync_engine, name, timed(name, fn))
        try:
            yield
        finally:
            for name, fn in originals.items():
                setattr(sync_engine, name, fn)


def sync(factory: sessionmaker[Session], keyring: Keyring, setup: Setup, *,
         full_refresh: bool = False, adapter_factory: Any = None,
         phases: PhaseTimer | None = None) -> tuple[float, SyncRun]:
    """One sync run of the link, as a worker runs its job (seconds, the finished run)."""
    with factory() as db:
        connection = db.get(ProviderConnection, setup.connection_id)
        link = db.get(EventLink, setup.link_id)
        assert connection is not None and link is not None
        requested = runs.request_link_sync(db, setup.ctx, connection=connection, link=link,
                                           full_refresh=full_refresh)
        db.commit()
        run_id, job_id = requested.run.id, requested.run.job_run_id
    body = partial(sync_engine.run_participant_sync, keyring=keyring,
                   adapter_factory=adapter_factory)
    with phases.installed() if phases else contextlib.nullcontext():
        start = time.perf_counter()
        run_job(None, str(job_id), body, factory=factory, retry=PROVIDER_OUTAGES)
        took = time.perf_counter() - start
    with factory() as db:
        run = db.get(SyncRun, run_id)
        assert run is not None
        if run.status.value != "succeeded":
            raise SystemExit(f"the sync run ended {run.status.value}: {run.error}")
        db.expunge(run)
        return took, run


def event_size(factory: sessionmaker[Session], event_id: uuid.UUID) -> int:
    with factory() as db:
        return db.scalar(select(func.count()).select_from(EventParticipant)
                         .where(EventParticipant.event_id == event_id)) or 0


def counts(run: SyncRun) -> str:
    return (f"read {run.fetched}: created {run.created}, updated {run.updated}, unchanged "
            f"{run.unchanged}, withdrawn {run.withdrawn}, problems {run.problems}")


# --- rows written, from the statistics collector ----------------------------------------------


def table_writes(url: str) -> dict[str, int]:
    """Rows inserted, updated or deleted so far per table, once the statistics of every
    connection that wrote have been flushed (a backend flushes them when it exits, so
    the caller disposes its engine first; read until two readings agree)."""
    engine = create_engine(url)
    try:
        previous: dict[str, int] | None = None
        deadline = time.monotonic() + 15
        while True:
            with engine.connect() as conn:
                now = {name: int(total) for name, total in conn.exec_driver_sql(
                    "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del "
                    "FROM pg_stat_user_tables")}
            if now == previous or time.monotonic() > deadline:
                return now
            previous = now
            time.sleep(0.5)
    finally:
        engine.dispose()


def writes_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in sorted(after)
            if after[name] != before.get(name, 0)}


# --- CPU time: this process and the database's backends -----------------------------------


def backend_cpu(url: str) -> dict[int, float] | None:
    """CPU seconds used so far by each backend of the bench database (from /proc: only
    when Postgres runs on this machine, else None). On a loaded machine wall times say
    little; the CPU spent on both sides of the connection says what the sync costs."""
    ticks = os.sysconf("SC_CLK_TCK")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        pids = [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")]
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None  # not a local server (or not ours to read)
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return out


def backend_cpu_between(before: dict[int, float] | None,
                        after: dict[int, float] | None) -> float | None:
    if before is None or after is None:
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# --- (b): the sync from an in-memory page source, in a child process per size ---------------


class MemorySource:
    """An adapter stand-in serving pages built beforehand: no HTTP, no mapping of raw
    JSON at read time; only the sync's own work is timed."""

    def __init__(self, pages: list[Page[ProviderParticipant]]) -> None:
        self.pages = pages

    def __enter__(self) -> MemorySource:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def supports(self, capability: Capability) -> bool:
        return False  # no list_withdrawn

    def list_participants(self, event_ref: str, since: datetime | None = None
                          ) -> Iterator[Page[ProviderParticipant]]:
        yield from self.pages


def memory_pages(size: int) -> tuple[str, list[Page[ProviderParticipant]]]:
    """``size`` registrations as the simulator serves them, read by the adapter's
    mapping, in pages of the adapter's size."""
    sim = RunSignUpSimulator(races=1, events_per_race=1, participants_per_event=size,
                             real_shapes=True, with_results=False)
    ref = _event_ref(sim)
    rows = next(iter(sim.participants.values()))
    # _served_row: the row as the simulator's HTTP reply carries it (real shapes).
    items = [RunSignUpAdapter.participant_from_raw(sim._served_row(row, False), ref)
             for row in rows]
    pages = [Page(items[i:i + PAGE_SIZE], number=n, is_last=i + PAGE_SIZE >= len(items))
             for n, i in enumerate(range(0, len(items), PAGE_SIZE), start=1)]
    return ref, pages


def write_child(url: str, size: int) -> None:
    """The child of (b): reports the sync's time, its phases and peak memory."""
    engine = create_engine(url)
    factory = make_sessionmaker(engine)
    keyring = Keyring([Fernet.generate_key()])
    ref, pages = memory_pages(size)
    # The pages stay alive for the whole run here (a worker drops each page once staged):
    # out of the collector's sight, or every full collection of the run walks them all
    # (measured at 20k: 2.3 s of the process's 7.9 s CPU went to such collections).
    gc.collect()
    gc.freeze()
    setup = seed(factory, keyring, "https://runsignup.example/Rest", ref,
                 f"write-{size}-{uuid.uuid4().hex[:6]}")
    source = MemorySource(pages)
    rss_before = rss_mb()
    reset_peak_rss()
    phases = PhaseTimer()
    # Open the pool's connection before the first reading, so its backend is counted.
    with factory() as db:
        db.execute(select(1))
    server_before, cpu_before = backend_cpu(url), time.process_time()
    took, run = sync(factory, keyring, setup, adapter_factory=lambda *_: source,
                     phases=phases)
    cpu, server = time.process_time() - cpu_before, backend_cpu_between(server_before,
                                                                         backend_cpu(url))
    print_result({"size": size, "seconds": took, "cpu": cpu, "server_cpu": server,
                  "stage": phases.seconds.get("stage"),
                  "apply": phases.seconds.get("apply_run"), "rss_before": rss_before,
                  "peak": max_rss_mb(), "created": run.created, "fetched": run.fetched,
                  "eps": event_size(factory, setup.event_id)})
    engine.dispose()


# --- the benchmark ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--participants", type=int, default=50_000)
    parser.add_argument("--page-wait", type=float, default=0.25,
                        help="seconds the simulator waits before each reply")
    parser.add_argument("--write-sizes", type=int, nargs="*", default=[5_000, 50_000])
    parser.add_argument("--skip-http", action="store_true", help="only (b)")
    parser.add_argument("--serve-simulator", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write-child", nargs=2, help=argparse.SUPPRESS)
    add_smoke_argument(parser)
    args = parser.parse_args()
    # Quiet: the adapter logs every request at debug level.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # figures as they come
    if args.serve_simulator:
        serve_simulator(*args.serve_simulator)
        return
    if args.write_child:
        write_child(args.write_child[0], int(args.write_child[1]))
        return
    if args.smoke:
        args.participants, args.page_wait, args.write_sizes = 120, 0.01, [60, 120]
    admin = server_url(args.url)
    with scratch_database(admin, bench_db_name(BENCH_DB, args.smoke)) as url:
        if not args.skip_http:
            pull_over_http(url, args.participants, args.page_wait)
        write_path(url, args.write_sizes)


def pull_over_http(url: str, participants: int, page_wait: float) -> None:
    keyring = Keyring([Fernet.generate_key()])
    with simulator_process(participants, page_wait) as (base_url, ref):
        engine = create_engine(url)
        factory = make_sessionmaker(engine)
        setup = seed(factory, keyring, base_url, ref, "http")
        fetches = [fetch(factory, keyring, setup)]
        print(f"(a) the fetch alone, before the sync: {fetches[0][0]:.2f} s")
        phases = PhaseTimer()
        took, run = sync(factory, keyring, setup, phases=phases)
        fetches.append(fetch(factory, keyring, setup))
        base = statistics.mean(s for s, _ in fetches)
        pages = -(-fetches[0][1] // PAGE_SIZE)
        print(f"(a) {participants} registrations, each request answered after "
              f"{page_wait * 1000:.0f} ms ({fetches[0][1]} rows read in ~{pages} page(s) "
              "and the withdrawals)")
        print(f"    fetch alone (baseline): {' and '.join(f'{s:.2f}' for s, _ in fetches)} s "
              f"before and after the sync, mean {base:.2f} s")
        print(f"    sync run: {took:.2f} s  ratio {took / base:.2f}x  (target <= 1.25x)  "
              f"[fetch -> stage {phases.seconds.get('stage', 0):.2f} s, apply "
              f"{phases.seconds.get('apply_run', 0):.2f} s]")
        print(f"    {counts(run)}; EPs in the event: {event_size(factory, setup.event_id)}")

        engine.dispose()  # its backends exit and flush their statistics
        before = table_writes(url)
        engine = create_engine(url)
        factory = make_sessionmaker(engine)
        phases = PhaseTimer()
        took, run = sync(factory, keyring, setup, full_refresh=True, phases=phases)
        engine.dispose()
        written = writes_between(before, table_writes(url))
        data = {k: v for k, v in written.items() if k in DATA_TABLES}
        other = {k: v for k, v in written.items() if k not in DATA_TABLES}
        print(f"(c) a full re-read of the unchanged registrations: {took:.2f} s  ratio "
              f"{took / base:.2f}x the fetch  [fetch -> stage "
              f"{phases.seconds.get('stage', 0):.2f} s, apply "
              f"{phases.seconds.get('apply_run', 0):.2f} s]")
        print(f"    {counts(run)}")
        print(f"    rows written to data tables: {sum(data.values())} (target 0) {data or ''}")
        print(f"    rows written by the run's own staging and bookkeeping: "
              f"{sum(other.values())} {other}")


def write_path(url: str, sizes: list[int]) -> None:
    print("(b) the sync from an in-memory page source (staging and apply; no HTTP), "
          "a fresh process per size")
    for size in sizes:
        result = child_result(__file__, "--write-child", url, str(size),
                              what=f"the in-memory sync of {size}")
        assert result["eps"] == result["created"], result
        print(f"    {size:>6} registrations: {result['seconds']:.2f} s, "
              f"{size / result['seconds']:,.0f} registrations/s (target >= 5,000)  "
              f"[stage {result['stage']:.2f} s, apply {result['apply']:.2f} s]; peak RSS "
              f"{result['peak']:.0f} MB, +{result['peak'] - result['rss_before']:.0f} MB "
              "during the sync")
        server = result["server_cpu"]
        total = result["cpu"] + (server or 0.0)
        print(f"           CPU: {result['cpu']:.2f} s this process"
              + (f" + {server:.2f} s the database's backends = {total:.2f} s, "
                 f"{size / total:,.0f} registrations per CPU second" if server is not None
                 else f", {size / total:,.0f} registrations per CPU second (the database's "
                      "backends not measured: not a local server)"))


if __name__ == "__main__":
    main()
