"""Provider connections: create, change, delete, test; credential encryption and rotation.

Every query starts from ``scoped(ctx, ProviderConnection)``. Credentials live in one
Fernet token per connection and are decrypted only to call the provider; what leaves
this module (reads, audit entries, log lines, error messages) carries at most "set" and
the last 4 characters of a key or id, and every provider message is scrubbed of the
connection's secrets first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.crypto import DecryptError, Keyring
from racehub.core.exceptions import Forbidden, Invalid
from racehub.core.logging import remember_secrets
from racehub.core.query import scoped
from racehub.providers.base import ProviderParticipant
from racehub.providers.catalog import (
    PROVIDERS,
    Direction,
    ProviderSpec,
    SettingKind,
    with_article,
)
from racehub.providers.settings import ProviderSettings
from racehub.providers.settings import problems as setting_problems
from racehub.sync import deletion, links
from racehub.sync.exceptions import (
    BaseUrlForbidden,
    ConnectionNameTaken,
    ConnectionNotFound,
    InvalidCredentials,
    SampleUnavailable,
)
from racehub.sync.mapping import map_participant, read_record
from racehub.sync.models import ConnectionStatus, ProviderConnection
from racehub.sync.schemas import (
    CheckRead,
    ConnectionCreate,
    ConnectionRead,
    ConnectionUpdate,
    CredentialHint,
    PreviewRead,
    PreviewRow,
)
from racehub.sync.transforms import MappingRule, source_paths

log = structlog.get_logger(__name__)

MASK = "***"
HINT_MIN_LENGTH = 8  # shorter values would be half revealed by their last 4 characters
SAMPLE_SIZE = 5
SAMPLE_PROBLEMS = 3  # row problems named when a sample met nothing else
EVENT_CHOICES = 200  # events offered in a picker
MESSAGE_MAX = 500

# (connection, decrypted credentials) -> a racehub.providers adapter. Tests may pass their own.
AdapterFactory = Callable[[ProviderConnection, dict[str, str]], Any]


# --- reading ---------------------------------------------------------------------------------


def list_connections(db: Session, ctx: TenantContext) -> list[ProviderConnection]:
    return list(db.scalars(scoped(ctx, ProviderConnection)
                           .order_by(ProviderConnection.name, ProviderConnection.id)))


def get_connection_or_raise(
    db: Session, ctx: TenantContext, *, connection_id: uuid.UUID, for_update: bool = False
) -> ProviderConnection:
    stmt = scoped(ctx, ProviderConnection).where(ProviderConnection.id == connection_id)
    if for_update:
        stmt = stmt.with_for_update()
    connection = db.scalar(stmt)
    if connection is None:
        raise ConnectionNotFound()
    return connection


def spec_of(connection: ProviderConnection) -> ProviderSpec:
    return PROVIDERS[connection.provider]


def read_credentials(keyring: Keyring, connection: ProviderConnection) -> dict[str, str]:
    """The clear credentials, for calling the provider only. Never log or return them."""
    data = json.loads(keyring.decrypt(connection.credentials_encrypted))
    credentials = {str(k): str(v) for k, v in data.items()}
    remember_secrets(credentials.values())  # masked in every log line from now on
    return credentials


def credential_hints(keyring: Keyring, connection: ProviderConnection) -> dict[str, CredentialHint]:
    spec = spec_of(connection)
    try:
        stored = read_credentials(keyring, connection)
    except DecryptError:
        # The key that encrypted them is gone: say they are set, show nothing of them.
        return {f.key: CredentialHint(set=True, secret=f.secret) for f in spec.credentials}
    hints = {}
    for f in spec.credentials:
        value = stored.get(f.key) or ""
        # A secret shows only "set"; an identifier its last 4 characters (to tell two apart).
        show = bool(value) and not f.secret and len(value) >= HINT_MIN_LENGTH
        hints[f.key] = CredentialHint(set=bool(value), secret=f.secret,
                                      last4=value[-4:] if show else None)
    return hints


def chosen_events(connection: ProviderConnection) -> list[str]:
    """The provider events chosen on the connection (its ``eventIds``): its link rows."""
    db = Session.object_session(connection)
    if db is None:
        raise RuntimeError("chosen_events needs a connection loaded in a session")
    return links.chosen_refs(db, connection)


def to_read(keyring: Keyring, connection: ProviderConnection) -> ConnectionRead:
    spec = spec_of(connection)
    return ConnectionRead(
        id=connection.id, provider=connection.provider, provider_label=spec.label,
        name=connection.name, base_url=connection.base_url,
        is_default_base_url=_same_url(connection.base_url, spec.base_url),
        direction=connection.direction,
        event_ids=chosen_events(connection),
        field_mapping=list(connection.field_mapping or []),
        settings=provider_settings(connection),
        credentials=credential_hints(keyring, connection), status=connection.status,
        last_checked_at=connection.last_checked_at,
        last_check_message=connection.last_check_message,
        created_at=connection.created_at, updated_at=connection.updated_at,
    )


# --- writing ---------------------------------------------------------------------------------


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _check_base_url(ctx: TenantContext, url: str, current: str) -> str:
    url = url.strip()
    if _same_url(url, current):
        return current
    if not ctx.is_platform_admin:
        raise BaseUrlForbidden()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("baseUrl must be an http(s) URL such as https://api.example.com/v1",
                      field="baseUrl")
    return url.rstrip("/")


def provider_settings(connection: ProviderConnection) -> dict[str, Any]:
    """The provider's own settings (the events to sync are link rows: ``chosen_events``)."""
    return dict(connection.settings or {})


