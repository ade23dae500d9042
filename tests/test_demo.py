"""The demo seed: what `make demo` shows a new user; and the `racehub demo` process group,
run for real as a subprocess on a scratch database: it serves, and it stops everything it
started on Ctrl-C, on a taken port and when its worker keeps dying."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.demo import (
    DEMO_TENANT,
    SYNCED_EVENT,
    run_demo,
    seed_demo,
    seed_demo_connections,
    timing_round_trips,
    write_demo_manufacturer_file,
)
from racehub.events.models import Event, EventParticipant
from racehub.imports.reader import open_table
from racehub.inventory.models import NumberType, RaceNumber
from racehub.providers.demo import serve_simulators
from racehub.settings import get_settings
from racehub.sync import candidates as sync_candidates
from racehub.sync import links as sync_links
from racehub.sync import service as sync_service
from racehub.sync.models import (
    PublicationStatus,
    ResultPublication,
    SyncRun,
    SyncStatus,
    SyncType,
)
from racehub.timing.models import Result


def count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def count_where(db: Session, condition: Any) -> int:
    return db.scalar(select(func.count()).select_from(EventParticipant).where(condition)) or 0


def test_the_demo_tenant_is_seeded_once(db: Session) -> None:
    assert seed_demo(db) is True
    tenant = core_service.get_tenant_by_slug(db, DEMO_TENANT)
    assert tenant is not None
    assert count(db, Event) == 4 and 500 <= count(db, EventParticipant) <= 1000
    synced = db.scalar(select(Event).where(Event.name == SYNCED_EVENT))
    assert synced is not None  # empty until its registrations are synced
    assert count_where(db, EventParticipant.event_id == synced.id) == 0
    assert count(db, NumberType) == 2 and count(db, RaceNumber) == 200
    assert seed_demo(db) is False
    assert count(db, RaceNumber) == 200


def test_the_demo_manufacturer_file_shows_every_bucket(tmp_path: Path) -> None:
    table = open_table(write_demo_manufacturer_file(tmp_path))
    assert table.header == ["sequence", "number", "barcode"]
    rows = list(table.rows())
    sequences = [r.cells[0] for r in rows]
    assert "181" in sequences and "420" in sequences  # 181-200 are on file already
    assert sequences.count("300") == 2  # a duplicate sequence
    assert any(r.issues for r in rows)  # the barcode Excel mangled
    assert any(r.cells[2] == "" for r in rows)  # numbers without a chip


def test_the_demo_connections_reach_their_simulators(db: Session) -> None:
    seed_demo(db)
    keyring = Keyring([Fernet.generate_key()])
    with ExitStack() as stack:
        simulators = serve_simulators(stack)
        assert "RUNSIGNUP" in {s.provider for s in simulators}
        names = seed_demo_connections(db, keyring, simulators)
        tenant = core_service.get_tenant_by_slug(db, DEMO_TENANT)
        ctx = TenantContext.system(tenant.id)
        connections = {c.name: c for c in sync_service.list_connections(db, ctx)}
        assert sorted(connections) == sorted(names) == sorted(
            f"{s.label} (simulator)" for s in simulators)
        for connection in connections.values():  # each one's credentials are accepted
            check = sync_service.check_connection(db, ctx, keyring=keyring,
                                                  connection_id=connection.id)
            assert check.ok, (connection.name, check.message)

        # The next demo run re-points a connection whose simulator had to take another port.
        moved = [replace(simulators[0], base_url=simulators[0].base_url.replace(
            "127.0.0.1", "localhost"))]
        seed_demo_connections(db, keyring, moved)
        assert connections[names[0]].base_url == moved[0].base_url
        seed_demo_connections(db, keyring, moved)  # unchanged: nothing to do
        assert len(sync_service.list_connections(db, ctx)) == len(simulators)


def test_the_demo_links_a_runsignup_event_ready_to_sync_and_one_to_link(db: Session) -> None:
    seed_demo(db)
    keyring = Keyring([Fernet.generate_key()])
    with ExitStack() as stack:
        simulators = serve_simulators(stack)
        runsignup = next(s for s in simulators if s.provider == "RUNSIGNUP")
        seed_demo_connections(db, keyring, simulators)
        tenant = core_service.get_tenant_by_slug(db, DEMO_TENANT)
        ctx = TenantContext.system(tenant.id)
        connection = next(c for c in sync_service.list_connections(db, ctx)
                          if c.provider == "RUNSIGNUP")
        event = db.scalar(select(Event).where(Event.name == SYNCED_EVENT))
        (first_ref, first_name), (second_ref, second_name) = runsignup.events[:2]
        found = {link.provider_event_ref: link for link in sync_links.list_connection_links(
            db, ctx, connection_id=connection.id)}
        assert sorted(found) == sorted([first_ref, second_ref])
        linked, unlinked = found[first_ref], found[second_ref]
        assert (linked.event_id, linked.event_name) == (event.id, SYNCED_EVENT)
        assert linked.provider_event_name == first_name and linked.cursor is None
        assert unlinked.event_id is None and unlinked.provider_event_name == second_name
        # The provider event's race feeds the category of its distance.
        [category] = sync_links.list_category_links(db, ctx, event_id=event.id,
                                                    link_id=linked.id)
        assert category.provider_ref == first_ref and category.category_name is not None
        assert first_name.endswith(" " + category.category_name)
        # Nothing ran: the operator starts the first sync.
        assert count(db, SyncRun) == 0
        # Its provider events were discovered: the Provider events page has candidates,
        # the two chosen ones among them (still named as the demo named them).
        candidates = sync_candidates.list_candidates(db, ctx, connection_id=connection.id)
        assert len(candidates) > 2 and {first_ref, second_ref} <= {
            c.provider_event_ref for c in candidates}
        assert sum(1 for c in candidates if not c.chosen) == len(candidates) - 2
        assert connection.events_discovered_at is not None

        # The adapter reads the chosen events: the connection check lists both.
        check = sync_service.check_connection(db, ctx, keyring=keyring,
                                              connection_id=connection.id)
        assert check.ok, check.message
        # A later start leaves the links as the operator made them.
        sync_links.unlink(db, ctx, event_id=event.id, link_id=linked.id)
        seed_demo_connections(db, keyring, simulators)
        assert sync_links.read_link(db, ctx, link_id=linked.id).event_id is None
        assert len(sync_links.list_connection_links(db, ctx, connection_id=connection.id)) == 2


def _run(db: Session, run: SyncRun, body: Callable[..., Any], keyring: Keyring | None = None
         ) -> SyncRun:
    """A run's job, as the demo's worker runs it, in the test's transaction."""
    from racehub.db.session import lend
    from racehub.jobs.retry import PROVIDER_OUTAGES
    from racehub.jobs.runner import run_job

    body = partial(body, keyring=keyring) if keyring is not None else body
    run_job(None, str(run.job_run_id), body, factory=lend(db),  # type: ignore[arg-type]
            retry=PROVIDER_OUTAGES)
    db.refresh(run)
    assert run.status == SyncStatus.SUCCEEDED, (run.sync_type, run.error)
    return run


