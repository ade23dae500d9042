"""The connection pages without a browser: errors re-render the form without echoing a
credential, the base URL rule, and the mapping editor's notation errors."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.sync import service
from racehub.sync.models import ProviderConnection
from tests.core.conftest import start_browser_session
from tests.factories import make_user

TYPED_SECRET = "typed-secret-Gg5Ff4Dd3"


@pytest.fixture
def browser(client: TestClient, db: Session, tenant: Tenant) -> TestClient:
    csrf = start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    client.headers["X-CSRF-Token"] = csrf
    db.commit()  # as in production: a refused form rolls the request's work back
    return client


def test_a_refused_form_names_the_field_and_does_not_echo_the_secret(
    browser: TestClient
) -> None:
    response = browser.post("/connections/new", data={
        "provider": "RUNSIGNUP", "name": "RSU", "cred_api_secret": TYPED_SECRET})
    assert response.status_code == 422
    assert ("credentials.api_key: RunSignUp needs an API key and API secret, or an OAuth "
            "access token") in response.text
    assert TYPED_SECRET not in response.text
    assert 'value="RSU"' in response.text  # the rest of the form is kept


def test_the_form_refuses_a_base_url_change_by_a_tenant_admin(browser: TestClient) -> None:
    page = browser.get("/connections/new?provider=HAKU")
    assert 'name="base_url"' in page.text and "readonly" in page.text
    response = browser.post("/connections/new", data={
        "provider": "HAKU", "name": "Haku", "base_url": "http://127.0.0.1:9",
        "cred_client_id": "client-123456", "cred_client_secret": TYPED_SECRET})
    assert response.status_code == 403
    assert "baseUrl: only a platform admin" in response.text
    assert TYPED_SECRET not in response.text


def test_blank_credential_inputs_keep_the_stored_values(
    browser: TestClient, db: Session, tenant: Tenant, app  # type: ignore[no-untyped-def]
) -> None:
    created = browser.post("/connections/new", data={
        "provider": "HAKU", "name": "Haku", "cred_client_id": "client-123456",
        "cred_client_secret": TYPED_SECRET}, follow_redirects=False)
    assert created.status_code == 303
    connection_id = created.headers["location"].split("/")[2].split("?")[0]
    saved = browser.post(f"/connections/{connection_id}", data={
        "name": "Haku renamed", "cred_client_id": "", "cred_client_secret": "",
        "event_ids": "E1, E2"}, follow_redirects=False)
    assert saved.status_code == 303
    row = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert row is not None and row.name == "Haku renamed"
    assert service.chosen_events(row) == ["E1", "E2"]  # as link rows, not a setting
    assert "eventIds" not in row.settings
    assert service.read_credentials(app.state.keyring, row)["client_secret"] == TYPED_SECRET
    page = browser.get(f"/connections/{connection_id}")
    # The client id is an identifier: its last 4 show. The secret shows only as set.
    assert TYPED_SECRET[:-4] not in page.text and TYPED_SECRET[-4:] not in page.text
    assert "ends in 3456" in page.text


def test_the_mapping_editor_names_the_row_and_step_at_fault(browser: TestClient) -> None:
    created = browser.post("/connections/new", data={
        "provider": "HAKU", "name": "Haku", "cred_client_id": "client-123456",
        "cred_client_secret": TYPED_SECRET}, follow_redirects=False)
    connection_id = created.headers["location"].split("/")[2].split("?")[0]
    response = browser.post(f"/connections/{connection_id}/mapping", data={
        "target_0": "first_name", "sources_0": "person_full_name", "transforms_0": "first",
        "target_1": "gender", "sources_1": "gender", "transforms_1": "trim | gender:f"})
    assert response.status_code == 422
    assert "row 2 (gender): step 2 (&#39;gender:f&#39;)" in response.text
    assert 'value="person_full_name"' in response.text  # what was typed stays
    duplicate = browser.post(f"/connections/{connection_id}/mapping", data={
        "target_0": "city", "sources_0": "a", "target_1": "city", "sources_1": "b"})
    assert duplicate.status_code == 422 and "two rules fill &#39;city&#39;" in duplicate.text
    preview = browser.post(f"/connections/{connection_id}/mapping/preview", data={
        "target_0": "city", "sources_0": "a", "sample": "[{oops"})
    assert preview.status_code == 200  # a partial htmx swaps in, with the error
    assert "sample: not valid JSON (line 1, column 3" in preview.text


def test_the_form_edits_the_providers_own_settings(
    browser: TestClient, db: Session
) -> None:
    page = browser.get("/connections/new?provider=COPERNICO")
    assert 'name="setting_preset_owner"' in page.text
    assert re.search(r'name="setting_results_base_url"[^>]*readonly', page.text)
    created = browser.post("/connections/new", data={
        "provider": "COPERNICO", "name": "Copernico", "setting_preset_owner": "t@example.com",
        "setting_event_names": "E1 = marathon", "setting_results_base_url": ""},
        follow_redirects=False)
    assert created.status_code == 303, created.text
    connection_id = created.headers["location"].split("/")[2].split("?")[0]
    row = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert row is not None
    assert service.provider_settings(row) == {"preset_owner": "t@example.com",
                                              "event_names": {"E1": "marathon"}}
    page = browser.get(f"/connections/{connection_id}")
    assert ">E1 = marathon</textarea>" in page.text

    refused = browser.post(f"/connections/{connection_id}", data={
        "name": "Copernico", "setting_event_names": "just text"})
    assert refused.status_code == 422
    assert "settings.event_names: line 1: write key = value" in refused.text
    assert "just text</textarea>" in refused.text  # what was typed is kept


def test_a_stored_rule_of_a_field_no_longer_offered_is_named_not_a_crash(
    browser: TestClient, db: Session
) -> None:
    created = browser.post("/connections/new", data={
        "provider": "HAKU", "name": "Haku", "cred_client_id": "client-123456",
        "cred_client_secret": TYPED_SECRET}, follow_redirects=False)
    connection_id = created.headers["location"].split("/")[2].split("?")[0]
    row = db.get(ProviderConnection, uuid.UUID(connection_id))
    assert row is not None
    row.field_mapping = [{"target": "chip", "sources": ["chip_number"], "transforms": []},
                         {"target": "team", "sources": ["team.name"], "transforms": []}]
    db.commit()
    page = browser.get(f"/connections/{connection_id}/mapping")
    assert page.status_code == 200
    assert "rule 1 (chip): racehub participants have no field" in page.text
    # The default mapping the rules override, from the adapter's own table.
    assert "<code>detail.participant.first_name</code>" in page.text
    assert 'value="team.name"' in page.text
    read = browser.get(f"/api/connections/{connection_id}")
    assert read.status_code == 200
    assert [r["target"] for r in read.json()["fieldMapping"]] == ["chip", "team"]