def _merge_settings(ctx: TenantContext, spec: ProviderSpec, current: Mapping[str, Any],
                    given: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``given`` applied, each value checked by its field; an empty one
    removes the setting. A URL setting is where the adapter sends requests (and the
    credentials), so changing one is a platform admin's right, like the base URL."""
    merged = dict(current)
    for key, value in given.items():
        f = spec.setting(key)
        if f is None:
            known = ", ".join(x.key for x in spec.all_settings)
            raise Invalid(f"settings.{key}: {spec.label} has no such setting; it has {known}",
                          field=f"settings.{key}")
        try:
            cleaned = f.clean(value)
        except ValueError as exc:
            raise Invalid(f"settings.{key}: {exc}", field=f"settings.{key}") from None
        if (f.kind == SettingKind.URL and cleaned != current.get(key)
                and not ctx.is_platform_admin):
            raise Forbidden(f"settings.{key}: only a platform admin may change {f.label}",
                            field=f"settings.{key}")
        if cleaned is None:
            merged.pop(key, None)
        else:
            merged[key] = cleaned
    # The adapter reads them through this model: what it refuses is not stored.
    try:
        spec.settings_model.model_validate(merged)
    except ValidationError as exc:
        found = setting_problems(exc)
        raise Invalid("; ".join(f"{where}: {why}" for where, why in found),
                      field=found[0][0]) from None
    return merged


def _merge_credentials(
    spec: ProviderSpec, current: Mapping[str, str], given: Mapping[str, Any]
) -> dict[str, str]:
    merged = dict(current)
    for key, secret in given.items():
        f = spec.field(key)
        if f is None:
            raise InvalidCredentials(
                f"credentials.{key}: {spec.label} takes no such credential; it takes "
                + ", ".join(spec.credential_keys), field=f"credentials.{key}")
        value = (secret.get_secret_value() if hasattr(secret, "get_secret_value")
                 else str(secret)).strip()
        if len(value) > 1000:
            raise InvalidCredentials(f"credentials.{key}: longer than 1000 characters",
                                     field=f"credentials.{key}")
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    missing = spec.missing_credentials({k for k, v in merged.items() if v})
    if missing:
        f = spec.field(missing[0])
        assert f is not None
        needs = (spec.describe_sets() if spec.credential_sets and not f.required
                 else with_article(f.label))
        raise InvalidCredentials(f"credentials.{f.key}: {spec.label} needs {needs}",
                                 field=f"credentials.{f.key}")
    return merged


def _check_direction(spec: ProviderSpec, direction: Direction) -> None:
    """A registration connection pulls participants: its provider must list them."""
    if direction == Direction.REGISTRATION and not spec.lists_participants:
        raise Invalid(f"direction: {spec.label} cannot list participants, so racehub cannot "
                      "pull registrations from it; keep it a "
                      f"{spec.direction.value} connection", field="direction")


def _encrypt(keyring: Keyring, connection: ProviderConnection, creds: Mapping[str, str]) -> None:
    connection.credentials_encrypted = keyring.encrypt(json.dumps(dict(creds), sort_keys=True))
    connection.credentials_key_id = keyring.primary_id


def _name_free(db: Session, ctx: TenantContext, name: str, *, other_than: uuid.UUID | None) -> None:
    stmt = scoped(ctx, ProviderConnection).where(ProviderConnection.name == name)
    if other_than is not None:
        stmt = stmt.where(ProviderConnection.id != other_than)
    if db.scalar(stmt) is not None:
        raise ConnectionNameTaken(name)


def _public(connection: ProviderConnection) -> dict[str, Any]:
    """What an audit entry may show of a connection: no credential, only which are set."""
    return {"provider": connection.provider, "name": connection.name,
            "baseUrl": connection.base_url, "direction": connection.direction.value,
            "eventIds": chosen_events(connection),
            "settings": provider_settings(connection),
            "fieldMapping": [r.get("target") for r in connection.field_mapping or []]}


def create_connection(
    db: Session, ctx: TenantContext, *, keyring: Keyring, data: ConnectionCreate
) -> ProviderConnection:
    spec = PROVIDERS[data.provider]
    _name_free(db, ctx, data.name, other_than=None)
    base_url = spec.base_url
    if data.base_url is not None:
        base_url = _check_base_url(ctx, data.base_url, spec.base_url)
    creds = _merge_credentials(spec, {}, data.credentials)
    _check_direction(spec, data.direction or spec.direction)
    connection = ProviderConnection(
        tenant_id=ctx.tenant_id, provider=spec.key, name=data.name, base_url=base_url,
        direction=data.direction or spec.direction,
        settings=_merge_settings(ctx, spec, {}, data.settings),
        field_mapping=[r.model_dump(mode="json") for r in data.field_mapping],
        status=ConnectionStatus.UNTESTED)
    _encrypt(keyring, connection, creds)
    db.add(connection)
    db.flush()  # id for the links and the audit entry
    links.choose_events(db, ctx, connection=connection, refs=data.event_ids)
    audit.record(db, ctx, action="connection.create", target_type="provider_connection",
                 target_id=connection.id,
                 after={**_public(connection), "credentials": sorted(creds)})
    log.info("connection.created", connection_id=str(connection.id), provider=spec.key)
    return connection


def update_connection(
    db: Session, ctx: TenantContext, *, keyring: Keyring, connection_id: uuid.UUID,
    data: ConnectionUpdate,
) -> ProviderConnection:
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id, for_update=True)
    spec = spec_of(connection)
    before = _public(connection)
    changes = data.model_dump(exclude_unset=True)
    retest = False
    if changes.get("name") is not None and changes["name"] != connection.name:
        _name_free(db, ctx, changes["name"], other_than=connection.id)
        connection.name = changes["name"]
    if "base_url" in changes:
        # null puts the real API back; that too is a change of address.
        wanted = changes["base_url"] if changes["base_url"] is not None else spec.base_url
        new_url = _check_base_url(ctx, wanted, connection.base_url)
        retest = retest or new_url != connection.base_url
        connection.base_url = new_url
    if changes.get("direction") is not None:
        _check_direction(spec, changes["direction"])
        links.check_direction(db, ctx, connection=connection, direction=changes["direction"])
        connection.direction = data.direction  # type: ignore[assignment]
    if data.event_ids is not None:
        links.choose_events(db, ctx, connection=connection, refs=data.event_ids)
    if data.settings:
        current = provider_settings(connection)
        merged = _merge_settings(ctx, spec, current, data.settings)
        retest = retest or merged != current
        connection.settings = merged
    if data.field_mapping is not None:
        connection.field_mapping = [r.model_dump(mode="json") for r in data.field_mapping]
    changed_credentials: list[str] = []
    if data.credentials:
        current = read_credentials(keyring, connection)
        merged = _merge_credentials(spec, current, data.credentials)
        changed_credentials = sorted(k for k in set(current) | set(merged)
                                     if current.get(k) != merged.get(k))
        if changed_credentials:
            _encrypt(keyring, connection, merged)
            retest = True
            audit.record(db, ctx, action="connection.credentials_change",
                         target_type="provider_connection", target_id=connection.id,
                         after={"changed": changed_credentials,
                                "cleared": sorted(set(current) - set(merged))})
    if retest:
        connection.status = ConnectionStatus.UNTESTED
    after = _public(connection)
    if after != before:
        audit.record(db, ctx, action="connection.update", target_type="provider_connection",
                     target_id=connection.id,
                     before={k: v for k, v in before.items() if after[k] != v},
                     after={k: v for k, v in after.items() if before[k] != v})
    db.flush()  # updated_at for the response
    db.refresh(connection)
    return connection


