"""The API tokens page: its form's problems shown beside their inputs, the expiry, and a new
secret kept out of caches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.models import ApiToken, Role, Tenant
from tests.core.conftest import start_browser_session
from tests.factories import auth, make_tenant, make_user


@pytest.fixture
def tenant(db: Session) -> Tenant:
    return make_tenant(db)


@pytest.fixture
def csrf(client: TestClient, db: Session, tenant: Tenant) -> str:
    token = start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    db.commit()  # as in production, the rows exist before the request (pages may roll back)
    return token


def tokens_of(db: Session, tenant: Tenant) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant.id)))


def test_too_long_token_name_is_422_beside_the_name_input(
    client: TestClient, db: Session, tenant: Tenant, csrf: str
) -> None:
    name = "n" * 201

    response = client.post("/settings/tokens", data={"csrf_token": csrf, "name": name,
                                                     "role": "EVENT_MANAGER"})

    assert response.status_code == 422
    assert 'name="name" aria-invalid="true" aria-describedby="name-problem"' in response.text
    assert 'id="name-problem"' in response.text
    assert "at most 200 characters" in response.text
    assert f'value="{name}"' in response.text  # kept, to shorten it
    assert '<option value="EVENT_MANAGER" selected>' in response.text
    assert tokens_of(db, tenant) == []


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"name": "  ", "role": "VIEWER"}, "name", "give the token a name"),
    ({"name": "ci", "role": "OWNER"}, "role", "VIEWER"),
    ({"name": "ci", "role": "VIEWER", "expires_at": "soon"}, "expires_at", "datetime"),
    ({"name": "ci", "role": "VIEWER", "expires_at": "2020-01-01T00:00"}, "expires_at",
     "in the future"),
    ({"name": "ci", "role": "VIEWER", "expires_at": "9999-12-31T23:59"}, "expires_at",
     "between the years 1900 and 2200"),
    ({"name": "ci", "role": "VIEWER", "expires_at": "2199-01-01T00:00"}, "expires_at",
     "at most 5 years from now"),
])
def test_other_token_form_problems_are_shown_beside_their_input(
    client: TestClient, db: Session, tenant: Tenant, csrf: str,
    form: dict[str, str], field: str, message: str,
) -> None:
    response = client.post("/settings/tokens", data={"csrf_token": csrf, **form})

    assert response.status_code == 422
    assert f'aria-describedby="{field}-problem"' in response.text
    assert message in response.text
    assert tokens_of(db, tenant) == []


def test_token_created_on_the_page_takes_its_expiry_and_is_not_cached(
    client: TestClient, db: Session, tenant: Tenant, csrf: str
) -> None:
    expiry = (datetime.now(UTC) + timedelta(days=30)).replace(second=0, microsecond=0)

    response = client.post("/settings/tokens", data={
        "csrf_token": csrf, "name": "timing laptop", "role": "RESULTS_OFFICER",
        "expires_at": expiry.strftime("%Y-%m-%dT%H:%M")})

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    (token,) = tokens_of(db, tenant)
    assert token.expires_at == expiry  # the form's time is UTC
    assert token.role == Role.RESULTS_OFFICER
    assert f"It stops working on {expiry:%Y-%m-%d %H:%M} UTC" in response.text
    assert 'id="new-token">rh_' in response.text
    listed = client.get("/settings/tokens")
    assert "cache-control" not in listed.headers  # only the answer holding the secret
    assert f"<td>{expiry:%Y-%m-%d %H:%M}</td>" in listed.text


def test_token_without_expiry_never_expires(
    client: TestClient, db: Session, tenant: Tenant, csrf: str
) -> None:
    response = client.post("/settings/tokens", data={"csrf_token": csrf, "name": "ci",
                                                     "role": "VIEWER", "expires_at": ""})
    assert response.status_code == 201
    (token,) = tokens_of(db, tenant)
    assert token.expires_at is None
    assert "<td>never</td>" in response.text


def test_api_answer_with_a_new_token_is_not_cached(client: TestClient, db: Session) -> None:
    headers = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    created = client.post("/api/tokens", json={"name": "ci", "role": "VIEWER"}, headers=headers)
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
