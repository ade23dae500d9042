"""Copernico webhook deliveries: authenticate and store one, list a connection's latest.

Copernico posts each detection/creation/modification/deletion to
``POST /api/connections/{connection_id}/webhook``. The caller is Copernico, not a racehub
user, so there is no session, token or CSRF cookie: the connection id in the URL plus the
payload's ``apiKey``, compared in constant time with the connection's stored ``api_key``
credential, authenticate it. An unknown id or another provider's connection is 404, a
wrong key 401; neither answer echoes the key, and the stored payload never contains it.
Text arrives often double-encoded ("JosÃ©"): it is repaired before it is stored.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import DecryptError, Keyring
from racehub.core.exceptions import Invalid, NotAuthenticated
from racehub.core.query import scoped
from racehub.providers.copernico.mapping import CopernicoWebhook, WebhookError, parse_webhook
from racehub.sync import results_schedule, service
from racehub.sync.exceptions import ConnectionNotFound
from racehub.sync.models import ProviderConnection, WebhookDelivery

log = structlog.get_logger(__name__)

WEBHOOK_PROVIDERS = frozenset({"COPERNICO"})
LIST_LIMIT = 20
MAX_BODY_BYTES = 256 * 1024  # one delivery is a few hundred bytes


# --- service -----------------------------------------------------------------------------


def _webhook_connection(db: Session, *, connection_id: uuid.UUID) -> ProviderConnection:
    # Not tenant-scoped: the caller has no tenant yet. The id only finds the row; the key
    # check below decides, and the tenant then comes from the connection itself.
    connection = db.scalar(select(ProviderConnection)
                           .where(ProviderConnection.id == connection_id))
    if connection is None or connection.provider not in WEBHOOK_PROVIDERS:
        raise ConnectionNotFound()
    return connection


def _check_key(keyring: Keyring, connection: ProviderConnection, hook: CopernicoWebhook) -> None:
    try:
        stored = service.read_credentials(keyring, connection).get("api_key") or ""
    except DecryptError:
        stored = ""  # no key we can read: nothing can match
    sent = hook.api_key or ""
    # Compare even when nothing is stored, so a miss takes as long as a wrong key.
    same = hmac.compare_digest(stored.encode(), sent.encode())
    if not stored or not sent or not same:
        raise NotAuthenticated("apiKey: missing or not this connection's API key",
                               field="apiKey")


def _now() -> datetime:
    return datetime.now(UTC)


def record_delivery(db: Session, *, keyring: Keyring, connection_id: uuid.UUID,
                    body: bytes, now: datetime | None = None) -> WebhookDelivery:
    """Authenticate one delivery and store it; a delivery for a linked race asks for a
    results pull of it (``results_schedule.debounce_webhook``)."""
    connection = _webhook_connection(db, connection_id=connection_id)
    if len(body) > MAX_BODY_BYTES:
        raise Invalid(f"body: larger than {MAX_BODY_BYTES} bytes", field="body")
    try:
        hook = parse_webhook(body)
    except WebhookError as exc:
        raise Invalid(str(exc), field=exc.field) from None
    _check_key(keyring, connection, hook)
    delivery = WebhookDelivery(
        tenant_id=connection.tenant_id, connection_id=connection.id, type=hook.type,
        participant_id=hook.participant_id, participant_ids=hook.participant_ids,
        point=hook.point, location=hook.location, raw_time=hook.raw_time,
        payload=hook.payload,
        # The arrival instant, not the transaction's start (now()): the page orders by it.
        received_at=datetime.now(UTC))
    db.add(delivery)
    db.flush()  # id and received_at for the acknowledgement
    # A linked race's results changed: a pull, debounced (at most one a minute per link).
    pulls = results_schedule.debounce_webhook(db, connection, hook, now=now or _now())
    log.info("webhook.received", connection_id=str(connection.id), type=hook.type,
             delivery_id=str(delivery.id), pulls=len(pulls))
    return delivery


def list_deliveries(db: Session, ctx: TenantContext, *, connection_id: uuid.UUID,
                    limit: int = LIST_LIMIT) -> tuple[ProviderConnection, list[WebhookDelivery]]:
    """One of the tenant's connections (404 for another's) and its newest deliveries."""
    connection = service.get_connection_or_raise(db, ctx, connection_id=connection_id)
    deliveries = db.scalars(scoped(ctx, WebhookDelivery)
                            .where(WebhookDelivery.connection_id == connection_id)
                            .order_by(WebhookDelivery.received_at.desc(),
                                      WebhookDelivery.id.desc())
                            .limit(limit))
    return connection, list(deliveries)