def deletion_of(db: Session, ctx: TenantContext, *,
                connection_id: uuid.UUID) -> deletion.ConnectionDeletion:
    """What deleting the connection would take with it and what stays (the delete form
    says it before anyone confirms)."""
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    return deletion.describe(db, ctx, connection)


def delete_connection(db: Session, ctx: TenantContext, *,
                      connection_id: uuid.UUID) -> deletion.ConnectionDeletion:
    """Delete the connection, its credentials and its provider events (links: their cursors
    and category mappings); its runs' history and synced records stay. Refused while a run
    of one of its links is active (ConnectionSyncing). Returns what went; the audit entry
    lists each link with its cursor."""
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id, for_update=True)
    gone = deletion.describe(db, ctx, connection, lock=True)
    audit.record(db, ctx, action="connection.delete", target_type="provider_connection",
                 target_id=connection.id, before=_public(connection),
                 after={"credentials": "deleted", "links": gone.links,
                        "categoryLinks": gone.category_links,
                        "webhookDeliveries": gone.webhook_deliveries,
                        "runsKept": gone.runs_kept, "recordsKept": gone.records_kept})
    db.delete(connection)
    db.flush()
    return gone


# --- talking to the provider -------------------------------------------------------------


def secret_variants(credentials: Mapping[str, str]) -> set[str]:
    """Each credential as it may appear in a provider's or a library's message: as is,
    URL-encoded, as ChronoTrack's SHA-1 of a password, and as HTTP Basic pairs."""
    values = [v for v in credentials.values() if v and len(v) >= 4]
    out: set[str] = set()
    for v in values:
        out |= {v, quote(v, safe=""), quote_plus(v), hashlib.sha1(v.encode()).hexdigest()}
    for a in values:
        for b in values:
            if a != b:
                out.add(base64.b64encode(f"{a}:{b}".encode()).decode())
    return out


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _default_factory() -> AdapterFactory:
    from racehub.sync.adapters import build_adapter

    return build_adapter


