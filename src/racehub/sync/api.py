"""JSON API of provider connections. Thin: the service holds the rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.csrf import csrf_exempt
from racehub.core.deps import DB, require
from racehub.core.rbac import Perm
from racehub.core.schemas import APIModel
from racehub.providers.catalog import PROVIDERS, Direction, SettingKind
from racehub.sync import service, webhooks
from racehub.sync.mapping import default_mapping
from racehub.sync.schemas import (
    CheckRead,
    ConnectionCreate,
    ConnectionDeleted,
    ConnectionRead,
    ConnectionUpdate,
    PreviewRead,
    PreviewRequest,
)
from racehub.sync.transforms import TARGET_FIELDS

router = APIRouter(prefix="/api", tags=["connections"])

ReadConnections = Annotated[TenantContext, Depends(require(Perm.SYNC_CONNECTION_READ))]
ManageConnections = Annotated[TenantContext, Depends(require(Perm.SYNC_CONNECTION_MANAGE))]


def get_keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


AppKeyring = Annotated[Keyring, Depends(get_keyring)]


class CredentialFieldRead(APIModel):
    key: str
    label: str
    required: bool
    password: bool
    help: str
    secret: bool = Field(description="Shown to readers of a connection only as set; "
                         "otherwise an identifier, shown with its last 4 characters")


class SettingFieldRead(APIModel):
    key: str
    label: str
    kind: SettingKind
    choices: list[str]
    help: str
    not_yet: str = Field(description="Set for a setting of a feature racehub does not offer "
                                     "yet (why); empty: racehub uses it")


class ProviderRead(APIModel):
    key: str
    label: str
    direction: Direction
    default_base_url: str
    credentials: list[CredentialFieldRead]
    credential_sets: list[list[str]] = Field(
        description="Where not empty: give every field of one of these sets")
    settings: list[SettingFieldRead]
    default_field_mapping: dict[str, str] = Field(
        description="racehub field -> the path in the provider's record the adapter reads "
                    "it from, before a connection's rules")


class ProvidersRead(APIModel):
    providers: list[ProviderRead]
    target_fields: dict[str, str]


@router.get("/providers", response_model=ProvidersRead)
def list_providers(ctx: ReadConnections) -> ProvidersRead:
    """Each provider's credential fields, own settings and default base URL, and the
    racehub fields a mapping rule may fill."""
    return ProvidersRead(
        providers=[ProviderRead(
            key=s.key, label=s.label, direction=s.direction, default_base_url=s.base_url,
            credentials=[CredentialFieldRead(**vars(f)) for f in s.credentials],
            credential_sets=[list(g) for g in s.credential_sets],
            settings=[SettingFieldRead(**{**vars(f), "choices": list(f.choices)})
                      for f in s.all_settings],
            default_field_mapping=default_mapping(s.key))
            for s in PROVIDERS.values()],
        target_fields=TARGET_FIELDS)


@router.get("/connections", response_model=list[ConnectionRead])
def list_connections(db: DB, ctx: ReadConnections, keyring: AppKeyring) -> list[ConnectionRead]:
    return [service.to_read(keyring, c) for c in service.list_connections(db, ctx)]


@router.post("/connections", response_model=ConnectionRead, status_code=201)
def create_connection(
    data: ConnectionCreate, db: DB, ctx: ManageConnections, keyring: AppKeyring
) -> ConnectionRead:
    connection = service.create_connection(db, ctx, keyring=keyring, data=data)
    db.commit()
    return service.to_read(keyring, connection)


@router.get("/connections/{connection_id}", response_model=ConnectionRead)
def read_connection(
    connection_id: uuid.UUID, db: DB, ctx: ReadConnections, keyring: AppKeyring
) -> ConnectionRead:
    return service.to_read(keyring, service.get_connection_or_raise(
        db, ctx, connection_id=connection_id))


@router.patch("/connections/{connection_id}", response_model=ConnectionRead)
def update_connection(
    connection_id: uuid.UUID, data: ConnectionUpdate, db: DB, ctx: ManageConnections,
    keyring: AppKeyring,
) -> ConnectionRead:
    connection = service.update_connection(db, ctx, keyring=keyring,
                                           connection_id=connection_id, data=data)
    db.commit()
    return service.to_read(keyring, connection)


@router.delete("/connections/{connection_id}", response_model=ConnectionDeleted)
def delete_connection(connection_id: uuid.UUID, db: DB,
                      ctx: ManageConnections) -> ConnectionDeleted:
    """Delete the connection, its credentials and its provider events (their cursors and
    category mappings); the answer lists them. Its sync runs' history and synced records
    stay. 409 while a run of one of its provider events is queued, running or retrying."""
    gone = service.delete_connection(db, ctx, connection_id=connection_id)
    db.commit()
    return ConnectionDeleted.model_validate({
        "links": gone.links, "linked_events": gone.linked_events,
        "category_links": gone.category_links, "webhook_deliveries": gone.webhook_deliveries,
        "runs_kept": gone.runs_kept, "records_kept": gone.records_kept})


@router.post("/connections/{connection_id}/test", response_model=CheckRead)
def test_connection(
    connection_id: uuid.UUID, db: DB, ctx: ManageConnections, keyring: AppKeyring
) -> CheckRead:
    """Ask the provider whether the stored credentials work (a failure is still 200: the
    answer is in ``ok`` and ``message``, and the connection's status records it)."""
    result = service.check_connection(db, ctx, keyring=keyring, connection_id=connection_id)
    db.commit()
    return result


@router.post("/connections/{connection_id}/mapping-preview", response_model=PreviewRead)
def preview_mapping(
    connection_id: uuid.UUID, data: PreviewRequest, db: DB, ctx: ManageConnections,
    keyring: AppKeyring,
) -> PreviewRead:
    """A field mapping (not saved) on a sample, through the pipeline a sync runs: the
    adapter's default mapping, then the rules sent (none: what the default mapping alone
    gives). The sample is the one sent (raw records, read by the adapter first), else a few
    participants fetched live from the provider's event ``eventId``. Each row has every
    racehub field and names those a rule gave (``fromRule``)."""
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    sample: list[Any]
    if data.sample is not None:
        sample, origin = data.sample, "pasted"
    else:
        sample = service.fetch_sample_participants(
            db, ctx, keyring=keyring, connection_id=connection_id, event_id=data.event_id,
            mapping_sources=[p for rule in data.field_mapping for p in rule.sources])
        origin = "provider"
    return service.preview_mapping(data.field_mapping, sample, origin=origin,
                                   provider=connection.provider,
                                   event_ref=(data.event_id or "").strip())


class EventChoiceRead(APIModel):
    ref: str = Field(description="The provider's event ref, as event ids and eventId take it")
    name: str
    start_at: datetime | None


@router.get("/connections/{connection_id}/events", response_model=list[EventChoiceRead])
def list_provider_events(connection_id: uuid.UUID, db: DB, ctx: ManageConnections,
                         keyring: AppKeyring) -> list[EventChoiceRead]:
    """The provider's events this connection reads (at most 200), fetched live; 422 with
    the provider's (scrubbed) answer when it cannot be reached."""
    return [EventChoiceRead(ref=e.ref, name=e.name, start_at=e.start_at)
            for e in service.list_provider_events(db, ctx, keyring=keyring,
                                                  connection_id=connection_id)]


# --- webhooks: called by the provider, not by a racehub user ------------------------------


class WebhookAck(APIModel):
    delivery_id: uuid.UUID
    received_at: datetime


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent: the mapping parses it (and repairs its text)."""
    return await request.body()


@router.post("/connections/{connection_id}/webhook", response_model=WebhookAck,
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": {"type": "object"}}}, "required": True}})
@csrf_exempt
def receive_webhook(connection_id: uuid.UUID, body: Annotated[bytes, Depends(raw_body)],
                    db: DB, keyring: AppKeyring) -> WebhookAck:
    """Copernico posts detections and changes here. No racehub login or token: the
    payload's ``apiKey`` must be the connection's API key (401 otherwise; 404 for an
    unknown connection or one of another provider). Exempt from CSRF because no cookie is
    read: nothing a browser sends on its own can authenticate it."""
    delivery = webhooks.record_delivery(db, keyring=keyring, connection_id=connection_id,
                                        body=body)
    db.commit()
    return WebhookAck(delivery_id=delivery.id, received_at=delivery.received_at)
