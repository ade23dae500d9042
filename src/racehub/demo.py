"""``racehub demo``: a ready-to-click racehub on the embedded database.

Seeds (once) a demo timing company with four events, categories, a few hundred
participants and one user per role; serves the provider simulators on 127.0.0.1 and
points one connection per provider at them, the RunSignUp one with a provider event linked
to the (empty) fourth event, ready to sync, and the Copernico one with a race linked to the
same event, so its start list can be pushed and its results pulled back (the simulator's
finish control runs the race; the banner prints it), then published to RunSignUp. Then it
runs the web app and a worker until Ctrl-C, which stops all of it (see "The demo process
group" below). Nothing syncs at start-up: the operator starts each step (the README's "The
demo's timing round trip").
"""

from __future__ import annotations

import errno
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
import typer
import uvicorn
from faker import Faker
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import Event, EventStatus, Gender, TimingIdentifier
from racehub.events.schemas import CategoryCreate, EventCreate, ParticipantCreate, PersonIn
from racehub.inventory import service as inventory_service
from racehub.inventory.schemas import NumberTypeCreate
from racehub.inventory.service import ManufacturedRow
from racehub.providers.catalog import Direction
from racehub.providers.demo import RunningSimulator
from racehub.settings import Settings, get_settings
from racehub.sync import discovery, links
from racehub.sync import service as sync_service
from racehub.sync.models import EventLink, ProviderConnection
from racehub.sync.schemas import (
    CategoryLinkSet,
    CategoryLinksUpdate,
    ConnectionCreate,
    ConnectionUpdate,
    LinkCreate,
)

log = structlog.get_logger(__name__)

DEMO_TENANT = "demo-timing"
DEMO_PASSWORD = "racehub-demo"
DEMO_USERS = [
    ("admin@demo.racehub.test", "Ada Admin", Role.TENANT_ADMIN),
    ("manager@demo.racehub.test", "Manu Manager", Role.EVENT_MANAGER),
    ("results@demo.racehub.test", "Rita Results", Role.RESULTS_OFFICER),
    ("viewer@demo.racehub.test", "Vic Viewer", Role.VIEWER),
]
PLATFORM_ADMIN = ("platform@racehub.test", "Pat Platform")

# name, time zone, location, days ahead, categories (name, metres, bib range), participants
DemoEvent = tuple[str, str, str, int, list[tuple[str, int, int | None, int | None]], int]
DEMO_EVENTS: list[DemoEvent] = [
    ("Riverside Half Marathon", "America/New_York", "Riverside Park, NY", 40,
     [("Half Marathon", 21097, 1, 1999), ("10K", 10000, 2000, 2999), ("5K", 5000, 3000, 3999)],
     320),
    ("Lakeside 10K", "America/Chicago", "Lake Shore, Chicago", 75,
     [("10K", 10000, 1, 999), ("Kids 1K", 1000, 5000, 5499)], 180),
    ("Trail des Crêtes", "Europe/Paris", "Annecy", 120,
     [("32K Trail", 32000, 1, 499), ("15K Trail", 15000, 500, 999)], 140),
    # No participants: its registrations come from the RunSignUp simulator once synced.
    ("Boston City Run", "America/New_York", "Boston, MA", 90,
     [("5K", 5000, None, None), ("10K", 10000, None, None)], 0),
]
# The event a simulator's first provider event is linked to (see seed_demo_connections);
# a timing simulator's race of one of its distances is linked to it too (its start list
# pushed there, its results pulled back and published to RunSignUp).
SYNCED_EVENT = "Boston City Run"
# Connections whose provider events are discovered at the first start, so their Provider
# events page lists races to link (RunSignUp's events, ChronoTrack's races).
DISCOVERED_AT_START = frozenset({"RUNSIGNUP", "CHRONOTRACK"})