def test_the_demo_timing_round_trip_from_registrations_to_a_publication(db: Session) -> None:
    """What the README walks a new user through on SYNCED_EVENT: registrations synced from
    RunSignUp, the start list pushed to the Copernico race the demo linked, the race run on
    the simulator (the banner's command), results pulled, and a publication prepared."""
    from racehub.sync import engine, publications, results_pull, runs, timing_push

    seed_demo(db)
    keyring = Keyring([Fernet.generate_key()])
    with ExitStack() as stack:
        simulators = serve_simulators(stack)
        seed_demo_connections(db, keyring, simulators)
        tenant = core_service.get_tenant_by_slug(db, DEMO_TENANT)
        ctx = TenantContext.system(tenant.id)
        event = db.scalar(select(Event).where(Event.name == SYNCED_EVENT))
        assert event is not None
        connections = {c.provider: c for c in sync_service.list_connections(db, ctx)}
        [trip] = timing_round_trips(db, simulators)
        assert (trip.event_name, trip.connection_name) == (SYNCED_EVENT,
                                                           connections["COPERNICO"].name)
        assert trip.race_name.endswith(" · 10K")  # a distance of the event
        [timing] = [link for link in sync_links.list_event_links(db, ctx, event_id=event.id)
                    if not link.participant_source]
        assert timing.connection_id == connections["COPERNICO"].id

        [sync] = runs.request_participant_sync(db, ctx, connection_id=connections[
            "RUNSIGNUP"].id, event_id=event.id)
        synced = _run(db, sync.run, engine.run_participant_sync, keyring).created
        assert synced > 0
        push = timing_push.request_push(db, ctx, target=timing_push.get_target_or_raise(
            db, ctx, link_id=timing.id)).run
        assert _run(db, push, timing_push.run_start_list_push, keyring).created == synced

        with urlopen(Request(trip.finish_url, method="POST"), timeout=10) as reply:
            ran = json.loads(reply.read())
        assert sum(ran.values()) == synced and ran["finished"] > 0

        [pull] = results_pull.request_results_pull(
            db, ctx, connection_id=connections["COPERNICO"].id, event_id=event.id)
        _run(db, pull.run, results_pull.run_results_pull, keyring)
        stored = db.scalars(select(Result).where(Result.event_id == event.id)).all()
        assert len(stored) == synced  # Copernico sends a row for a no-show too (dns)

        [prepare] = publications.request_event_prepare(db, ctx, event_id=event.id)
        assert prepare.run.sync_type == SyncType.RESULTS_PUBLISH_PREPARE.value
        _run(db, prepare.run, publications.run_prepare)
        version = db.scalars(select(ResultPublication).where(
            ResultPublication.event_id == event.id)).one()
        assert version.version == 1 and version.added == version.rows_total > 0
        assert version.status != PublicationStatus.FAILED


