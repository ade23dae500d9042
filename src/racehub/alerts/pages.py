"""Pages of alerts: the list (open and past, reached from the top bar's badge), one alert
with its evidence and deliveries, the acknowledge action, and the tenant's alert settings.
Thin: service.py holds the rules; the permissions are the API's."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from racehub.alerts import service
from racehub.alerts.api import AppKeyring
from racehub.alerts.rules import TENANT_RULES
from racehub.alerts.schemas import AlertSettingsRead, AlertSettingsUpdate, RuleSetting
from racehub.core.context import TenantContext
from racehub.core.deps import DB, AppSettings, require
from racehub.core.exceptions import DomainError, Invalid
from racehub.core.rbac import Perm
from racehub.settings import Settings
from racehub.web.pages import PostedForm, form_error, render, validate_model

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadAlerts = Annotated[TenantContext, Depends(require(Perm.ALERTS_ALERT_READ))]
AckAlerts = Annotated[TenantContext, Depends(require(Perm.ALERTS_ALERT_ACK))]
ManageAlerts = Annotated[TenantContext, Depends(require(Perm.ALERTS_SETTINGS_MANAGE))]

PAST_PAGE = 50


@router.get("/alerts/settings")
def settings_page(request: Request, db: DB, ctx: ManageAlerts,
                  settings: AppSettings) -> Response:
    return _settings_page(request, db, ctx, settings)


def _settings_page(request: Request, db: Session, ctx: TenantContext, settings: Settings, *,
                   current: AlertSettingsRead | None = None, status_code: int = 200,
                   **extra: Any) -> Response:
    current = current or service.read_settings(db, ctx, settings=settings)
    return render(request, db, ctx, "alerts/settings.html", status_code=status_code,
                  current=current, **extra)


def _form_update(form: PostedForm) -> AlertSettingsUpdate:
    rules: dict[str, RuleSetting] = {}
    for rule in TENANT_RULES:
        params: dict[str, float] = {}
        for param in rule.params:
            raw = str(form.get(f"{rule.name}.{param.name}") or "").strip()
            if not raw:
                continue
            try:
                params[param.name] = float(raw)
            except ValueError:
                field = f"rules.{rule.name}.params.{param.name}"
                raise Invalid(f"{rule.title}: {param.label} must be a number",
                              field=field) from None
        rules[rule.name] = RuleSetting(enabled=form.get(f"{rule.name}.enabled") == "on",
                                       params=params)
    recipients = [a for a in re.split(r"[\s,;]+", str(form.get("email_recipients") or ""))
                  if a]
    data: dict[str, Any] = {"rules": rules, "email_recipients": recipients,
                            "webhook_url": str(form.get("webhook_url") or "").strip() or None}
    if str(form.get("repeat_hours") or "").strip():
        data["repeat_hours"] = str(form.get("repeat_hours")).strip()
    return validate_model(AlertSettingsUpdate, data)


@router.post("/alerts/settings")
def save_settings(request: Request, db: DB, ctx: ManageAlerts, settings: AppSettings,
                  keyring: AppKeyring, form: PostedForm) -> Response:
    """Save the form; a webhook URL set for the first time shows its secret once, on the
    page answering this POST (not after a redirect: it is never shown again)."""
    try:
        answer = service.update_settings(db, ctx, data=_form_update(form), keyring=keyring,
                                         settings=settings)
    except DomainError as exc:
        db.rollback()
        return _settings_page(request, db, ctx, settings, status_code=exc.status_code,
                              values=dict(form), **form_error(exc, AlertSettingsUpdate))
    db.commit()
    if answer.webhook_secret:
        return _settings_page(request, db, ctx, settings, current=answer,
                              flashes=[{"kind": "ok", "text": "Alert settings saved"}])
    return RedirectResponse("/alerts/settings?flash=" + quote_plus("Alert settings saved"),
                            status_code=303)


@router.post("/alerts/settings/webhook-secret")
def new_secret(request: Request, db: DB, ctx: ManageAlerts, settings: AppSettings,
               keyring: AppKeyring) -> Response:
    try:
        answer = service.new_webhook_secret(db, ctx, keyring=keyring, settings=settings)
    except DomainError as exc:
        db.rollback()
        return _settings_page(request, db, ctx, settings, status_code=exc.status_code,
                              **form_error(exc))
    db.commit()
    return _settings_page(request, db, ctx, settings, current=answer)


@router.get("/alerts")
def alerts_page(request: Request, db: DB, ctx: ReadAlerts) -> Response:
    """Open alerts, then past ones (keyset-paged with ``cursor``)."""
    cursor = request.query_params.get("cursor") or None
    open_alerts, _ = service.list_alerts(db, ctx, open_=True, limit=500)
    past, next_cursor = service.list_alerts(db, ctx, open_=False, cursor=cursor,
                                            limit=PAST_PAGE)
    return render(request, db, ctx, "alerts/list.html", open_alerts=open_alerts, past=past,
                  past_next=f"/alerts?cursor={quote_plus(next_cursor)}#past"
                  if next_cursor else None,
                  can_ack=ctx.can(Perm.ALERTS_ALERT_ACK),
                  can_manage=ctx.can(Perm.ALERTS_SETTINGS_MANAGE))


@router.get("/alerts/{alert_id}")
def alert_page(alert_id: uuid.UUID, request: Request, db: DB, ctx: ReadAlerts) -> Response:
    return _alert_page(request, db, ctx, alert_id)


def _alert_page(request: Request, db: Session, ctx: TenantContext, alert_id: uuid.UUID, *,
                status_code: int = 200, **extra: Any) -> Response:
    alert = service.get_alert_detail(db, ctx, alert_id=alert_id)
    return render(request, db, ctx, "alerts/alert.html", status_code=status_code, alert=alert,
                  can_ack=ctx.can(Perm.ALERTS_ALERT_ACK), **extra)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge(alert_id: uuid.UUID, request: Request, db: DB, ctx: AckAlerts,
                form: PostedForm) -> Response:
    comment = str(form.get("comment") or "")[:500]
    try:
        service.acknowledge(db, ctx, alert_id=alert_id, comment=comment)
    except DomainError as exc:
        db.rollback()
        if exc.status_code == 404:
            raise
        return _alert_page(request, db, ctx, alert_id, status_code=exc.status_code,
                           **form_error(exc))
    db.commit()
    back = "/alerts" if form.get("back") == "list" else f"/alerts/{alert_id}"
    return RedirectResponse(f"{back}?flash=" + quote_plus("Alert acknowledged: no more "
                                                          "repeats until it resolves"),
                            status_code=303)