def seed_demo(db: Session, *, seed: int = 7) -> bool:
    """Create the demo tenant unless it exists. Returns True when it seeded."""
    if core_service.get_tenant_by_slug(db, DEMO_TENANT) is not None:
        return False
    fake = Faker(["en_US", "fr_FR", "de_DE", "es_ES"])
    Faker.seed(seed)
    rng = random.Random(seed)
    tenant = core_service.create_tenant(db, name="Demo Timing Co.", slug=DEMO_TENANT)
    for email, name, role in DEMO_USERS:
        user = core_service.create_user(db, email=email, password=DEMO_PASSWORD, full_name=name)
        core_service.set_membership(db, tenant=tenant, user=user, role=role)
    if core_service.get_user_by_email(db, PLATFORM_ADMIN[0]) is None:
        core_service.create_user(db, email=PLATFORM_ADMIN[0], password=DEMO_PASSWORD,
                                 full_name=PLATFORM_ADMIN[1], is_platform_admin=True)
    ctx = TenantContext.system(tenant.id, label="demo seed")
    today = datetime.now(UTC).date()
    for name, tz, location, days_ahead, categories, n_participants in DEMO_EVENTS:
        start = datetime.combine(today + timedelta(days=days_ahead), datetime.min.time())
        event = events_service.create_event(db, ctx, data=EventCreate(
            name=name, start_at=start.replace(hour=8, tzinfo=ZoneInfo(tz)), timezone=tz,
            location=location, status=EventStatus.OPEN,
            preferred_timing_identifier=TimingIdentifier.PERSON_ID,
        ))
        cats = [events_service.create_category(db, ctx, event_id=event.id, data=CategoryCreate(
            name=c_name, distance_m=dist, bib_range_start=lo, bib_range_end=hi))
            for c_name, dist, lo, hi in categories]
        next_bib = {c.id: c.bib_range_start or 1 for c in cats}
        for i in range(n_participants):
            category = rng.choice(cats)
            gender = rng.choice([Gender.FEMALE, Gender.MALE, Gender.MALE, Gender.FEMALE,
                                 Gender.NON_BINARY])
            first = (fake.first_name_female() if gender == Gender.FEMALE
                     else fake.first_name_male() if gender == Gender.MALE else fake.first_name())
            # Most have a bib already; late registrations do not (try "Assign missing bibs").
            bib = None
            if rng.random() < 0.85:
                bib = str(next_bib[category.id])
                next_bib[category.id] += 1
            events_service.create_participant(db, ctx, event_id=event.id, data=ParticipantCreate(
                person=PersonIn(
                    first_name=first, last_name=fake.last_name(),
                    birth_date=fake.date_of_birth(minimum_age=12, maximum_age=78),
                    gender=gender, email=f"runner{i}.{event.id.hex[:6]}@example.com",
                    city=fake.city(), country=rng.choice(["USA", "CAN", "FRA", "DEU", "ESP"]),
                ),
                category_id=category.id, bib=bib,
                registration_id=f"R{rng.randint(100000, 999999)}-{i}",
                team=rng.choice([None, None, None, "Harriers", "Road Runners", "Les Gazelles"]),
            ))
        db.flush()
    _seed_inventory(db, ctx, rng)
    return True


def _seed_inventory(db: Session, ctx: TenantContext, rng: random.Random) -> None:
    """Two bib designs; the road bibs have a first batch on file (most with a chip)."""
    road = inventory_service.create_number_type(db, ctx, data=NumberTypeCreate(
        name="Road bibs 2027", prefix="R", range_start=1, range_end=5000,
        description="Tyvek bibs with a UHF chip"))
    inventory_service.create_number_type(db, ctx, data=NumberTypeCreate(
        name="Trail bibs 2027", range_start=1, range_end=1000))
    inventory_service.onboard_manufactured_numbers(db, ctx, number_type=road, rows=[
        ManufacturedRow(n + 1, str(n), f"{n:04d}",
                        "" if rng.random() < 0.1 else f"E28011606000{rng.getrandbits(48):012X}")
        for n in range(1, 201)
    ])