@dataclass
class _ProviderCall:
    """Opens the adapter with the connection's credentials; scrubs whatever comes back."""

    connection: ProviderConnection
    credentials: dict[str, str]
    factory: AdapterFactory
    secrets: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.secrets = secret_variants(self.credentials)

    def clean(self, message: object) -> str:
        return redact(str(message), self.secrets)[:MESSAGE_MAX]


def check_connection(
    db: Session, ctx: TenantContext, *, keyring: Keyring, connection_id: uuid.UUID,
    adapter_factory: AdapterFactory | None = None,
) -> CheckRead:
    """Ask the provider whether the credentials work; store and audit the (scrubbed) answer."""
    from racehub.providers.errors import ProviderError

    # No row lock while the provider is called (that can take seconds); taken to write.
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    tested_token = connection.credentials_encrypted
    ok, message = False, ""
    try:
        call = _ProviderCall(connection, read_credentials(keyring, connection),
                             adapter_factory or _default_factory())
    except DecryptError as exc:
        message = str(exc)
    else:
        try:
            with call.factory(connection, call.credentials) as adapter:
                check = adapter.check_credentials()
            ok, message = bool(check.ok), call.clean(check.message)
        except ProviderError as exc:
            message = call.clean(exc)
        except Exception as exc:  # noqa: BLE001 - any failure is the check's answer
            # No traceback in the log: a library's message may quote a credential.
            message = call.clean(f"unexpected error ({type(exc).__name__}): {exc}")
            log.error("connection.check_crashed", connection_id=str(connection.id),
                      provider=connection.provider, error=message)
    now = datetime.now(UTC)
    message = message or ("credentials accepted" if ok else "failed")
    db.refresh(connection, with_for_update=True)
    if connection.credentials_encrypted != tested_token:
        # Changed while we asked: the answer is about the old credentials; the new ones
        # stay UNTESTED.
        return CheckRead(ok=ok, status=connection.status, checked_at=now,
                         message=f"{message} (the credentials changed meanwhile: test again)")
    connection.status = ConnectionStatus.OK if ok else ConnectionStatus.FAILED
    connection.last_checked_at = now
    connection.last_check_message = message
    audit.record(db, ctx, action="connection.test", target_type="provider_connection",
                 target_id=connection.id,
                 after={"ok": ok, "message": connection.last_check_message})
    log.info("connection.tested", connection_id=str(connection.id),
             provider=connection.provider, ok=ok, message=connection.last_check_message)
    db.flush()
    return CheckRead(ok=ok, status=connection.status, message=connection.last_check_message,
                     checked_at=now)


