"""Alerts, after Prometheus Alertmanager: an alert has a fingerprint (rule + subject), fires
once, repeats only after the tenant's repeat interval while still open and not
acknowledged, sends a "resolved" notice when its condition clears, and can be acknowledged
(silenced until resolved) by a person, audited.

``evaluate`` runs every minute (``tasks.py``): every rule's set-based query
(``rules.py``), then the open alerts are matched by fingerprint. A notice is one
``AlertDelivery`` per channel (e-mail to the tenant's recipients, the tenant's webhook),
written in the evaluation's transaction and sent by ``deliver_next`` (the delivery job),
retried with backoff and logged on the row.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.orm import Session

from racehub.alerts import channels
from racehub.alerts.exceptions import AlertNotFound, AlertResolved
from racehub.alerts.models import (
    Alert,
    AlertDelivery,
    AlertSettings,
    AlertStatus,
    DeliveryStatus,
    NoticeKind,
)
from racehub.alerts.rules import RULES, TENANT_RULES, Finding
from racehub.alerts.schemas import (
    AlertDetail,
    AlertRead,
    AlertSettingsRead,
    AlertSettingsUpdate,
    DeliveryRead,
    RuleRead,
)
from racehub.core import audit
from racehub.core.context import TenantContext
from racehub.core.crypto import DecryptError, Keyring
from racehub.core.exceptions import Invalid
from racehub.core.models import Tenant, User
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.settings import Settings

log = structlog.get_logger(__name__)

EVALUATION_LOCK = 724_400_022  # pg advisory lock: one evaluation at a time
DEFAULT_REPEAT_HOURS = 24
# Waits after each failed attempt; a delivery failing once more is given up.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4),
           timedelta(minutes=8), timedelta(minutes=16))
MAX_ATTEMPTS = len(BACKOFF) + 1


# --- settings ------------------------------------------------------------------------------


def _settings_row(db: Session, tenant_id: uuid.UUID) -> AlertSettings | None:
    return db.get(AlertSettings, tenant_id)


def read_settings(db: Session, ctx: TenantContext, *, settings: Settings,
                  new_secret: str | None = None) -> AlertSettingsRead:
    row = _settings_row(db, ctx.tenant_id)
    stored = row.rules if row else {}
    rules = []
    for rule in TENANT_RULES:
        own = stored.get(rule.name) or {}
        defaults = {p.name: p.default for p in rule.params}
        rules.append(RuleRead(
            name=rule.name, title=rule.title, description=rule.description,
            enabled=own.get("enabled", True), defaults=defaults,
            params={name: float(own.get(name, value)) for name, value in defaults.items()}))
    return AlertSettingsRead(
        rules=rules, repeat_hours=row.repeat_hours if row else DEFAULT_REPEAT_HOURS,
        email_recipients=list(row.email_recipients) if row else [],
        webhook_url=row.webhook_url if row else None,
        webhook_secret_set=bool(row and row.webhook_secret_encrypted),
        webhook_secret=new_secret, email_enabled=bool(settings.smtp_host))


def _checked_rules(stored: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    rules = {name: dict(value) for name, value in stored.items()}
    for name, setting in update.items():
        rule = RULES.get(name)
        if rule is None or rule.platform:
            known = ", ".join(r.name for r in TENANT_RULES)
            raise Invalid(f"rules: no rule named {name!r} (rules: {known})", field="rules")
        own = rules.setdefault(name, {})
        own["enabled"] = setting.enabled
        for param, value in setting.params.items():
            spec = next((p for p in rule.params if p.name == param), None)
            where = f"rules.{name}.params.{param}"
            if spec is None:
                raise Invalid(f"{where}: the rule {rule.title!r} has no parameter {param!r}",
                              field=where)
            if not spec.minimum <= value <= spec.maximum:
                raise Invalid(f"{where} ({spec.label}) must be between {spec.minimum:g} and "
                              f"{spec.maximum:g}", field=where)
            own[param] = value
    return rules


def update_settings(db: Session, ctx: TenantContext, *, data: AlertSettingsUpdate,
                    keyring: Keyring, settings: Settings) -> AlertSettingsRead:
    """Change what was sent. A webhook URL set for the first time gets a secret, returned
    in this answer only. The URL is refused (422 naming webhookUrl) when its host resolves
    to a private address and the platform does not allow those."""
    row = _settings_row(db, ctx.tenant_id)
    if row is None:
        row = AlertSettings(tenant_id=ctx.tenant_id, rules={}, repeat_hours=DEFAULT_REPEAT_HOURS,
                            email_recipients=[])
        db.add(row)
    before = _audit_view(row)
    changes = data.model_dump(exclude_unset=True)
    if "rules" in changes and data.rules is not None:
        row.rules = _checked_rules(row.rules or {}, data.rules)
    if data.repeat_hours is not None:
        row.repeat_hours = data.repeat_hours
    if "email_recipients" in changes:
        row.email_recipients = sorted({str(a).lower() for a in data.email_recipients or []})
    new_secret = None
    if "webhook_url" in changes:
        url = (data.webhook_url or "").strip() or None
        if url is not None:
            try:
                channels.check_url(url, allow_private=settings.alert_webhook_allow_private)
            except (channels.AddressRefused, channels.DeliveryFailed) as exc:
                raise Invalid(f"webhookUrl: {exc}", field="webhookUrl") from None
        row.webhook_url = url
        if url is not None and not row.webhook_secret_encrypted:
            new_secret = _set_secret(row, keyring)
    audit.record(db, ctx, action="alerts.settings_update", target_type="alert_settings",
                 target_id=ctx.tenant_id, before=before, after=_audit_view(row))
    db.flush()  # the answer reads the row back
    return read_settings(db, ctx, settings=settings, new_secret=new_secret)


def _audit_view(row: AlertSettings) -> dict[str, Any]:
    return {"rules": row.rules, "repeatHours": row.repeat_hours,
            "emailRecipients": row.email_recipients, "webhookUrl": row.webhook_url,
            "webhookSecretKeyId": row.webhook_secret_key_id}


def _set_secret(row: AlertSettings, keyring: Keyring) -> str:
    secret = "whsec_" + secrets.token_urlsafe(32)
    row.webhook_secret_encrypted = keyring.encrypt(secret)
    row.webhook_secret_key_id = keyring.primary_id
    return secret


def new_webhook_secret(db: Session, ctx: TenantContext, *, keyring: Keyring,
                       settings: Settings) -> AlertSettingsRead:
    """A new webhook secret (the old one stops signing at once), shown in this answer only."""
    row = _settings_row(db, ctx.tenant_id)
    if row is None or not row.webhook_url:
        raise Invalid("webhookUrl: set a webhook URL first", field="webhookUrl")
    secret = _set_secret(row, keyring)
    audit.record(db, ctx, action="alerts.webhook_secret_new", target_type="alert_settings",
                 target_id=ctx.tenant_id, after={"keyId": row.webhook_secret_key_id})
    db.flush()
    return read_settings(db, ctx, settings=settings, new_secret=secret)


def rotate_webhook_secrets(db: Session, *, keyring: Keyring, actor_label: str = "cli",
                           ) -> tuple[int, list[str]]:
    """Re-encrypt every tenant's webhook secret under the keyring's first key (``racehub
    keys rotate``). Returns (rotated, failures)."""
    rotated, failed = 0, []
    for row in db.scalars(select(AlertSettings).where(
            AlertSettings.webhook_secret_encrypted.is_not(None))
            .order_by(AlertSettings.tenant_id).with_for_update()):
        assert row.webhook_secret_encrypted is not None
        old_key = row.webhook_secret_key_id
        try:
            row.webhook_secret_encrypted = keyring.rotate(row.webhook_secret_encrypted)
        except DecryptError as exc:
            failed.append(f"{row.tenant_id}/webhook secret: {exc}")
            continue
        row.webhook_secret_key_id = keyring.primary_id
        rotated += 1
        audit.record(db, None, action="alerts.webhook_secret_rotate",
                     target_type="alert_settings", target_id=row.tenant_id,
                     tenant_id=row.tenant_id, actor_label=actor_label,
                     before={"keyId": old_key}, after={"keyId": keyring.primary_id})
    db.flush()
    return rotated, failed


# --- reading and acknowledging alerts --------------------------------------------------------


def _visible(ctx: TenantContext) -> ColumnElement[bool]:
    """The tenant's alerts; platform alerts too for a platform admin."""
    mine = Alert.tenant_id == ctx.tenant_id
    if ctx.is_platform_admin:
        return or_(mine, Alert.tenant_id.is_(None))
    return mine