def seed_demo_connections(db: Session, keyring: Keyring,
                          simulators: list[RunningSimulator]) -> list[str]:
    """One connection per running simulator in the demo tenant, named "<provider>
    (simulator)", with the settings the simulator asks for. Made on the first run; later
    runs only re-point it when the simulator's address changed (a port was taken). A
    registration connection with no provider event chosen gets the simulator's first two
    events (see ``_choose_demo_events``); a timing connection made now gets one race linked
    to SYNCED_EVENT (``_link_demo_timing``). Returns the connections' names."""
    tenant = core_service.get_tenant_by_slug(db, DEMO_TENANT)
    if tenant is None:
        raise RuntimeError("seed the demo tenant first")
    # Pointing a connection at another address is a platform admin's right.
    ctx = TenantContext(tenant_id=tenant.id, permissions=frozenset(Perm),
                        actor_label="demo seed", is_platform_admin=True)
    existing = {c.name: c for c in sync_service.list_connections(db, ctx)}
    names = []
    for sim in simulators:
        name = f"{sim.label} (simulator)"
        credentials = {k: SecretStr(v) for k, v in sim.credentials.items()}
        settings = dict(sim.settings)
        event_ids = settings.pop("eventIds", [])
        connection = existing.get(name)
        created = connection is None
        if connection is None:
            connection = sync_service.create_connection(
                db, ctx, keyring=keyring, data=ConnectionCreate(
                    provider=sim.provider, name=name, base_url=sim.base_url,
                    credentials=credentials, event_ids=event_ids, settings=settings))
        elif (connection.base_url != sim.base_url
              or sync_service.provider_settings(connection) != settings):
            sync_service.update_connection(
                db, ctx, keyring=keyring, connection_id=connection.id,
                data=ConnectionUpdate(base_url=sim.base_url, credentials=credentials,
                                      settings=settings))
        registration = connection.direction == Direction.REGISTRATION
        if registration and sim.events and not sync_service.chosen_events(connection):
            _choose_demo_events(db, ctx, connection, sim.events)
        if created and not registration and sim.events:
            _link_demo_timing(db, ctx, connection, sim.events)
        if sim.provider in DISCOVERED_AT_START and connection.events_discovered_at is None:
            _discover_demo_events(db, ctx, keyring, connection)
        names.append(name)
    return names


def _discover_demo_events(db: Session, ctx: TenantContext, keyring: Keyring,
                          connection: ProviderConnection) -> None:
    """Its provider events discovered once, so the Provider events page has candidates to
    link or create an event from (later discoveries are the schedule's or the operator's).
    A simulator that cannot answer leaves the page empty, not the demo stopped."""
    from racehub.providers.errors import ProviderError

    try:
        with db.begin_nested():
            discovery.discover_events(db, ctx, connection_id=connection.id, keyring=keyring)
    except ProviderError as exc:
        log.warning("demo.discovery_failed", connection=connection.name, error=str(exc))


def _choose_demo_events(db: Session, ctx: TenantContext, connection: ProviderConnection,
                        events: list[tuple[str, str]]) -> None:
    """So a new user can sync at once and see how linking looks: the simulator's first
    provider event feeds SYNCED_EVENT (its race mapped to the category whose name ends the
    provider event's name), the second is chosen on the connection but left unlinked."""
    chosen = events[:2]
    links.choose_events(db, ctx, connection=connection, refs=[ref for ref, _ in chosen])
    for link in db.scalars(select(EventLink).where(EventLink.connection_id == connection.id)):
        link.provider_event_name = dict(chosen)[link.provider_event_ref]
    event = db.scalar(select(Event).where(Event.tenant_id == ctx.tenant_id,
                                          Event.name == SYNCED_EVENT))
    if event is None:  # a demo database seeded before this event existed
        return
    ref, name = chosen[0]
    link = links.create_link(db, ctx, event_id=event.id, data=LinkCreate(
        connection_id=connection.id, provider_event_ref=ref, provider_event_name=name))
    category = next((c for c in events_service.list_categories(db, ctx, event_id=event.id)
                     if name.endswith(f" {c.name}")), None)
    if category is not None:
        links.set_category_links(db, ctx, event_id=event.id, link_id=link.id,
                                 data=CategoryLinksUpdate(categories=[CategoryLinkSet(
                                     provider_ref=ref, provider_name=name,
                                     category_id=category.id)]))


