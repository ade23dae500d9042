"""The alerts API and pages: settings (secret shown once, fields named), lists scoped to
the tenant, acknowledge audited, the top bar's badge."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.alerts.conftest import Evaluator
from tests.factories import auth, make_tenant
from tests.sync.engine_helpers import T0, connect

from racehub.alerts import service
from racehub.alerts.models import Alert
from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.core.models import AuditEntry, Role, Tenant
from racehub.settings import Settings
from racehub.sync.models import ConnectionStatus, ProviderConnection


def _alert(db: Session, tenant: Tenant, keyring: Keyring, evaluate: Evaluator) -> Alert:
    ctx = TenantContext.system(tenant.id, label="test")
    connection = connect(db, ctx, keyring, "http://127.0.0.1:9/Rest", name=f"RSU {tenant.name}")
    connection.status = ConnectionStatus.FAILED
    evaluate(T0)
    return db.scalars(select(Alert).where(Alert.tenant_id == tenant.id)).one()


def test_settings_show_the_webhook_secret_once_and_name_the_field_at_fault(
    client: TestClient, db: Session, tenant: Tenant,
) -> None:
    """(The platform allows no private webhook address here, as in production.)"""
    headers = auth(db, tenant, Role.TENANT_ADMIN)
    defaults = client.get("/api/alerts/settings", headers=headers).json()
    rules = {r["name"]: r for r in defaults["rules"]}
    assert rules["sync_failures"]["params"] == {"threshold": 3.0}
    assert rules["stale_link"]["params"] == {"factor": 2.0} and "key_age" not in rules
    assert defaults["repeatHours"] == 24 and not defaults["webhookSecretSet"]

    saved = client.patch("/api/alerts/settings", headers=headers, json={
        "webhookUrl": "https://93.184.215.14/hooks/racehub", "repeatHours": 6,
        "emailRecipients": ["Ops@Timing.example"],
        "rules": {"sync_failures": {"params": {"threshold": 5}},
                  "stale_link": {"enabled": False}}})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["webhookSecret"].startswith("whsec_") and body["webhookSecretSet"]
    assert body["emailRecipients"] == ["ops@timing.example"] and body["repeatHours"] == 6
    again = client.get("/api/alerts/settings", headers=headers).json()
    assert again["webhookSecret"] is None and again["webhookSecretSet"]
    rules = {r["name"]: r for r in again["rules"]}
    assert rules["sync_failures"]["params"]["threshold"] == 5 and not rules["stale_link"]["enabled"]
    # A new secret on demand, shown once too.
    fresh = client.post("/api/alerts/settings/webhook-secret", headers=headers).json()
    assert fresh["webhookSecret"] not in (None, body["webhookSecret"])

    bad = client.patch("/api/alerts/settings", headers=headers, json={
        "rules": {"sync_failures": {"params": {"threshold": 0}}}})
    assert bad.status_code == 422
    assert "rules.sync_failures.params.threshold" in bad.text and "between 1" in bad.text
    app_settings = client.app.state.settings  # type: ignore[attr-defined]
    client.app.state.settings = app_settings.model_copy(  # type: ignore[attr-defined]
        update={"alert_webhook_allow_private": False})
    private = client.patch("/api/alerts/settings", headers=headers,
                           json={"webhookUrl": "http://127.0.0.1:8000/api/me"})
    assert private.status_code == 422 and "webhookUrl" in private.text
    assert "loopback" in private.text
    mail = client.patch("/api/alerts/settings", headers=headers,
                        json={"emailRecipients": ["not an address"]})
    assert mail.status_code == 422 and "emailRecipients" in mail.text


def test_alerts_are_listed_to_their_tenant_only_and_acknowledged_with_an_audit_entry(
    client: TestClient, db: Session, settings: Settings, keyring: Keyring,
    evaluate: Evaluator,
) -> None:
    mine, other = make_tenant(db), make_tenant(db)
    alert = _alert(db, mine, keyring, evaluate)
    mine_headers = auth(db, mine, Role.EVENT_MANAGER)
    other_headers = auth(db, other, Role.TENANT_ADMIN)

    listed = client.get("/api/alerts", headers=mine_headers).json()["items"]
    assert [a["id"] for a in listed] == [str(alert.id)]
    assert listed[0]["status"] == "firing" and listed[0]["title"] == "Credentials refused"
    assert client.get("/api/alerts", headers=other_headers).json()["items"] == []
    assert client.get(f"/api/alerts/{alert.id}", headers=other_headers).status_code == 404
    refused = client.post(f"/api/alerts/{alert.id}/acknowledge", headers=other_headers, json={})
    assert refused.status_code == 404
    viewer = client.post(f"/api/alerts/{alert.id}/acknowledge",
                         headers=auth(db, mine, Role.VIEWER), json={})
    assert viewer.status_code == 403

    answer = client.post(f"/api/alerts/{alert.id}/acknowledge", headers=mine_headers,
                         json={"comment": "new key on its way"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["acknowledgedAt"] is not None
    [entry] = db.scalars(select(AuditEntry).where(AuditEntry.action == "alert.acknowledge"))
    assert entry.tenant_id == mine.id and entry.target_id == str(alert.id)
    assert entry.after is not None and entry.after["comment"] == "new key on its way"
    detail = client.get(f"/api/alerts/{alert.id}", headers=mine_headers).json()
    assert detail["acknowledgeComment"] == "new key on its way"
    assert detail["deliveries"] == []  # nobody to tell: no recipient, no webhook

    # Resolved: it moves to the past list and cannot be acknowledged any more.
    ctx = TenantContext.system(mine.id, label="test")
    for connection in db.scalars(select(ProviderConnection).where(
            ProviderConnection.tenant_id == mine.id)):
        connection.status = ConnectionStatus.OK
    evaluate(T0 + timedelta(minutes=1))
    assert client.get("/api/alerts", headers=mine_headers).json()["items"] == []
    past = client.get("/api/alerts?state=past", headers=mine_headers).json()["items"]
    assert [a["id"] for a in past] == [str(alert.id)] and past[0]["resolvedAt"]
    assert service.open_count(db, ctx) == 0
    again = client.post(f"/api/alerts/{alert.id}/acknowledge", headers=mine_headers, json={})
    assert again.status_code == 409 and "resolved already" in again.text


def test_the_top_bar_badge_counts_open_alerts_and_leads_to_the_alerts_page(
    client: TestClient, db: Session, settings: Settings, keyring: Keyring,
    evaluate: Evaluator,
) -> None:
    tenant = make_tenant(db)
    headers = auth(db, tenant, Role.VIEWER)
    page = client.get("/events", headers=headers)
    assert 'id="alert-badge"' in page.text and 'class="count">0<' in page.text
    alert = _alert(db, tenant, keyring, evaluate)
    page = client.get("/events", headers=headers)
    assert 'class="alert-badge firing"' in page.text and 'class="count">1<' in page.text
    listing = client.get("/alerts", headers=headers)
    assert listing.status_code == 200 and f'data-alert-id="{alert.id}"' in listing.text
    assert "Acknowledge" not in listing.text  # a viewer may not
    detail = client.get(f"/alerts/{alert.id}", headers=headers)
    assert "Credentials refused" in detail.text and alert.fingerprint in detail.text