# --- `racehub demo` as a process --------------------------------------------------------
# Each run gets an empty scratch database on the test server (so no embedded server starts
# and the demo migrates it itself), its own data dir and a free web port. The simulators
# take web port + 101.. when free and any free port otherwise, so runs never collide. Every
# process the demo starts inherits a marker variable: after the demo is gone, no process
# carrying it may be left.

STARTUP_SECONDS = 30
STOP_SECONDS = 25  # the worker's grace (15 s) and kill (5 s) windows, plus the simulators


@pytest.fixture
def scratch_database(admin_url: str) -> Iterator[str]:
    name = f"racehub_demo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    """A ``racehub demo`` subprocess in its own process group (as a terminal runs it), its
    output in files."""

    def __init__(self, database_url: str, folder: Path, port: int) -> None:
        self.port = port
        self.marker = uuid.uuid4().hex
        self.out, self.err = folder / "demo.out", folder / "demo.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RACEHUB_")}
        env.update(RACEHUB_DATABASE_URL=database_url, RACEHUB_DATA_DIR=str(folder / "data"),
                   RACEHUB_HOST="127.0.0.1", RACEHUB_PORT=str(port), RACEHUB_LOG_JSON="true",
                   RACEHUB_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
                   RACEHUB_DEMO_TEST_MARKER=self.marker)
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "racehub.cli", "demo"], env=env, cwd=folder,
                stdout=out, stderr=err, start_new_session=True)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], Any], what: str,
                 timeout: float = STARTUP_SECONDS) -> Any:
        """Poll ``condition`` until truthy; fail with the demo's output if it exits first."""
        deadline = time.monotonic() + timeout
        while not (result := condition()):
            if self.process.poll() is not None:
                pytest.fail(f"demo exited ({self.process.returncode}) before {what}:\n"
                            + self.stdout() + self.stderr()[-4000:])
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n"
                            + self.stderr()[-4000:])
            time.sleep(0.1)
        return result

    def wait_for_banner(self) -> None:
        self.wait_for(lambda: "running at" in self.stdout(), "the banner")

    def exit_code(self, timeout: float = STOP_SECONDS) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"demo still running {timeout:.0f}s later:\n" + self.stderr()[-4000:])

    def worker_pids(self) -> list[int]:
        return [pid for pid in children(self.process.pid) if b"worker" in cmdline(pid)]

    def leftovers(self) -> list[int]:
        """Processes still alive that the demo started, the demo included."""
        return [pid for pid in carrying(f"RACEHUB_DEMO_TEST_MARKER={self.marker}")
                if not zombie(pid)]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for pid in self.leftovers():
            os.kill(pid, signal.SIGKILL)