def _link_demo_timing(db: Session, ctx: TenantContext, connection: ProviderConnection,
                      events: list[tuple[str, str]]) -> None:
    """SYNCED_EVENT's start list goes to the simulator's race of one of its distances (the
    first race named "<...> · <category name>", else its first race), and its results come
    back from there. Auto-sync stays on: results are pulled every 30 minutes once the event
    is live."""
    event = db.scalar(select(Event).where(Event.tenant_id == ctx.tenant_id,
                                          Event.name == SYNCED_EVENT))
    if event is None:  # a demo database seeded before this event existed
        return
    names = [c.name for c in events_service.list_categories(db, ctx, event_id=event.id)]
    ref, name = next(((ref, name) for ref, name in events
                      if any(name.endswith(f" · {c}") for c in names)), events[0])
    links.create_link(db, ctx, event_id=event.id, data=LinkCreate(
        connection_id=connection.id, provider_event_ref=ref, provider_event_name=name))


@dataclass(frozen=True)
class TimingRoundTrip:
    """A demo event linked to a timing simulator's race, and how to run that race."""

    event_name: str
    connection_name: str
    race_name: str
    finish_url: str


def timing_round_trips(db: Session, simulators: list[RunningSimulator]) -> list[TimingRoundTrip]:
    """The demo tenant's events linked to a running timing simulator's race (the one the
    demo made and any the operator linked since), with the URL that runs each race."""
    tenant = core_service.get_tenant_by_slug(db, DEMO_TENANT)
    if tenant is None:
        return []
    by_name = {f"{sim.label} (simulator)": sim for sim in simulators}
    rows = db.execute(
        select(ProviderConnection.name, EventLink.provider_event_ref,
               EventLink.provider_event_name, Event.name)
        .join(ProviderConnection, ProviderConnection.id == EventLink.connection_id)
        .join(Event, Event.id == EventLink.event_id)
        .where(EventLink.tenant_id == tenant.id,
               ProviderConnection.direction == Direction.SCORING)
        .order_by(Event.name, ProviderConnection.name, EventLink.provider_event_ref))
    found = []
    for connection_name, ref, race_name, event_name in rows:
        sim = by_name.get(connection_name)
        url = sim.finish_url(ref) if sim is not None else None
        if url is not None:
            found.append(TimingRoundTrip(event_name, connection_name, race_name or ref, url))
    return found