def fetch_sample(
    db: Session, ctx: TenantContext, *, keyring: Keyring, connection_id: uuid.UUID,
    event_id: str | None, limit: int = SAMPLE_SIZE, adapter_factory: AdapterFactory | None = None,
    mapping_sources: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """A few raw participant records of one of the provider's events, for the preview.
    ``mapping_sources``: the paths the previewed mapping reads (a provider may send some
    fields only when asked, e.g. RunSignUp's question responses)."""
    return [item.raw if isinstance(item.raw, dict) else _as_dict(item)
            for item in fetch_sample_participants(
                db, ctx, keyring=keyring, connection_id=connection_id, event_id=event_id,
                limit=limit, adapter_factory=adapter_factory, mapping_sources=mapping_sources)]


def fetch_sample_participants(
    db: Session, ctx: TenantContext, *, keyring: Keyring, connection_id: uuid.UUID,
    event_id: str | None, limit: int = SAMPLE_SIZE, adapter_factory: AdapterFactory | None = None,
    mapping_sources: Iterable[str] = (),
) -> list[Any]:
    """As :func:`fetch_sample`, the participants as the adapter read them (its default
    mapping applied, the raw record in ``.raw``)."""
    from racehub.providers.base import Capability

    sources = list(mapping_sources)
    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    spec = spec_of(connection)
    if Capability.LIST_PARTICIPANTS not in spec.adapter_class().capabilities:
        raise SampleUnavailable(f"sample: {spec.label} cannot list participants, so there is "
                                "no live sample; send a few of its records", field="sample")
    event_ref = (event_id or "").strip() or next(iter(chosen_events(connection)), "")
    if not event_ref:
        raise SampleUnavailable("eventId: name the provider event to fetch a sample from",
                                field="eventId")

    problems: list[Any] = []

    def first_rows(adapter: Any) -> list[Any]:
        settings = getattr(adapter, "settings", None)
        if sources and isinstance(settings, ProviderSettings):
            adapter.settings = settings.model_copy(update={
                "mapping_sources": [*settings.mapping_sources, *sources]})
        return _first_items(adapter.list_participants(event_ref), limit, problems=problems)

    rows = _ask_provider(connection, keyring, adapter_factory, first_rows,
                         failing="no sample from the provider")
    if not rows and problems:
        # Rows came but none could be read: what went wrong is the answer, not "no rows".
        shown = "; ".join(str(p) for p in problems[:SAMPLE_PROBLEMS])
        more = len(problems) - SAMPLE_PROBLEMS
        message = (f"event {event_ref!r}: no participant could be read ({len(problems)} row "
                   f"problem(s)): {shown}" + (f"; and {more} more" if more > 0 else ""))
        secrets = secret_variants(read_credentials(keyring, connection))
        raise SampleUnavailable(redact(message, secrets)[:MESSAGE_MAX], field="eventId")
    if not rows:
        raise SampleUnavailable(f"event {event_ref!r} has no participants to preview on",
                                field="eventId")
    return rows


@dataclass(frozen=True)
class EventChoice:
    ref: str
    name: str
    start_at: datetime | None = None


def list_provider_events(
    db: Session, ctx: TenantContext, *, keyring: Keyring, connection_id: uuid.UUID,
    limit: int = EVENT_CHOICES, adapter_factory: AdapterFactory | None = None,
) -> list[EventChoice]:
    """The provider's events this connection can read (at most ``limit``), for pickers;
    a provider that cannot list them answers with the connection's chosen events."""
    from racehub.providers.base import Capability

    connection = get_connection_or_raise(db, ctx, connection_id=connection_id)
    chosen = [EventChoice(link.provider_event_ref,
                          link.provider_event_name or link.provider_event_ref)
              for link in links.list_connection_links(db, ctx, connection_id=connection_id)]

    def first_events(adapter: Any) -> list[EventChoice]:
        if not adapter.supports(Capability.LIST_EVENTS):
            return chosen
        return [EventChoice(e.ref, f"{e.parent_name} · {e.name}"
                            if e.parent_name and e.parent_name != e.name else e.name,
                            e.start_at)
                for e in _first_items(adapter.list_events(), limit)]

    return _ask_provider(connection, keyring, adapter_factory, first_events,
                         failing="the provider's events could not be read")


T = TypeVar("T")


def _first_items(pages: Iterable[Any], limit: int,
                 problems: list[Any] | None = None) -> list[Any]:
    """The items of a provider's page iterator, up to ``limit`` (no page more is asked);
    the pages' row problems are added to ``problems`` when given."""
    items: list[Any] = []
    for page in pages:
        items.extend(page.items[:limit - len(items)])
        if problems is not None:
            problems.extend(getattr(page, "problems", ()))
        if len(items) >= limit or page.is_last:
            break
    return items


def _ask_provider(connection: ProviderConnection, keyring: Keyring,
                  adapter_factory: AdapterFactory | None,
                  ask: Callable[[Any], T], *, failing: str) -> T:
    """Run ``ask`` on the connection's adapter; any failure becomes SampleUnavailable
    with the provider's message scrubbed of every secret."""
    from racehub.providers.errors import ProviderError

    try:
        call = _ProviderCall(connection, read_credentials(keyring, connection),
                             adapter_factory or _default_factory())
    except DecryptError as exc:
        raise SampleUnavailable(str(exc)) from None
    try:
        with call.factory(connection, call.credentials) as adapter:
            return ask(adapter)
    except (ProviderError, ValueError) as exc:  # adapters refuse malformed refs with ValueError
        raise SampleUnavailable(f"{failing}: {call.clean(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - never let a raw library message reach the log
        message = call.clean(f"unexpected error ({type(exc).__name__}): {exc}")
        log.error("connection.provider_call_crashed", connection_id=str(connection.id),
                  error=message)
        raise SampleUnavailable(f"{failing}: {message}") from None


def _as_dict(item: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(item) and not isinstance(item, type):
        return {k: (v if isinstance(v, (str, int, float, bool, type(None), dict, list))
                    else str(v)) for k, v in asdict(item).items() if k != "raw"}
    return {"value": str(item)}


def preview_mapping(
    rules: list[MappingRule], sample: Sequence[ProviderParticipant | dict[str, Any]], *,
    origin: str, provider: str | None = None, event_ref: str = "",
) -> PreviewRead:
    """``rules`` (not saved) on a sample, through the pipeline a sync runs
    (sync/mapping.py): participants fetched by the adapter as they are; raw records (pasted)
    read by ``provider``'s adapter first, as a sync would read them."""
    spec = PROVIDERS.get(provider or "")
    adapter = spec.adapter_class() if spec else None
    rows = []
    records: list[Any] = []
    for index, item in enumerate(sample):
        unreadable = None
        if isinstance(item, ProviderParticipant):
            participant = item
        else:
            participant, unreadable = read_record(adapter, item, event_ref)
        records.append(participant.raw)
        mapped = map_participant(participant, rules, row=index)
        rows.append(PreviewRow(
            values={k: v.isoformat() if isinstance(v, date) else v
                    for k, v in mapped.values.items()},
            errors={p.field or "record": p.message for p in mapped.problems},
            from_rule=[k for k in mapped.values if k in mapped.from_rule],
            unreadable=unreadable))
    paths: list[str] = []
    for record in records[:5]:
        paths += [p for p in source_paths(record) if p not in paths]
    return PreviewRead(rows=rows, source_paths=paths, sample_origin=origin)


# --- key rotation ------------------------------------------------------------------------


@dataclass
class RotationReport:
    rotated: int = 0
    failed: list[str] = field(default_factory=list)  # "tenant/connection: why"


def rotate_credentials(
    db: Session, *, keyring: Keyring, actor_label: str = "cli"
) -> RotationReport:
    """Re-encrypt every tenant's credentials under the keyring's first key.

    Platform-wide (the CLI runs it). Rows are locked while rewritten; a row no configured
    key opens is reported, not touched.
    """
    report = RotationReport()
    stmt = select(ProviderConnection).order_by(ProviderConnection.id).with_for_update()
    for connection in db.scalars(stmt):
        old_key = connection.credentials_key_id
        try:
            connection.credentials_encrypted = keyring.rotate(connection.credentials_encrypted)
        except DecryptError as exc:
            report.failed.append(f"{connection.tenant_id}/{connection.id}: {exc}")
            continue
        connection.credentials_key_id = keyring.primary_id
        report.rotated += 1
        audit.record(db, None, action="connection.credentials_rotate",
                     target_type="provider_connection", target_id=connection.id,
                     tenant_id=connection.tenant_id, actor_label=actor_label,
                     before={"keyId": old_key}, after={"keyId": keyring.primary_id})
    audit.record(db, None, action="keys.rotate", actor_label=actor_label,
                 after={"primaryKeyId": keyring.primary_id, "keyIds": keyring.key_ids,
                        "rotated": report.rotated, "failed": len(report.failed)})
    db.flush()
    return report