def _read(alert: Alert) -> AlertRead:
    rule = RULES.get(alert.rule)
    return AlertRead(
        id=alert.id, platform=alert.tenant_id is None, rule=alert.rule,
        title=rule.title if rule else alert.rule, fingerprint=alert.fingerprint,
        subject_type=alert.subject_type, subject_id=alert.subject_id,
        subject_label=alert.subject_label, subject_url=alert.subject_url, status=alert.status,
        summary=alert.summary, evidence=alert.evidence, active_since=alert.active_since,
        fired_at=alert.fired_at, last_seen_at=alert.last_seen_at,
        last_notified_at=alert.last_notified_at, notices=alert.notices,
        resolved_at=alert.resolved_at, acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by_label,
        acknowledge_comment=alert.acknowledge_comment)


def list_alerts(db: Session, ctx: TenantContext, *, open_: bool, cursor: str | None = None,
                limit: int = 50) -> tuple[list[AlertRead], str | None]:
    """Open alerts (firing, and pending ones waiting for their rule's duration) or past
    (resolved) ones, newest first, keyset-paged."""
    check_limit(limit)
    stmt = select(Alert).where(_visible(ctx), Alert.resolved_at.is_(None) if open_
                               else Alert.resolved_at.is_not(None))
    key = SortKey(columns=[Alert.created_at, Alert.id], descending=True)
    rows = db.scalars(apply_keyset(stmt, key, cursor, limit)).all()
    page, next_cursor = split_page(rows, limit, lambda a: [a.created_at.isoformat(), a.id])
    return [_read(a) for a in page], next_cursor