def write_demo_manufacturer_file(folder: Path) -> Path:
    """A file to try the T06 import with: new sequences, some already on file (1-200 are),
    rows without a chip, a repeated sequence and a barcode Excel mangled."""
    rng = random.Random(11)
    lines = ["sequence,number,barcode"]
    for n in range(181, 421):
        barcode = "" if n % 9 == 0 else f"E28011606000{rng.getrandbits(48):012X}"
        lines.append(f"{n},{n:04d},{barcode}")
    lines += ["300,0300-B,", "421,0421,2.80116E+23", "0,0000,"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo-manufactured-numbers.csv"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


# The demo process group
# ----------------------
# Everything run_demo starts goes on one ExitStack the moment it exists, so a failure at any
# step (port taken, migration, seeding, the sample file) stops what was started, newest
# first: the worker, the simulators, the engine's connections, the embedded PostgreSQL.
#
# Stopping the worker. Ctrl-C makes the terminal send SIGINT to the whole foreground process
# group, the worker included, and procrastinate stops gracefully at the first SIGINT or
# SIGTERM but dies at the second. So after a SIGINT (or SIGHUP) the demo does not signal the
# worker again; when it stops for any other reason (SIGTERM to the demo alone, a failure, the
# worker dying twice) it sends the worker one SIGINT itself. Either way the worker gets
# WORKER_GRACE_SECONDS to finish its batch, then SIGTERM, then SIGKILL WORKER_KILL_SECONDS
# later. (`kill -INT <demo pid>` alone is taken for a Ctrl-C: the worker then only gets the
# SIGTERM; stop a demo from a script with SIGTERM, or SIGINT to its process group.)
#
# A worker that exits while the demo runs is reported loudly and restarted once; a second
# exit stops the demo with exit code 1, since a demo whose jobs stay queued would mislead.

WORKER_GRACE_SECONDS = 15.0
WORKER_KILL_SECONDS = 5.0
WORKER_RESTARTS = 1
WEB_SHUTDOWN_SECONDS = 5  # open connections (keep-alive, streams) get this long on stop


class DemoError(Exception):
    """Why the demo cannot start or had to stop, told to the user in one line."""


def bind_port(host: str, port: int) -> socket.socket:
    """Claim host:port for the web app before anything else starts, so the banner never
    announces a port someone else holds. uvicorn serves on this very socket."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is fine
    try:
        sock.bind((host, port))
        sock.listen(2048)  # until the app is up, browsers wait instead of being refused
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DemoError(f"port {port} on {host} is already in use: stop what listens there "
                            "or pick another port with RACEHUB_PORT (or --port)") from None
        raise DemoError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): "
                        "check RACEHUB_HOST and RACEHUB_PORT") from None
    return sock


class _Signals:
    """SIGINT, SIGTERM and SIGHUP for the demo's lifetime. While starting they interrupt
    (KeyboardInterrupt); while serving they stop the web server (uvicorn catches them itself
    and hands them back once it stopped); while stopping they are only noted, so the
    clean-up always finishes."""

    HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: list[int] = []
        self.server: uvicorn.Server | None = None
        self.stopping = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.HANDLED}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self.stopping:
            # os.write: print() is not safe inside a signal handler.
            os.write(2, b"racehub demo: stopping, please wait\n")
        elif self.server is not None:
            self.server.should_exit = True
        else:
            raise KeyboardInterrupt

    @property
    def worker_signalled(self) -> bool:
        """Whether the worker got the stop signal with us: Ctrl-C and a closing terminal
        signal the whole foreground process group."""
        return signal.SIGINT in self.received or signal.SIGHUP in self.received


def _wait(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


class _Worker:
    """The demo's ``racehub worker`` child: restarted once if it dies while the demo runs,
    stopped gracefully (then SIGTERM, then SIGKILL) with the demo."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stopping = False
        self.restarts_left = WORKER_RESTARTS
        self.failure: str | None = None  # set when it died once too often
        self.process = self._spawn()

    @staticmethod
    def _spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "racehub.cli", "worker"], env=os.environ)

    def watch(self, demo_stopping: Callable[[], bool]) -> bool:
        """Check on the worker; False when it died again and the demo must stop."""
        if self.process.poll() is None or self.stopping or demo_stopping():
            return True
        time.sleep(1.0)  # a Ctrl-C reaches the worker and us at once: not an unexpected exit
        with self._lock:
            if self.stopping or demo_stopping():
                return True
            code = self.process.returncode
            if self.restarts_left > 0:
                self.restarts_left -= 1
                log.error("demo.worker_exited", returncode=code, action="restarting it once")
                typer.echo(f"!! racehub demo: the worker exited unexpectedly (exit code {code}); "
                           "restarting it once, see the log above", err=True)
                self.process = self._spawn()
                return True
            log.error("demo.worker_exited", returncode=code, action="stopping the demo")
            self.failure = (f"the worker exited again (exit code {code}); stopped the demo, "
                            "see the log above")
            return False

    def stop(self, *, already_signalled: bool) -> None:
        with self._lock:
            self.stopping = True
            process = self.process
        if process.poll() is not None:
            return
        if not already_signalled:
            process.send_signal(signal.SIGINT)
        if _wait(process, 2.0):
            return
        typer.echo("racehub demo: waiting for the worker to finish its batch "
                   f"(up to {WORKER_GRACE_SECONDS + WORKER_KILL_SECONDS:.0f} s)", err=True)
        if _wait(process, WORKER_GRACE_SECONDS - 2.0):
            return
        log.warning("demo.worker_slow_to_stop", after_s=WORKER_GRACE_SECONDS, action="SIGTERM")
        process.terminate()
        if _wait(process, WORKER_KILL_SECONDS):
            return
        log.warning("demo.worker_killed", action="SIGKILL")
        process.kill()
        process.wait()


