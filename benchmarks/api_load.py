"""Requests per second and latency of ``racehub serve`` under race-day polling.

Seeds one event with ``--participants`` EPs (default 50,000) into a scratch database, starts
``racehub serve`` (one process) and, as the baseline, the bare routes of ``_bare_app.py``
(the same database work through the same pool, no racehub layers) under the same uvicorn
settings, then drives each view with async httpx clients on 127.0.0.1:

- one at a time: the time of a single request;
- (a) saturated: ``--clients`` clients (20) sending back to back;
- (b) polling: ``--clients`` clients each sending ``--rate`` requests a second (2).

Each prints p50/p95/p99, requests/s and the server process's CPU time per request (Linux),
and the ratios of racehub to its baseline. Every
phase is bounded by ``--seconds`` and a request count. The load generator shares the
machine's cores with the server: compare ratios, not absolute figures, across machines.

    .venv/bin/python benchmarks/api_load.py [--url postgresql://...] [--participants N]
    .venv/bin/python benchmarks/api_load.py --smoke      # tiny, a few requests: it runs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import ROOT, add_smoke_argument, bench_db_name, scratch_database, server_url
from participant_list import seed
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.models import Role
from racehub.core.schemas import ApiTokenCreate
from racehub.db.session import libpq_url

BENCH_DB = "racehub_bench_api"
HERE = Path(__file__).resolve().parent


@dataclass
class Figures:
    latencies: list[float]
    seconds: float
    errors: int = 0  # connections the server dropped (counted, not timed)
    cpu_seconds: float | None = None  # the server process's CPU time over the phase

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        dropped = f"  {self.errors} dropped" if self.errors else ""
        cpu = (f"  cpu {self.cpu_seconds / len(self.latencies) * 1000:5.2f} ms/req"
               if self.cpu_seconds is not None and self.latencies else "")
        return (f"p50 {self.pct(50):7.2f} ms  p95 {self.pct(95):7.2f} ms  "
                f"p99 {self.pct(99):7.2f} ms  {self.rps:7.1f} req/s{cpu}{dropped}")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (Linux), else None. What a request costs the
    server in CPU stays comparable when other work slows the machine (latencies do not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(pid: int, phase: Awaitable[Figures]) -> Figures:
    before = cpu_seconds(pid)
    figures = await phase
    after = cpu_seconds(pid)
    if before is not None and after is not None:
        figures.cpu_seconds = after - before
    return figures


async def timed_get(client: httpx.AsyncClient, url: str, figures: Figures) -> None:
    """One request into ``figures``. On this shared machine a loaded server now and then
    drops a kept-alive connection: that is counted, and the run goes on."""
    t0 = time.perf_counter()
    try:
        response = await client.get(url)
    except httpx.TransportError:
        figures.errors += 1
        return
    figures.latencies.append(time.perf_counter() - t0)
    response.raise_for_status()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served(args: list[str], env: dict[str, str], port: int) -> Iterator[tuple[str, int]]:
    """A server process on ``port`` until the block ends (waits until it answers): its URL
    and process id."""
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 404):
                    break
            if time.monotonic() > deadline:
                raise SystemExit("server did not answer within 120 s")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def one_at_a_time(client: httpx.AsyncClient, url: str, count: int) -> Figures:
    figures = Figures([], 0.0)
    started = time.perf_counter()
    for _ in range(count):
        await timed_get(client, url, figures)
    figures.seconds = time.perf_counter() - started
    return figures


async def saturated(client: httpx.AsyncClient, url: str, clients: int, seconds: float,
                    max_requests: int) -> Figures:
    figures = Figures([], 0.0)
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop and len(figures.latencies) < max_requests:
            await timed_get(client, url, figures)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    figures.seconds = time.perf_counter() - started
    return figures


async def polling(client: httpx.AsyncClient, url: str, clients: int, rate: float,
                  seconds: float) -> Figures:
    """Each client sends ``rate`` requests a second on its own schedule (late requests do
    not pile up: a client that falls behind sends its next one at once)."""
    figures = Figures([], 0.0)
    period = 1 / rate

    async def worker(offset: float) -> None:
        next_at = time.perf_counter() + offset
        stop = time.perf_counter() + seconds
        while next_at < stop:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            await timed_get(client, url, figures)
            next_at = max(next_at + period, time.perf_counter())

    started = time.perf_counter()
    await asyncio.gather(*(worker(i * period / clients) for i in range(clients)))
    figures.seconds = time.perf_counter() - started
    return figures


async def drive(name: str, server: tuple[str, int], path: str, token: str,
                opts: argparse.Namespace) -> dict[str, Figures]:
    base, pid = server
    limits = httpx.Limits(max_connections=opts.clients, max_keepalive_connections=opts.clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 limits=limits, timeout=30) as client:
        await one_at_a_time(client, path, 5)  # warm the pool and the plans
        figures = {
            "one at a time": await measured(pid, one_at_a_time(client, path, opts.requests)),
            f"(a) {opts.clients} clients, saturated": await measured(pid, saturated(
                client, path, opts.clients, opts.seconds, opts.requests * 20)),
            f"(b) {opts.clients} clients x {opts.rate:g}/s": await measured(pid, polling(
                client, path, opts.clients, opts.rate, opts.seconds)),
        }
    for phase, fig in figures.items():
        print(f"  {name:<34} {phase:<28} {fig.line()}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--participants", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0, help="requests/s per polling client")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of (a) and (b)")
    parser.add_argument("--requests", type=int, default=200, help="one-at-a-time requests")
    add_smoke_argument(parser)
    opts = parser.parse_args()
    if opts.smoke:
        opts.participants, opts.clients, opts.seconds, opts.requests = 200, 2, 1.0, 5

    admin = server_url(opts.url)
    with scratch_database(admin, bench_db_name(BENCH_DB, opts.smoke)) as url:
        engine = create_engine(url)
        with Session(engine) as db:
            tenant_id, event_id = seed(db, opts.participants)
            _, token = core_service.create_api_token(
                db, TenantContext.system(tenant_id, label="bench"),
                data=ApiTokenCreate(name="bench", role=Role.VIEWER))
            db.commit()
        engine.dispose()
        # The load generator's own heap (racehub imported for the seeding, httpx) out of the
        # collector's sight: its full collections stopped every client for 50-250 ms,
        # which the figures counted as the server's latency.
        gc.collect()
        gc.freeze()

        env = {**os.environ, "RACEHUB_DATABASE_URL": libpq_url(url),
               "RACEHUB_LOG_LEVEL": "WARNING", "RACEHUB_WEB_CONCURRENCY": "1",
               # An outer PYTHONPATH is kept after ours: it can point both servers at
               # another checkout's src/ (a before/after run of the same script).
               "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE),
                                                           os.environ.get("PYTHONPATH")]))}
        port, bare_port = free_port(), free_port()
        racehub = [str(Path(sys.executable).with_name("racehub")), "serve", "--port", str(port),
                   "--workers", "1"]
        bare = [sys.executable, "-m", "uvicorn", "--factory", "_bare_app:create_app",
                "--port", str(bare_port), "--workers", "1", "--no-access-log",
                "--log-level", "warning"]
        page = f"/api/events/{event_id}/participants?limit=50"
        print(f"{opts.participants} participants; {opts.clients} clients; "
              f"{opts.seconds:g} s per loaded phase")
        with served(racehub, env, port) as ours_at, served(bare, env, bare_port) as bare_at:
            views = [
                ("GET /api/me", ours_at, "/api/me", "bare: one token lookup", bare_at,
                 "/bare/me"),
                ("participants, 50 rows", ours_at, page, "bare: one keyset query of 50",
                 bare_at, f"/bare/events/{event_id}/participants?tenant={tenant_id}"),
            ]
            for name, url_base, path, bare_name, bare_url, bare_path in views:
                ours = asyncio.run(drive(name, url_base, path, token, opts))
                theirs = asyncio.run(drive(bare_name, bare_url, bare_path, token, opts))
                for phase in ours:
                    ratio = (statistics.median(ours[phase].latencies)
                             / statistics.median(theirs[phase].latencies))
                    cpu = ""
                    our_cpu, their_cpu = ours[phase].cpu_seconds, theirs[phase].cpu_seconds
                    if our_cpu and their_cpu:
                        cpu_ratio = (our_cpu / len(ours[phase].latencies)) / (
                            their_cpu / len(theirs[phase].latencies))
                        cpu = f"  cpu per request {cpu_ratio:5.2f}x"
                    print(f"  {name:<34} {phase:<28} median ratio {ratio:5.2f}x{cpu}")


if __name__ == "__main__":
    main()
