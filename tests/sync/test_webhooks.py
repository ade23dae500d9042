"""Copernico webhook deliveries: authenticated by the connection's API key in the payload,
stored without it, text repaired, tenants kept apart, listed on the connection page and
exported whole."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.settings import Settings
from racehub.sync import service
from racehub.sync.models import ProviderConnection, WebhookDelivery
from racehub.sync.schemas import ConnectionCreate
from tests.core.conftest import start_browser_session
from tests.exports.conftest import csv_rows, run_export_job
from tests.factories import auth, make_tenant, make_user, system_ctx

HOOK_KEY = "cop-hook-key-Lq93Xv0aZ1"
OTHER_KEY = "cop-hook-key-Other-77Pm"


def make_connection(db: Session, keyring: Keyring, tenant: Tenant, *, provider: str = "COPERNICO",
                    credentials: dict[str, str] | None = None) -> ProviderConnection:
    creds = credentials if credentials is not None else {"api_key": HOOK_KEY}
    connection = service.create_connection(
        db, replace(system_ctx(tenant), is_platform_admin=True), keyring=keyring,
        data=ConnectionCreate(provider=provider, name=f"{provider} {uuid.uuid4().hex[:6]}",
                              base_url="http://127.0.0.1:9", credentials=creds))
    db.commit()
    return connection


def delivery(**changes: Any) -> dict[str, Any]:
    return {"competitionId": "c-2026", "copernicoId": 4711, "type": "detection",
            "participantId": "ep-101", "participantsIds": ["ep-101"],
            "extraData": {"point": "km10", "location": "Puente Romano"},
            "rawTime": "09:41:07.250", "apiKey": HOOK_KEY, **changes}


def post(client: TestClient, connection_id: Any, body: dict[str, Any] | bytes) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    # No cookie, no token, no CSRF header: exactly what Copernico sends.
    return client.post(f"/api/connections/{connection_id}/webhook", content=content,
                       headers={"Content-Type": "application/json"})


def stored(db: Session, connection_id: Any) -> list[WebhookDelivery]:
    db.expire_all()
    return list(db.scalars(select(WebhookDelivery)
                           .where(WebhookDelivery.connection_id == connection_id)
                           .order_by(WebhookDelivery.received_at)))


@pytest.fixture
def copernico(db: Session, keyring: Keyring, tenant: Tenant) -> ProviderConnection:
    return make_connection(db, keyring, tenant)


def test_a_delivery_is_stored_with_its_fields_and_without_the_key(
        client: TestClient, db: Session, copernico: ProviderConnection,
        log_output: io.StringIO) -> None:
    response = post(client, copernico.id, delivery())
    assert response.status_code == 200, response.text
    [row] = stored(db, copernico.id)
    assert str(row.id) == response.json()["deliveryId"]
    assert (row.tenant_id, row.type, row.participant_id, row.participant_ids) == (
        copernico.tenant_id, "detection", "ep-101", ["ep-101"])
    assert (row.point, row.location, row.raw_time) == ("km10", "Puente Romano",
                                                       "09:41:07.250")
    assert row.payload["copernicoId"] == 4711 and "apiKey" not in row.payload
    assert HOOK_KEY not in json.dumps(row.payload)
    assert HOOK_KEY not in response.text and HOOK_KEY not in log_output.getvalue()


def test_every_delivery_is_kept(client: TestClient, db: Session,
                                copernico: ProviderConnection) -> None:
    for kind in ("creation", "modification", "detection", "deletion"):
        assert post(client, copernico.id, delivery(type=kind)).status_code == 200
    assert [d.type for d in stored(db, copernico.id)] == [
        "creation", "modification", "detection", "deletion"]


def test_double_encoded_text_is_repaired_before_it_is_stored(
        client: TestClient, db: Session, copernico: ProviderConnection) -> None:
    garbled = "José Muñoz".encode().decode("latin-1")  # "JosÃ© MuÃ±oz"
    body = delivery(extraData={"point": "meta", "location": garbled},
                    athlete={"name": "JosÃ©"})
    assert post(client, copernico.id, body).status_code == 200
    [row] = stored(db, copernico.id)
    assert row.location == "José Muñoz" and row.payload["athlete"]["name"] == "José"


@pytest.mark.parametrize("key", [OTHER_KEY, "", None, HOOK_KEY.upper(), HOOK_KEY + "x"])
def test_a_wrong_or_missing_key_is_401_and_nothing_is_stored(
        client: TestClient, db: Session, copernico: ProviderConnection, key: str | None) -> None:
    body = delivery(apiKey=key) if key is not None else {
        k: v for k, v in delivery().items() if k != "apiKey"}
    response = post(client, copernico.id, body)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "apiKey" in response.text
    for secret in (HOOK_KEY, OTHER_KEY):
        assert secret not in response.text
    assert stored(db, copernico.id) == []


def test_a_connection_without_a_key_accepts_no_delivery(
        client: TestClient, db: Session, keyring: Keyring, tenant: Tenant) -> None:
    keyless = make_connection(db, keyring, tenant, credentials={})
    assert post(client, keyless.id, delivery(apiKey="")).status_code == 401
    assert post(client, keyless.id, delivery()).status_code == 401
    assert stored(db, keyless.id) == []


def test_another_tenants_key_does_not_open_this_connection(
        client: TestClient, db: Session, keyring: Keyring, copernico: ProviderConnection) -> None:
    theirs = make_connection(db, keyring, make_tenant(db), credentials={"api_key": OTHER_KEY})
    assert post(client, copernico.id, delivery(apiKey=OTHER_KEY)).status_code == 401
    assert post(client, theirs.id, delivery(apiKey=HOOK_KEY)).status_code == 401
    assert post(client, theirs.id, delivery(apiKey=OTHER_KEY)).status_code == 200
    assert [d.tenant_id for d in stored(db, theirs.id)] == [theirs.tenant_id]
    assert stored(db, copernico.id) == []


def test_unknown_or_non_copernico_connections_are_404(
        client: TestClient, db: Session, keyring: Keyring, tenant: Tenant) -> None:
    runsignup = make_connection(db, keyring, tenant, provider="RUNSIGNUP",
                                credentials={"api_key": HOOK_KEY, "api_secret": "s-12345678"})
    for connection_id in (uuid.uuid4(), runsignup.id):
        response = post(client, connection_id, delivery())
        assert response.status_code == 404, response.text
        assert HOOK_KEY not in response.text
    assert db.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


@pytest.mark.parametrize(("body", "field"), [
    (b"not json", "body"), (json.dumps(delivery(type="lap")).encode(), "type"),
    (json.dumps(delivery(participantsIds="ep-1")).encode(), "participantsIds"),
])
def test_an_unreadable_delivery_is_422_naming_the_field(
        client: TestClient, db: Session, copernico: ProviderConnection, body: bytes,
        field: str) -> None:
    response = post(client, copernico.id, body)
    assert response.status_code == 422
    assert field in response.text and HOOK_KEY not in response.text
    assert stored(db, copernico.id) == []


def test_the_connection_page_lists_the_last_twenty_deliveries(
        client: TestClient, db: Session, tenant: Tenant, copernico: ProviderConnection) -> None:
    for n in range(23):
        assert post(client, copernico.id, delivery(participantId=f"ep-{n:03d}",
                                                   participantsIds=[])).status_code == 200
    start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    page = client.get(f"/connections/{copernico.id}")
    assert page.status_code == 200
    assert f'hx-get="/connections/{copernico.id}/webhook-deliveries"' in page.text
    fragment = client.get(f"/connections/{copernico.id}/webhook-deliveries")
    assert fragment.status_code == 200
    shown = [f"ep-{n:03d}" for n in range(23) if f"ep-{n:03d}" in fragment.text]
    assert shown == [f"ep-{n:03d}" for n in range(3, 23)]
    assert fragment.text.index("ep-022") < fragment.text.index("ep-003")  # newest first
    assert HOOK_KEY not in fragment.text



def test_who_may_only_read_connections_reaches_the_deliveries_from_the_list(
        client: TestClient, db: Session, tenant: Tenant, copernico: ProviderConnection) -> None:
    assert post(client, copernico.id, delivery(participantId="ep-777")).status_code == 200
    start_browser_session(db, client, make_user(db, tenant, Role.EVENT_MANAGER))
    listing = client.get("/connections")
    assert f'href="/connections/{copernico.id}"' not in listing.text  # the edit page: admins
    assert f'href="/connections/{copernico.id}/webhook-deliveries"' in listing.text
    page = client.get(f"/connections/{copernico.id}/webhook-deliveries")
    assert page.status_code == 200
    assert f"<title>Webhook deliveries — {copernico.name}" in page.text  # a whole page
    assert "ep-777" in page.text and "/exports/new?view=webhook_deliveries" in page.text
    fragment = client.get(f"/connections/{copernico.id}/webhook-deliveries",
                          headers={"HX-Request": "true"})
    assert "ep-777" in fragment.text and "<title>" not in fragment.text

def test_another_tenant_cannot_read_the_deliveries(
        client: TestClient, db: Session, copernico: ProviderConnection) -> None:
    assert post(client, copernico.id, delivery()).status_code == 200
    other = make_tenant(db)
    headers = auth(db, other, Role.TENANT_ADMIN)
    db.commit()
    response = client.get(f"/connections/{copernico.id}/webhook-deliveries", headers=headers)
    assert response.status_code == 404
    assert "Puente Romano" not in response.text


def test_the_whole_delivery_history_exports_as_csv(
        client: TestClient, db: Session, keyring: Keyring, tenant: Tenant, settings: Settings,
        copernico: ProviderConnection) -> None:
    other = make_connection(db, keyring, tenant, credentials={"api_key": OTHER_KEY})
    for n in range(25):  # more than the page lists
        assert post(client, copernico.id, delivery(participantId=f"ep-{n:03d}")).status_code == 200
    batch = delivery(type="deletion", participantId=None, participantsIds=["ep-7", "ep-8"],
                     extraData={}, rawTime=None)
    assert post(client, copernico.id, batch).status_code == 200
    assert post(client, other.id, delivery(apiKey=OTHER_KEY)).status_code == 200
    start_browser_session(db, client, make_user(db, tenant, Role.EVENT_MANAGER))
    fragment = client.get(f"/connections/{copernico.id}/webhook-deliveries")
    assert f"/exports/new?view=webhook_deliveries&amp;filter.connectionId={copernico.id}" in (
        fragment.text)
    form = client.get("/exports/new", params={"view": "webhook_deliveries",
                                              "filter.connectionId": str(copernico.id)})
    assert form.status_code == 200 and f"Webhook deliveries — {copernico.name}" in form.text

    headers = auth(db, tenant, Role.EVENT_MANAGER)
    created = client.post("/api/exports", headers=headers, json={
        "view": "webhook_deliveries", "filters": {"connectionId": str(copernico.id)}})
    assert created.status_code == 201, created.text
    assert created.json()["title"] == f"Webhook deliveries — {copernico.name}"
    run_export_job(lambda: contextlib.nullcontext(db), uuid.UUID(created.json()["id"]),
                   settings)
    done = client.get(f"/api/exports/{created.json()['id']}", headers=headers).json()
    rows = csv_rows(client.get(done["downloadUrl"], headers=headers).content)
    assert rows[0] == ["Received at (UTC)", "Connection", "Type", "Participant", "Point",
                       "Location", "Raw time"]
    assert len(rows) == 1 + 26  # every delivery of this connection, none of the other's
    assert rows[1][1:] == [copernico.name, "deletion", "ep-7, ep-8", "", "", ""]  # newest
    assert rows[2][1:] == [copernico.name, "detection", "ep-024", "km10", "Puente Romano",
                           "09:41:07.250"]
    assert rows[-1][3] == "ep-000"

    # Only who may read the connection may export them.
    refused = client.post("/api/exports", headers=auth(db, tenant, Role.RESULTS_OFFICER), json={
        "view": "webhook_deliveries", "filters": {"connectionId": str(copernico.id)}})
    assert refused.status_code == 403
    # Another tenant's connection is not found, and its deliveries are not exported.
    stranger = client.post("/api/exports", headers=auth(db, make_tenant(db)), json={
        "view": "webhook_deliveries", "filters": {"connectionId": str(copernico.id)}})
    assert stranger.status_code == 404