def get_alert_or_raise(db: Session, ctx: TenantContext, *, alert_id: uuid.UUID) -> Alert:
    alert = db.scalar(select(Alert).where(_visible(ctx), Alert.id == alert_id))
    if alert is None:
        raise AlertNotFound()
    return alert


def get_alert_detail(db: Session, ctx: TenantContext, *, alert_id: uuid.UUID) -> AlertDetail:
    alert = get_alert_or_raise(db, ctx, alert_id=alert_id)
    deliveries = db.scalars(select(AlertDelivery).where(AlertDelivery.alert_id == alert.id)
                            .order_by(AlertDelivery.created_at, AlertDelivery.id)).all()
    return AlertDetail(**_read(alert).model_dump(),
                       deliveries=[DeliveryRead.model_validate(d) for d in deliveries])


def acknowledge(db: Session, ctx: TenantContext, *, alert_id: uuid.UUID,
                comment: str | None = None) -> AlertRead:
    """Silence an open alert until it resolves: no more repeats (its resolution is still
    told). Acknowledging it again changes nothing."""
    alert = get_alert_or_raise(db, ctx, alert_id=alert_id)
    db.refresh(alert, with_for_update=True)  # against the evaluation resolving it meanwhile
    if alert.resolved_at is not None:
        raise AlertResolved()
    if alert.acknowledged_at is None:
        alert.acknowledged_at = func.now()
        alert.acknowledged_by_user_id = ctx.user_id
        alert.acknowledged_by_label = ctx.actor_label
        alert.acknowledge_comment = (comment or "").strip() or None
        audit.record(db, ctx, action="alert.acknowledge", target_type="alert",
                     target_id=alert.id, tenant_id=alert.tenant_id,
                     after={"rule": alert.rule, "fingerprint": alert.fingerprint,
                            "comment": alert.acknowledge_comment})
        db.flush()
        db.refresh(alert)
    return _read(alert)


