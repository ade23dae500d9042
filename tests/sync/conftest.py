"""Fixtures of the sync tests: a keyring, captured log output, fake adapters, connections
with links; and for the engine's tests a served RunSignUp simulator (``sim``, its options
from ``sim_options``), a connection to it, an event and the link between them."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import AuditEntry
from racehub.events.models import Event
from racehub.providers.base import CredentialCheck, Page
from racehub.providers.catalog import Direction
from racehub.providers.errors import AuthFailed
from racehub.providers.runsignup.simulator import RunSignUpSimulator
from racehub.settings import Settings
from racehub.sync import links, service
from racehub.sync.models import EventLink, ProviderConnection, SyncRun, SyncStatus
from racehub.sync.schemas import ConnectionCreate, LinkCreate
from tests.factories import make_event
from tests.logs import captured_log
from tests.sync import engine_helpers

# Long, distinctive values: a leak of any of them (or of their last 5+ characters) is
# found by a plain substring search.
RSU_KEY = "rsu-key-7Hq2ZpLw0001"
RSU_SECRET = "rsu-secret-Vb9xT4mKeY77"
ROSTER_PASSWORD = "roster-pass-Qz81-never-show"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # DEBUG, so every log line the code could write is written (and grepped for secrets),
    # and a real key: the keyring of the app is the one these tests check against.
    return Settings(database_url=database_url, data_dir=tmp_path, log_json=True,
                    log_level="DEBUG", secret_keys=SecretStr(Fernet.generate_key().decode()))


@pytest.fixture
def keyring(app) -> Keyring:  # type: ignore[no-untyped-def]
    return app.state.keyring  # type: ignore[no-any-return]


@pytest.fixture
def log_output(app) -> Iterator[io.StringIO]:  # type: ignore[no-untyped-def]
    """Everything the app logs, rendered exactly as production renders it (JSON lines)."""
    with captured_log() as buffer:
        yield buffer


def audit_entries(db: Session, action: str) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)
                           .order_by(AuditEntry.id)))


@dataclass
class FakeAdapter:
    """Stands in for a provider adapter where the test is about racehub, not the wire.
    Its failures quote the credentials, as a careless library might."""

    credentials: dict[str, str]
    accept: bool = True
    records: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def __enter__(self) -> FakeAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def check_credentials(self) -> CredentialCheck:
        self.calls.append("check")
        if not self.accept:
            values = " ".join(self.credentials.values())
            raise AuthFailed(f"key authentication failed for {values} (code 6)",
                             provider="RUNSIGNUP")
        return CredentialCheck(ok=True, message="credentials accepted", account="Demo Races")

    def list_participants(self, event_ref: str, since: Any = None) -> Iterator[Page[Any]]:
        @dataclass
        class Item:
            raw: dict[str, Any]

        self.calls.append(f"participants:{event_ref}")
        yield Page(items=[Item(r) for r in self.records], is_last=True)


def fake_factory(**options: Any):  # type: ignore[no-untyped-def]
    made: list[FakeAdapter] = []

    def factory(connection: Any, credentials: dict[str, str]) -> FakeAdapter:
        adapter = FakeAdapter(dict(credentials), **options)
        made.append(adapter)
        return adapter

    factory.made = made  # type: ignore[attr-defined]
    return factory


# --- links ----------------------------------------------------------------------------------


def make_connection(db: Session, ctx: TenantContext, keyring: Keyring, *, name: str = "RSU",
                    provider: str = "RUNSIGNUP", event_ids: list[str] | None = None,
                    direction: Direction | None = None) -> ProviderConnection:
    credentials: dict[str, Any] = {
        "RUNSIGNUP": {"api_key": RSU_KEY, "api_secret": RSU_SECRET},
        "CHRONOTRACK": {"client_id": "ct-client", "user_id": "timer@example.org",
                        "user_pass": "ct-pass-1234"},
    }.get(provider, {"api_key": "copernico-key-1234"})
    return service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider=provider, name=name, credentials=credentials, event_ids=event_ids or [],
        direction=direction))


def link(db: Session, ctx: TenantContext, event: Event, connection: ProviderConnection,
         ref: str, **fields: Any) -> EventLink:
    return links.create_link(db, ctx, event_id=event.id, data=LinkCreate(
        connection_id=connection.id, provider_event_ref=ref, **fields))


def start_run(db: Session, link_row: EventLink, status: SyncStatus) -> SyncRun:
    run = SyncRun(tenant_id=link_row.tenant_id, connection_id=link_row.connection_id,
                  provider=link_row.provider, link_id=link_row.id, event_id=link_row.event_id,
                  sync_type="participants", trigger="manual", status=status)
    db.add(run)
    db.flush()
    return run


# --- the engine's set-up: a simulator, a connection to it, an event, the link -----------------


@pytest.fixture
def sim_options() -> dict[str, Any]:
    """Options of the served RunSignUp simulator; a module overrides this fixture."""
    return {}


@pytest.fixture
def sim(sim_options: dict[str, Any]) -> Iterator[tuple[RunSignUpSimulator, str]]:
    """The RunSignUp simulator over HTTP, and its base URL."""
    with engine_helpers.simulator(**sim_options) as served:
        yield served


@pytest.fixture
def event(db: Session, tenant: Any) -> Event:
    return make_event(db, tenant)


@pytest.fixture
def connection(db: Session, ctx: TenantContext, keyring: Keyring,
               sim: tuple[RunSignUpSimulator, str]) -> ProviderConnection:
    """A RunSignUp connection to ``sim``."""
    return engine_helpers.connect(db, ctx, keyring, sim[1])


@pytest.fixture
def event_link(db: Session, connection: ProviderConnection, event: Event,
               sim: tuple[RunSignUpSimulator, str]) -> EventLink:
    """The simulator's first provider event, linked to ``event``."""
    return engine_helpers.link(db, connection, event, engine_helpers.event_ref(sim[0]),
                               name="5K")


@pytest.fixture
def offline_link(db: Session, tenant: Any, event: Event) -> EventLink:
    """A link of a RunSignUp connection that is never called (its records and EPs are made
    directly in the test database)."""
    connection = ProviderConnection(
        tenant_id=tenant.id, provider="RUNSIGNUP", name=f"RunSignUp {uuid.uuid4().hex[:6]}",
        base_url="http://127.0.0.1:9/Rest", credentials_encrypted="-", credentials_key_id="-",
        direction=Direction.REGISTRATION)
    db.add(connection)
    db.flush()
    row = EventLink(tenant_id=tenant.id, connection_id=connection.id, provider="RUNSIGNUP",
                    provider_event_ref="100:200", event_id=event.id)
    db.add(row)
    db.flush()
    return row
