"""JSON API of alerts: list them (open or past), read one with its deliveries, acknowledge
it; read and change the tenant's alert settings. Thin: service.py holds the rules."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from racehub.alerts import service
from racehub.alerts.schemas import (
    AcknowledgeRequest,
    AlertDetail,
    AlertRead,
    AlertSettingsRead,
    AlertSettingsUpdate,
)
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.deps import DB, AppSettings, require
from racehub.core.pagination import Page
from racehub.core.rbac import Perm

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

ReadAlerts = Annotated[TenantContext, Depends(require(Perm.ALERTS_ALERT_READ))]
AckAlerts = Annotated[TenantContext, Depends(require(Perm.ALERTS_ALERT_ACK))]
ManageAlerts = Annotated[TenantContext, Depends(require(Perm.ALERTS_SETTINGS_MANAGE))]


def get_keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


AppKeyring = Annotated[Keyring, Depends(get_keyring)]


# Declared before /{alert_id}, so "settings" is never read as an id.
@router.get("/settings", response_model=AlertSettingsRead)
def read_settings(db: DB, ctx: ManageAlerts, settings: AppSettings) -> AlertSettingsRead:
    """The tenant's rules (each with its defaults), repeat interval, e-mail recipients and
    webhook URL (its secret only as "set")."""
    return service.read_settings(db, ctx, settings=settings)


@router.patch("/settings", response_model=AlertSettingsRead, response_model_exclude_none=False)
def update_settings(data: AlertSettingsUpdate, db: DB, ctx: ManageAlerts, settings: AppSettings,
                    keyring: AppKeyring) -> AlertSettingsRead:
    """Change what is sent. Setting a webhook URL for the first time answers its signing
    secret (``webhookSecret``) once: it is never shown again (POST
    /api/alerts/settings/webhook-secret makes a new one)."""
    answer = service.update_settings(db, ctx, data=data, keyring=keyring, settings=settings)
    db.commit()
    return answer


@router.post("/settings/webhook-secret", response_model=AlertSettingsRead)
def new_webhook_secret(db: DB, ctx: ManageAlerts, settings: AppSettings,
                       keyring: AppKeyring) -> AlertSettingsRead:
    """A new webhook signing secret, answered once; the old one stops signing at once."""
    answer = service.new_webhook_secret(db, ctx, keyring=keyring, settings=settings)
    db.commit()
    return answer


@router.get("", response_model=Page[AlertRead])
def list_alerts(db: DB, ctx: ReadAlerts,
                state: Annotated[Literal["open", "past"], Query()] = "open",
                cursor: str | None = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Page[AlertRead]:
    """Open alerts (firing, or pending their rule's duration) or past (resolved) ones, newest
    first; a platform admin also sees platform alerts (``platform``: true)."""
    items, next_cursor = service.list_alerts(db, ctx, open_=state == "open", cursor=cursor,
                                             limit=limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{alert_id}", response_model=AlertDetail)
def read_alert(alert_id: uuid.UUID, db: DB, ctx: ReadAlerts) -> AlertDetail:
    """One alert with its evidence and every notice sent about it (the delivery log)."""
    return service.get_alert_detail(db, ctx, alert_id=alert_id)


@router.post("/{alert_id}/acknowledge", response_model=AlertRead)
def acknowledge(alert_id: uuid.UUID, db: DB, ctx: AckAlerts,
                data: AcknowledgeRequest | None = None) -> AlertRead:
    """Silence an open alert until it resolves (no more repeats); audited."""
    answer = service.acknowledge(db, ctx, alert_id=alert_id,
                                 comment=data.comment if data else None)
    db.commit()
    return answer