def open_count(db: Session, ctx: TenantContext) -> int:
    """The top bar's badge: firing alerts nobody acknowledged yet."""
    return db.scalar(select(func.count()).select_from(Alert).where(
        _visible(ctx), Alert.resolved_at.is_(None), Alert.status == AlertStatus.FIRING,
        Alert.acknowledged_at.is_(None))) or 0


# --- evaluation --------------------------------------------------------------------------------


@dataclass
class Evaluation:
    findings: int = 0
    fired: int = 0
    repeated: int = 0
    resolved: int = 0
    pending: int = 0
    deliveries: int = 0


class _Notifier:
    """Makes the deliveries of notices, reading each tenant's settings and name once."""

    def __init__(self, db: Session, *, now: datetime, settings: Settings) -> None:
        self.db, self.now, self.settings = db, now, settings
        self._tenant_settings: dict[uuid.UUID, AlertSettings | None] = {}
        self._tenant_names: dict[uuid.UUID, str] = {}
        self._platform_admins: list[str] | None = None
        self.made = 0

    def load(self, tenant_ids: set[uuid.UUID]) -> None:
        missing = tenant_ids - set(self._tenant_settings)
        if not missing:
            return
        rows = {r.tenant_id: r for r in self.db.scalars(
            select(AlertSettings).where(AlertSettings.tenant_id.in_(missing)))}
        for tenant_id in missing:
            self._tenant_settings[tenant_id] = rows.get(tenant_id)
        self._tenant_names.update(dict(self.db.execute(
            select(Tenant.id, Tenant.name).where(Tenant.id.in_(missing))).all()))

    def repeat_interval(self, tenant_id: uuid.UUID | None) -> timedelta:
        row = self._tenant_settings.get(tenant_id) if tenant_id else None
        return timedelta(hours=row.repeat_hours if row else DEFAULT_REPEAT_HOURS)

    def _recipients(self, tenant_id: uuid.UUID | None) -> list[str]:
        if tenant_id is None:
            if self._platform_admins is None:
                self._platform_admins = list(self.db.scalars(
                    select(User.email).where(User.is_platform_admin.is_(True),
                                             User.is_active.is_(True)).order_by(User.email)))
            return self._platform_admins
        row = self._tenant_settings.get(tenant_id)
        return list(row.email_recipients) if row else []

    def notify(self, alert: Alert, kind: NoticeKind) -> None:
        alert.last_notified_at = self.now
        alert.notices += 1
        tenant_name = self._tenant_names.get(alert.tenant_id) if alert.tenant_id else None
        payload = notice_payload(alert, kind, tenant_name=tenant_name, settings=self.settings)
        recipients = self._recipients(alert.tenant_id)
        if recipients:
            subject, body = email_text(payload)
            refused = None if self.settings.smtp_host else \
                "no SMTP server is configured (RACEHUB_SMTP_HOST)"
            self._add(alert, kind, "email", ", ".join(recipients),
                      {"recipients": recipients, "subject": subject, "text": body}, refused)
        row = self._tenant_settings.get(alert.tenant_id) if alert.tenant_id else None
        if row is not None and row.webhook_url and row.webhook_secret_encrypted:
            self._add(alert, kind, "webhook", row.webhook_url, payload, None)

    def _add(self, alert: Alert, kind: NoticeKind, channel: str, target: str,
             payload: dict[str, Any], refused: str | None) -> None:
        self.db.add(AlertDelivery(
            tenant_id=alert.tenant_id, alert_id=alert.id, channel=channel, kind=kind,
            target=target[:2000], payload=payload,
            status=DeliveryStatus.REFUSED if refused else DeliveryStatus.PENDING,
            error=refused, attempts=0, log=[],
            next_attempt_at=None if refused else self.now))
        self.made += 1


