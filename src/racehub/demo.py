"""``racehub demo``: a ready-to-click racehub on the embedded database.

Seeds (once) a demo timing company with three events, categories, a few hundred
participants and one user per role; serves the provider simulators on 127.0.0.1 and
points one connection per provider at them; then runs the web app and a worker until
Ctrl-C.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from faker import Faker
from pydantic import SecretStr
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import Role
from racehub.core.rbac import Perm
from racehub.events import service as events_service
from racehub.events.models import EventStatus, Gender, TimingIdentifier
from racehub.events.schemas import CategoryCreate, EventCreate, ParticipantCreate, PersonIn
from racehub.inventory import service as inventory_service
from racehub.inventory.schemas import NumberTypeCreate
from racehub.inventory.service import ManufacturedRow
from racehub.providers.demo import RunningSimulator
from racehub.sync import service as sync_service
from racehub.sync.schemas import ConnectionCreate, ConnectionUpdate

DEMO_TENANT = "demo-timing"
DEMO_PASSWORD = "racehub-demo"
DEMO_USERS = [
    ("admin@demo.racehub.test", "Ada Admin", Role.TENANT_ADMIN),
    ("manager@demo.racehub.test", "Manu Manager", Role.EVENT_MANAGER),
    ("results@demo.racehub.test", "Rita Results", Role.RESULTS_OFFICER),
    ("viewer@demo.racehub.test", "Vic Viewer", Role.VIEWER),
]
PLATFORM_ADMIN = ("platform@racehub.test", "Pat Platform")

DEMO_EVENTS = [
    ("Riverside Half Marathon", "America/New_York", "Riverside Park, NY", 40,
     [("Half Marathon", 21097, 1, 1999), ("10K", 10000, 2000, 2999), ("5K", 5000, 3000, 3999)],
     320),
    ("Lakeside 10K", "America/Chicago", "Lake Shore, Chicago", 75,
     [("10K", 10000, 1, 999), ("Kids 1K", 1000, 5000, 5499)], 180),
    ("Trail des Crêtes", "Europe/Paris", "Annecy", 120,
     [("32K Trail", 32000, 1, 499), ("15K Trail", 15000, 500, 999)], 140),
]


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
    runs only re-point it when the simulator's address changed (a port was taken). Returns
    the connections' names."""
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
        if connection is None:
            sync_service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
                provider=sim.provider, name=name, base_url=sim.base_url,
                credentials=credentials, event_ids=event_ids, settings=settings))
        elif (connection.base_url != sim.base_url
              or sync_service.provider_settings(connection) != settings):
            sync_service.update_connection(
                db, ctx, keyring=keyring, connection_id=connection.id,
                data=ConnectionUpdate(base_url=sim.base_url, credentials=credentials,
                                      settings=settings))
        names.append(name)
    return names


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



def run_demo(*, host: str | None, port: int | None) -> None:
    from racehub.cli import _database_url
    from racehub.core.crypto import keyring_from_settings
    from racehub.db.bootstrap import migrate
    from racehub.db.session import get_engine, make_sessionmaker
    from racehub.providers.demo import serve_simulators
    from racehub.settings import get_settings

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    url = _database_url()  # starts the embedded server unless RACEHUB_DATABASE_URL is set
    migrate(url)
    simulators_running = ExitStack()
    simulators = serve_simulators(simulators_running, first_port=port + 101)
    with make_sessionmaker(get_engine(url))() as db:
        seeded = seed_demo(db)
        seed_demo_connections(db, keyring_from_settings(settings), simulators)
        db.commit()
    worker = subprocess.Popen([sys.executable, "-m", "racehub.cli", "worker"], env=os.environ)
    base = f"http://{host}:{port}"
    typer.echo("\n" + "=" * 64)
    typer.echo(f"racehub demo {'seeded and ' if seeded else ''}running at {base}")
    typer.echo(f"log in with any of these (password: {DEMO_PASSWORD}):")
    for email, _, role in DEMO_USERS:
        typer.echo(f"  {email:<32} {role.value}")
    typer.echo(f"  {PLATFORM_ADMIN[0]:<32} PLATFORM_ADMIN")
    sample = write_demo_manufacturer_file(settings.data_dir / "demo")
    typer.echo(f"try the manufactured-number import ({base}/inventory/numbers/onboard/import)")
    typer.echo(f"  with {sample}")
    typer.echo(f"provider simulators, each with a connection ({base}/connections):")
    for sim in simulators:
        typer.echo(f"  {sim.label:<24} {sim.base_url}")
    typer.echo("API: " + base + "/api/openapi.json   Stop: Ctrl-C")
    typer.echo("=" * 64 + "\n")
    try:
        import uvicorn

        uvicorn.run("racehub.app:create_app", factory=True, host=host, port=port,
                    log_config=None)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGINT)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        simulators_running.close()
        from racehub.db import embedded

        embedded.stop()
        typer.echo("racehub demo stopped")
