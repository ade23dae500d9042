"""Readers of a connection see a secret only as "set"; only identifiers that are not secret
show their last 4 characters, on the API and on the connection page alike."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.crypto import Keyring
from racehub.core.models import Role, Tenant
from racehub.providers.catalog import PROVIDERS, CredentialField
from racehub.sync import service
from racehub.sync.schemas import ConnectionCreate
from tests.core.conftest import start_browser_session
from tests.factories import auth, make_user, system_ctx

# Pinned here, not read from the catalog: loosening a field there fails this test.
IDENTIFIERS = {
    "RUNSIGNUP": {"api_key"},
    "RACE_ROSTER": {"client_id", "username"},
    "HAKU": {"client_id"},
    "CHRONOTRACK": {"client_id", "user_id"},
    "COPERNICO": set(),
}
SECRETS = {
    "RUNSIGNUP": {"api_secret", "access_token"},
    "RACE_ROSTER": {"client_secret", "password"},
    "HAKU": {"client_secret"},
    "CHRONOTRACK": {"user_pass"},
    "COPERNICO": {"api_key"},
}


def value_of(field: str, n: int) -> str:
    # Long and distinctive, down to the last 4 characters: any echo is found by a search.
    return f"{field}-{uuid.uuid4().hex[:10]}-Zq{n:02d}"


def make_full_connection(db: Session, keyring: Keyring, tenant: Tenant,
                         provider: str) -> tuple[uuid.UUID, dict[str, str]]:
    spec = PROVIDERS[provider]
    credentials = {f.key: value_of(f.key, n) for n, f in enumerate(spec.credentials)}
    connection = service.create_connection(
        db, replace(system_ctx(tenant), is_platform_admin=True), keyring=keyring,
        data=ConnectionCreate(provider=provider, name=f"{provider} full",
                              base_url="http://127.0.0.1:9", credentials=credentials))
    db.commit()
    return connection.id, credentials


def test_the_catalog_marks_every_credential_field_secret_or_identifier() -> None:
    assert set(PROVIDERS) == set(SECRETS) == set(IDENTIFIERS)
    for key, spec in PROVIDERS.items():
        assert {f.key for f in spec.credentials if f.secret} == SECRETS[key], key
        assert {f.key for f in spec.credentials if not f.secret} == IDENTIFIERS[key], key
    with pytest.raises(ValueError, match="a password is always a secret"):
        CredentialField("pw", "Password", password=True, secret=False)


def test_the_provider_list_says_which_fields_are_secret(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    providers = client.get("/api/providers", headers=auth(db, tenant, Role.EVENT_MANAGER)).json()
    fields = {(p["key"], f["key"]): f["secret"] for p in providers["providers"]
              for f in p["credentials"]}
    assert fields == {(p, k): k in SECRETS[p] for p in SECRETS
                      for k in SECRETS[p] | IDENTIFIERS[p]}


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_a_connection_reader_sees_secrets_only_as_set(
    client: TestClient, db: Session, keyring: Keyring, tenant: Tenant, provider: str
) -> None:
    connection_id, credentials = make_full_connection(db, keyring, tenant, provider)
    response = client.get(f"/api/connections/{connection_id}",
                          headers=auth(db, tenant, Role.EVENT_MANAGER))
    assert response.status_code == 200, response.text
    hints = response.json()["credentials"]
    for key, value in credentials.items():
        if key in SECRETS[provider]:
            assert hints[key] == {"set": True, "secret": True, "last4": None}, key
            assert value[-4:] not in response.text, key
        else:
            assert hints[key] == {"set": True, "secret": False, "last4": value[-4:]}, key
        assert value[:-4] not in response.text, key


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_the_connection_page_shows_only_identifiers_last_4(
    client: TestClient, db: Session, keyring: Keyring, tenant: Tenant, provider: str
) -> None:
    connection_id, credentials = make_full_connection(db, keyring, tenant, provider)
    start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    page = client.get(f"/connections/{connection_id}")
    assert page.status_code == 200, page.text
    for key, value in credentials.items():
        secret = key in SECRETS[provider]
        assert f'name="cred_{key}"' in page.text
        assert f'data-secret="{"true" if secret else "false"}"' in page.text.split(
            f'name="cred_{key}"', 1)[1].split(">", 1)[0]
        assert (f"ends in {value[-4:]}" in page.text) is not secret, key
        if secret:
            assert value[-4:] not in page.text, key
        assert value[:-4] not in page.text, key