def notice_payload(alert: Alert, kind: NoticeKind, *, tenant_name: str | None,
                   settings: Settings) -> dict[str, Any]:
    """The webhook's JSON body (and the e-mail's source)."""
    path = f"/alerts/{alert.id}"
    return {
        "version": 1,
        "notice": kind.value,
        "status": "resolved" if kind == NoticeKind.RESOLVED else "firing",
        "tenant": ({"id": str(alert.tenant_id), "name": tenant_name}
                   if alert.tenant_id else None),
        "url": (settings.public_url.rstrip("/") + path) if settings.public_url else path,
        "alert": _read(alert).model_dump(mode="json", by_alias=True),
    }


def email_text(payload: dict[str, Any]) -> tuple[str, str]:
    alert = payload["alert"]
    state = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}[
        payload["notice"]]
    subject = f"[racehub] {state}: {alert['title']}: {alert['subjectLabel']}"
    lines = [alert["summary"], ""]
    if payload["tenant"]:
        lines.append(f"Tenant: {payload['tenant']['name']}")
    lines += [f"Since: {alert['activeSince']}",
              *([f"Resolved: {alert['resolvedAt']}"] if alert["resolvedAt"] else []),
              "", "Evidence:"]
    lines += [f"  {key}: {value}" for key, value in alert["evidence"].items()]
    lines += ["", f"Details and acknowledge: {payload['url']}"]
    if payload["notice"] != "resolved":
        lines.append("Acknowledging it stops the repeats until it resolves.")
    return subject, "\n".join(lines) + "\n"


def evaluate(db: Session, *, now: datetime, settings: Settings, keyring: Keyring,
             ) -> Evaluation | None:
    """Evaluate every rule at ``now`` and move the alerts on; None when another evaluation
    holds the lock. Does not commit (the task does)."""
    if not db.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": EVALUATION_LOCK}):
        return None
    findings: list[Finding] = []
    for rule in RULES.values():
        findings += rule.find(db, now, settings, keyring)
    open_alerts = {(a.tenant_id, a.fingerprint): a for a in db.scalars(
        select(Alert).where(Alert.resolved_at.is_(None)).with_for_update())}
    notifier = _Notifier(db, now=now, settings=settings)
    notifier.load({f.tenant_id for f in findings if f.tenant_id}
                  | {t for t, _ in open_alerts if t})
    report = Evaluation(findings=len(findings))
    seen: set[tuple[uuid.UUID | None, str]] = set()
    for finding in findings:
        key = (finding.tenant_id, finding.fingerprint)
        if key in seen:
            continue
        seen.add(key)
        alert = open_alerts.get(key)
        if alert is None:
            alert = Alert(id=uuid.uuid4(), tenant_id=finding.tenant_id, rule=finding.rule,
                          fingerprint=finding.fingerprint, status=AlertStatus.PENDING,
                          active_since=now, notices=0)
            db.add(alert)
        alert.subject_type, alert.subject_id = finding.subject_type, finding.subject_id
        alert.subject_label = finding.subject_label[:400]
        alert.subject_url = finding.subject_url
        alert.summary = finding.summary[:1000]
        alert.evidence = finding.evidence
        alert.last_seen_at = now
        if alert.status == AlertStatus.PENDING:
            if now - alert.active_since >= finding.hold:
                alert.status, alert.fired_at = AlertStatus.FIRING, now
                db.flush()  # the deliveries refer to it
                notifier.notify(alert, NoticeKind.FIRING)
                report.fired += 1
                log.info("alert.fired", alert_id=str(alert.id), rule=alert.rule,
                         tenant_id=str(alert.tenant_id), fingerprint=alert.fingerprint)
            else:
                report.pending += 1
        elif (alert.acknowledged_at is None and alert.last_notified_at is not None
              and now - alert.last_notified_at >= notifier.repeat_interval(alert.tenant_id)):
            notifier.notify(alert, NoticeKind.REPEAT)
            report.repeated += 1
    for key, alert in open_alerts.items():
        if key in seen:
            continue
        if alert.status == AlertStatus.PENDING:
            db.delete(alert)  # it never fired: nobody was told, nothing to resolve
            continue
        alert.status, alert.resolved_at = AlertStatus.RESOLVED, now
        notifier.notify(alert, NoticeKind.RESOLVED)
        report.resolved += 1
        log.info("alert.resolved", alert_id=str(alert.id), rule=alert.rule,
                 tenant_id=str(alert.tenant_id), fingerprint=alert.fingerprint)
    report.deliveries = notifier.made
    db.flush()
    return report