def _proc(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:  # gone, or not ours to read
        return b""


def cmdline(pid: int) -> bytes:
    return _proc(pid, "cmdline")


def zombie(pid: int) -> bool:
    stat = _proc(pid, "stat")
    return not stat or stat.rsplit(b")", 1)[1].split()[0] == b"Z"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc(int(entry.name), "stat")
            if stat and int(stat.rsplit(b")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def carrying(variable: str) -> list[int]:
    needle = variable.encode()
    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and needle in _proc(int(e.name), "environ").split(b"\0")]


def test_demo_serves_and_ctrl_c_stops_it_and_its_worker(scratch_database: str,
                                                         tmp_path: Path) -> None:
    demo = Demo(scratch_database, tmp_path, free_port())
    try:
        demo.wait_for_banner()
        assert f"running at http://127.0.0.1:{demo.port}" in demo.stdout()
        with urlopen(f"http://127.0.0.1:{demo.port}/login", timeout=10) as response:
            assert response.status == 200
        workers = demo.wait_for(demo.worker_pids, "the worker process")
        assert demo.leftovers()  # the marker finds them while they run

        os.killpg(demo.process.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
        assert demo.exit_code() == 0, demo.stderr()[-4000:]
        # No job runs, so the worker stops on that Ctrl-C alone: the demo never has to
        # escalate to SIGTERM or SIGKILL. (Checked by what the demo did, not by a clock:
        # a loaded CI machine stretches every step.)
        escalations = [e for e in ("demo.worker_slow_to_stop", "demo.worker_killed")
                       if e in demo.stderr()]
        assert escalations == [], demo.stderr()[-4000:]
        assert demo.stdout().rstrip().endswith("racehub demo stopped")
        assert demo.leftovers() == [] and not any(cmdline(pid) for pid in workers)
        assert "Traceback" not in demo.stderr()
    finally:
        demo.kill()


def test_demo_on_a_taken_port_says_so_and_starts_nothing(scratch_database: str,
                                                         tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        demo = Demo(scratch_database, tmp_path, port)
        try:
            assert demo.exit_code(timeout=STARTUP_SECONDS) != 0
            errors = [line for line in demo.stderr().splitlines() if line.startswith("error:")]
            assert len(errors) == 1, demo.stderr()
            assert f"port {port}" in errors[0] and "RACEHUB_PORT" in errors[0]
            assert "running at" not in demo.stdout()
            assert "Traceback" not in demo.stderr()
            assert demo.leftovers() == []
        finally:
            demo.kill()


def test_demo_restarts_a_dead_worker_once_then_stops(scratch_database: str,
                                                     tmp_path: Path) -> None:
    demo = Demo(scratch_database, tmp_path, free_port())
    try:
        demo.wait_for_banner()
        first = demo.wait_for(demo.worker_pids, "the worker process")[0]
        os.kill(first, signal.SIGKILL)
        second = demo.wait_for(lambda: [p for p in demo.worker_pids() if p != first],
                               "a restarted worker", timeout=10)[0]
        assert "worker exited unexpectedly (exit code -9)" in demo.stderr()
        assert demo.process.poll() is None  # still serving

        os.kill(second, signal.SIGKILL)
        assert demo.exit_code() == 1
        assert "error: the worker exited again (exit code -9)" in demo.stderr()
        assert demo.leftovers() == []
    finally:
        demo.kill()


def test_a_failed_seed_still_stops_the_simulators_and_the_database(
        scratch_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from racehub import demo as demo_module
    from racehub.db import embedded

    monkeypatch.setenv("RACEHUB_DATABASE_URL", scratch_database)
    monkeypatch.setenv("RACEHUB_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    served: list[str] = []

    def recording_simulators(stack: ExitStack, **kwargs: Any) -> list[Any]:
        simulators = serve_simulators(stack, **kwargs)
        served.extend(s.base_url for s in simulators)
        return simulators

    def failing_seed(db: Session) -> bool:
        raise RuntimeError("seed failed")

    stops: list[bool] = []
    monkeypatch.setattr("racehub.providers.demo.serve_simulators", recording_simulators)
    monkeypatch.setattr(demo_module, "seed_demo", failing_seed)
    monkeypatch.setattr(embedded, "stop", lambda: stops.append(True))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    port = free_port()
    try:
        with pytest.raises(RuntimeError, match="seed failed"):
            run_demo(host="127.0.0.1", port=port)
    finally:
        get_settings.cache_clear()

    assert served and stops == [True]
    for url in served:  # every simulator stopped listening
        address = urlsplit(url)
        with pytest.raises(OSError), socket.create_connection(
                (address.hostname, address.port), timeout=2):
            pass
    with socket.socket() as sock:  # the web port was let go
        sock.bind(("127.0.0.1", port))
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert not [pid for pid in children(os.getpid()) if b"racehub.cli" in cmdline(pid)]