def _banner(base: str, *, seeded: bool, sample: Path, simulators: list[RunningSimulator],
            round_trips: Sequence[TimingRoundTrip] = ()) -> str:
    lines = ["", "=" * 64,
             f"racehub demo {'seeded and ' if seeded else ''}running at {base}",
             f"log in with any of these (password: {DEMO_PASSWORD}):"]
    lines += [f"  {email:<32} {role.value}" for email, _, role in DEMO_USERS]
    lines += [f"  {PLATFORM_ADMIN[0]:<32} PLATFORM_ADMIN",
              f"try the manufactured-number import ({base}/inventory/numbers/onboard/import)",
              f"  with {sample}",
              f"provider simulators, each with a connection ({base}/connections):"]
    lines += [f"  {sim.label:<24} {sim.base_url}" for sim in simulators]
    for trip in round_trips:
        lines += [f"timing round trip on {trip.event_name} (README: \"The demo's timing round "
                  "trip\"): Sync now, Push start list",
                  f"  to {trip.connection_name} · {trip.race_name}, then run that race:",
                  f"  curl -X POST '{trip.finish_url}'",
                  "  then Pull results, open Results, and Prepare publication"]
    lines += ["API: " + base + "/api/openapi.json   Stop: Ctrl-C", "=" * 64, ""]
    return "\n".join(lines)


def run_demo(*, host: str | None, port: int | None) -> None:
    """Run the demo until Ctrl-C or SIGTERM, then stop everything it started. Exits 1 with a
    one-line message when it cannot start (port taken...) or had to stop early."""
    settings = get_settings()
    host = host or settings.host
    port = settings.port if port is None else port
    try:
        with _Signals() as signals, ExitStack() as stack:
            try:
                _start_and_serve(stack, signals, settings, host=host, port=port)
            finally:
                signals.stopping = True  # from here on signals only wait for the clean-up
    except KeyboardInterrupt:
        pass
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo("racehub demo stopped")


def _start_and_serve(stack: ExitStack, signals: _Signals, settings: Settings, *,
                     host: str, port: int) -> None:
    from racehub.cli import _database_url
    from racehub.core.crypto import keyring_from_settings
    from racehub.db import embedded
    from racehub.db.bootstrap import migrate
    from racehub.db.session import get_engine, make_sessionmaker
    from racehub.providers.demo import serve_simulators

    sock = stack.enter_context(bind_port(host, port))
    port = sock.getsockname()[1]  # the one bound when port 0 asked for any
    stack.callback(embedded.stop)  # a no-op unless _database_url starts it
    url = _database_url()  # starts the embedded server unless RACEHUB_DATABASE_URL is set
    migrate(url)
    engine = get_engine(url)
    stack.callback(engine.dispose)  # before the embedded server stops
    simulators = serve_simulators(stack, first_port=port + 101 if port else None)
    with make_sessionmaker(engine)() as db:
        seeded = seed_demo(db)
        seed_demo_connections(db, keyring_from_settings(settings), simulators)
        db.commit()
        round_trips = timing_round_trips(db, simulators)
    sample = write_demo_manufacturer_file(settings.data_dir / "demo")
    banner = _banner(f"http://{host}:{port}", seeded=seeded, sample=sample,
                     simulators=simulators, round_trips=round_trips)

    server = uvicorn.Server(uvicorn.Config(
        "racehub.app:create_app", factory=True, host=host, port=port, log_config=None,
        timeout_graceful_shutdown=WEB_SHUTDOWN_SECONDS))
    worker = _Worker()
    stack.callback(lambda: worker.stop(already_signalled=signals.worker_signalled))
    done = threading.Event()

    def watch() -> None:
        announced = False
        while not done.wait(0.2):
            if not announced and server.started:  # the app answers: now say so
                typer.echo(banner)
                announced = True
            if not worker.watch(lambda: server.should_exit or signals.stopping):
                server.should_exit = True
                return

    watcher = threading.Thread(target=watch, name="demo-watch", daemon=True)
    watcher.start()
    stack.callback(watcher.join, timeout=5)
    stack.callback(done.set)
    signals.server = server
    server.run(sockets=[sock])
    if worker.failure:
        raise DemoError(worker.failure)