# --- deliveries ----------------------------------------------------------------------------------


def deliver_next(db: Session, *, now: datetime, settings: Settings, keyring: Keyring,
                 ) -> AlertDelivery | None:
    """Make one attempt of the oldest due delivery (rows another job holds are skipped) and
    record it; None when nothing is due. Does not commit (the task commits each)."""
    delivery = db.scalar(
        select(AlertDelivery).where(AlertDelivery.status == DeliveryStatus.PENDING,
                                    AlertDelivery.next_attempt_at <= now)
        .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id).limit(1)
        .with_for_update(skip_locked=True))
    if delivery is None:
        return None
    attempt(db, delivery, now=now, settings=settings, keyring=keyring)
    return delivery


def _send(db: Session, delivery: AlertDelivery, *, settings: Settings,
          keyring: Keyring) -> str:
    if delivery.channel == "email":
        return channels.send_email(list(delivery.payload["recipients"]),
                                   subject=delivery.payload["subject"],
                                   body=delivery.payload["text"], settings=settings)
    row = db.get(AlertSettings, delivery.tenant_id) if delivery.tenant_id else None
    if row is None or not row.webhook_secret_encrypted:
        raise channels.AddressRefused("the tenant has no webhook secret any more")
    try:
        secret = keyring.decrypt(row.webhook_secret_encrypted)
    except DecryptError as exc:
        raise channels.DeliveryFailed(str(exc), retryable=False) from None
    return channels.post_webhook(delivery.target, secret=secret, payload=delivery.payload,
                                 delivery_id=str(delivery.id),
                                 event=f"alert.{delivery.payload['status']}",
                                 settings=settings)


def attempt(db: Session, delivery: AlertDelivery, *, now: datetime, settings: Settings,
            keyring: Keyring) -> None:
    delivery.attempts += 1
    delivery.last_attempt_at = now
    try:
        detail = _send(db, delivery, settings=settings, keyring=keyring)
    except channels.AddressRefused as exc:
        ok, detail = False, str(exc)
        delivery.status, delivery.next_attempt_at = DeliveryStatus.REFUSED, None
    except channels.DeliveryFailed as exc:
        ok, detail = False, str(exc)
        if exc.retryable and delivery.attempts < MAX_ATTEMPTS:
            delivery.next_attempt_at = now + BACKOFF[delivery.attempts - 1]
            detail += f"; next attempt at {delivery.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
        else:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
    else:
        ok = True
        delivery.status, delivery.sent_at, delivery.next_attempt_at = (
            DeliveryStatus.SENT, now, None)
    delivery.error = None if ok else detail[:1000]
    delivery.log = [*delivery.log, {"at": now.isoformat(), "ok": ok, "detail": detail[:500]}]
    log.info("alert.delivery", delivery_id=str(delivery.id), alert_id=str(delivery.alert_id),
             tenant_id=str(delivery.tenant_id), channel=delivery.channel, ok=ok,
             status=delivery.status.value, attempt=delivery.attempts, detail=detail[:300])
    db.flush()


__all__ = ["Evaluation", "acknowledge", "deliver_next", "evaluate", "list_alerts",
           "open_count", "read_settings", "update_settings"]
