"""The connections API against the RunSignUp simulator over real HTTP on 127.0.0.1:
secrets go in and never come out (responses, logs, errors), base URL rule, validation,
tenant scoping, the mapping preview."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.providers.catalog import PROVIDERS
from racehub.providers.runsignup.simulator import make_app
from racehub.providers.simulator import serve_in_thread
from tests.core.conftest import start_browser_session
from tests.factories import auth, make_tenant, make_user
from tests.sync.conftest import RSU_KEY, RSU_SECRET, audit_entries

WRONG_SECRET = "rsu-wrong-secret-Xx99Yy88"


@pytest.fixture(scope="module")
def runsignup() -> Iterator[tuple[str, Any]]:
    app = make_app(api_key=RSU_KEY, api_secret=RSU_SECRET, races=1, events_per_race=1,
                   participants_per_event=4, with_results=False)
    with serve_in_thread(app) as url:
        yield url + "/Rest", app.state.simulator


@pytest.fixture
def admin(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.TENANT_ADMIN)


@pytest.fixture
def platform_client(client: TestClient, db: Session, tenant: Tenant) -> TestClient:
    """``client`` logged in as a platform admin who is also a member of ``tenant``."""
    user = make_user(db, tenant, Role.TENANT_ADMIN, platform_admin=True)
    csrf = start_browser_session(db, client, user)
    client.headers["X-CSRF-Token"] = csrf
    return client


def _event_ref(simulator: Any) -> str:
    event_id, race_id = next(iter(simulator.race_of_event.items()))
    return f"{race_id}:{event_id}"


def test_a_connection_lifecycle_never_shows_or_logs_a_secret(
    platform_client: TestClient, db: Session, runsignup: tuple[str, Any], log_output: io.StringIO
) -> None:
    base_url, simulator = runsignup
    client = platform_client
    seen: list[str] = []

    created = client.post("/api/connections", json={
        "provider": "RUNSIGNUP", "name": "RunSignUp", "baseUrl": base_url,
        "credentials": {"api_key": RSU_KEY, "api_secret": WRONG_SECRET},
        "eventIds": [_event_ref(simulator)]})
    seen.append(created.text)
    assert created.status_code == 201, created.text
    body = created.json()
    connection_id = body["id"]
    # The key is an identifier (its last 4 tell two apart); secrets show only "set".
    assert body["credentials"] == {
        "api_key": {"set": True, "secret": False, "last4": RSU_KEY[-4:]},
        "api_secret": {"set": True, "secret": True, "last4": None},
        "access_token": {"set": False, "secret": True, "last4": None}}
    assert body["status"] == "UNTESTED" and body["baseUrl"] == base_url

    failed = client.post(f"/api/connections/{connection_id}/test")
    seen.append(failed.text)
    assert failed.status_code == 200 and failed.json()["ok"] is False
    assert "authentication failed" in failed.json()["message"].lower()

    fixed = client.patch(f"/api/connections/{connection_id}",
                         json={"credentials": {"api_secret": RSU_SECRET}})
    seen.append(fixed.text)
    assert fixed.json()["status"] == "UNTESTED"
    passed = client.post(f"/api/connections/{connection_id}/test")
    seen.append(passed.text)
    assert passed.json()["ok"] is True, passed.text
    assert passed.json()["status"] == "OK"

    seen += [client.get("/api/connections").text,
             client.get(f"/api/connections/{connection_id}").text,
             client.get("/api/audit").text]
    deleted = client.delete(f"/api/connections/{connection_id}")
    assert deleted.status_code == 200
    assert [link["providerEventRef"] for link in deleted.json()["links"]] == [
        _event_ref(simulator)]
    assert client.get(f"/api/connections/{connection_id}").status_code == 404

    logged = log_output.getvalue()
    assert "connection.tested" in logged and "connection.created" in logged
    for secret in (RSU_KEY, RSU_SECRET, WRONG_SECRET):
        # last4 is shown on purpose; anything longer is a leak.
        fragment = secret[:-4]
        assert all(fragment not in text for text in seen), secret
        assert fragment not in logged, secret
    actions = [a for a in ("connection.create", "connection.credentials_change",
                           "connection.test", "connection.delete")
               if audit_entries(db, a)]
    assert actions == ["connection.create", "connection.credentials_change", "connection.test",
                       "connection.delete"]


def test_validation_errors_name_the_field_and_never_echo_a_secret(
    client: TestClient, admin: dict[str, str]
) -> None:
    unknown = client.post("/api/connections", headers=admin, json={
        "provider": "RUNSIGNUP", "name": "x",
        "credentials": {"api_key": RSU_KEY, "api_secret": RSU_SECRET, "token": "tok-123456789"}})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "credentials.token"
    missing = client.post("/api/connections", headers=admin, json={
        "provider": "CHRONOTRACK", "name": "ct", "credentials": {"client_id": "abc"}})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "credentials.user_id"
    provider = client.post("/api/connections", headers=admin, json={
        "provider": "STRAVA", "name": "x", "credentials": {"api_key": RSU_KEY}})
    assert provider.status_code == 422 and "unknown provider 'STRAVA'" in provider.text
    for response in (unknown, missing, provider):
        assert RSU_KEY[:-4] not in response.text and RSU_SECRET[:-4] not in response.text


def test_tenant_admins_may_not_change_the_base_url(
    client: TestClient, admin: dict[str, str]
) -> None:
    refused = client.post("/api/connections", headers=admin, json={
        "provider": "RUNSIGNUP", "name": "x", "baseUrl": "http://127.0.0.1:9/Rest",
        "credentials": {"api_key": RSU_KEY, "api_secret": RSU_SECRET}})
    assert refused.status_code == 403
    assert refused.json()["errors"] == [{"field": "baseUrl", "message": refused.json()["detail"]}]
    assert "baseUrl" in refused.json()["detail"]

    created = client.post("/api/connections", headers=admin, json={
        "provider": "RUNSIGNUP", "name": "x",
        "credentials": {"api_key": RSU_KEY, "api_secret": RSU_SECRET}})
    assert created.json()["baseUrl"] == PROVIDERS["RUNSIGNUP"].base_url
    patched = client.patch(f"/api/connections/{created.json()['id']}", headers=admin,
                           json={"baseUrl": "http://127.0.0.1:9/Rest"})
    assert patched.status_code == 403 and "baseUrl" in patched.json()["detail"]


def test_connections_of_another_tenant_are_invisible(
    client: TestClient, db: Session, admin: dict[str, str]
) -> None:
    theirs = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    created = client.post("/api/connections", headers=theirs, json={
        "provider": "HAKU", "name": "Haku", "credentials": {"client_id": "client-1234567",
                                                            "client_secret": RSU_SECRET}})
    their_id = created.json()["id"]
    assert client.get("/api/connections", headers=admin).json() == []
    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(method, f"/api/connections/{their_id}", headers=admin,
                                  json={"name": "mine"} if method == "PATCH" else None)
        assert response.status_code == 404, method
    assert client.post(f"/api/connections/{their_id}/test", headers=admin).status_code == 404
    assert client.get(f"/api/connections/{their_id}", headers=theirs).json()["name"] == "Haku"


def test_the_preview_maps_a_live_sample_from_the_provider(
    platform_client: TestClient, runsignup: tuple[str, Any]
) -> None:
    base_url, simulator = runsignup
    created = platform_client.post("/api/connections", json={
        "provider": "RUNSIGNUP", "name": "RSU", "baseUrl": base_url,
        "credentials": {"api_key": RSU_KEY, "api_secret": RSU_SECRET}})
    rules = [{"target": "first_name", "sources": ["user.first_name"],
              "transforms": [{"op": "case", "mode": "upper"}]},
             {"target": "gender", "sources": ["user.gender"],
              "transforms": [{"op": "gender", "map": {"M": "M", "F": "F"}, "default": "U"}]}]
    preview = platform_client.post(
        f"/api/connections/{created.json()['id']}/mapping-preview",
        json={"fieldMapping": rules, "eventId": _event_ref(simulator)})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["sampleOrigin"] == "provider" and 1 <= len(body["rows"]) <= 5
    event_id = int(_event_ref(simulator).split(":")[1])
    expected = [p["user"]["first_name"].upper() for p in simulator.participants[event_id][:5]]
    assert [r["values"]["first_name"] for r in body["rows"]] == expected[:len(body["rows"])]
    assert all(r["values"]["gender"] in {"M", "F", "U"} for r in body["rows"])
    assert "user.first_name" in body["sourcePaths"]

    assert all(r["fromRule"] == ["first_name", "gender"] for r in body["rows"])
    # The default mapping fills the fields no rule names.
    assert [r["values"]["last_name"] for r in body["rows"]] == [
        p["user"]["last_name"] for p in simulator.participants[event_id][:len(body["rows"])]]

    pasted = platform_client.post(
        f"/api/connections/{created.json()['id']}/mapping-preview",
        json={"fieldMapping": rules, "sample": [{"user": {"first_name": "ada", "gender": "Z"}}]})
    [row] = pasted.json()["rows"]
    # Not a record RunSignUp sends (no event id): only the rules fill it.
    assert row["unreadable"] == "event_id: missing"
    assert {k: v for k, v in row["values"].items() if v is not None} == {
        "first_name": "ADA", "gender": "U"}
    assert row["errors"] == {} and row["fromRule"] == ["first_name", "gender"]
    assert pasted.json()["sampleOrigin"] == "pasted"


def test_the_preview_shows_the_default_mapping_before_any_rule(
    platform_client: TestClient, runsignup: tuple[str, Any]
) -> None:
    base_url, simulator = runsignup
    created = platform_client.post("/api/connections", json={
        "provider": "RUNSIGNUP", "name": "RSU", "baseUrl": base_url,
        "credentials": {"api_key": RSU_KEY, "api_secret": RSU_SECRET}})
    url = f"/api/connections/{created.json()['id']}/mapping-preview"
    live = platform_client.post(url, json={"fieldMapping": [], "eventId": _event_ref(simulator)})
    assert live.status_code == 200, live.text
    event_id = int(_event_ref(simulator).split(":")[1])
    sent = simulator.participants[event_id]
    rows = live.json()["rows"]
    assert rows and [r["values"]["first_name"] for r in rows] == [
        p["user"]["first_name"] for p in sent[:len(rows)]]
    assert all(r["fromRule"] == [] and r["errors"] == {} for r in rows)

    record = {"registration_id": 8, "event_id": 4, "bib_num": 12,
              "user": {"user_id": 3, "first_name": "Ada", "last_name": "Lovelace",
                       "dob": "1990-04-02", "gender": "F", "email": ""}}
    pasted = platform_client.post(url, json={
        "fieldMapping": [{"target": "team", "sources": ["user.club"]}], "sample": [record]})
    [row] = pasted.json()["rows"]
    assert row["unreadable"] is None
    assert row["values"] == {
        "first_name": "Ada", "last_name": "Lovelace", "email": None,
        "birth_date": "1990-04-02", "gender": "F", "bib": "12", "team": None, "city": None,
        "region": None, "country": None}
    assert row["fromRule"] == ["team"]
    refused = platform_client.post(url, json={
        "fieldMapping": [{"target": "chip", "sources": ["chip_num"]}], "sample": [record]})
    assert refused.status_code == 422
    assert "no field 'chip'" in refused.text and "fieldMapping" in refused.text


def test_the_provider_list_names_credentials_sets_and_settings(
    client: TestClient, admin: dict[str, str]
) -> None:
    providers = {p["key"]: p for p in client.get("/api/providers", headers=admin).json()[
        "providers"]}
    assert providers["RUNSIGNUP"]["credentialSets"] == [["api_key", "api_secret"],
                                                         ["access_token"]]
    settings = {s["key"]: s for s in providers["COPERNICO"]["settings"]}
    assert settings["results_base_url"]["kind"] == "url"
    assert settings["event_names"]["kind"] == "mapping"
    assert {s["key"]: s["choices"] for s in providers["RUNSIGNUP"]["settings"]}[
        "auth_style"] == ["header", "query"]
    defaults = providers["RUNSIGNUP"]["defaultFieldMapping"]
    assert defaults["first_name"] == "user.first_name" and "chip" not in defaults


def test_the_providers_events_are_listed_live_for_pickers(
    platform_client: TestClient, runsignup: tuple[str, Any]
) -> None:
    base_url, simulator = runsignup
    created = platform_client.post("/api/connections", json={
        "provider": "RUNSIGNUP", "name": "RSU", "baseUrl": base_url,
        "credentials": {"api_key": RSU_KEY, "api_secret": RSU_SECRET}}).json()
    events = platform_client.get(f"/api/connections/{created['id']}/events")
    assert events.status_code == 200, events.text
    assert [e["ref"] for e in events.json()] == [_event_ref(simulator)]
    race = next(iter(simulator.races.values()))
    assert events.json()[0]["name"] == f"{race['name']} · {race['events'][0]['name']}"
    assert events.json()[0]["startAt"] is not None

    # The mapping page offers them as suggestions for its event id input.
    fragment = platform_client.get(f"/connections/{created['id']}/events")
    assert f'<option value="{_event_ref(simulator)}">' in fragment.text

    platform_client.patch(f"/api/connections/{created['id']}",
                          json={"credentials": {"api_secret": WRONG_SECRET}})
    refused = platform_client.get(f"/api/connections/{created['id']}/events")
    assert refused.status_code == 422
    assert "Key authentication failed" in refused.text and WRONG_SECRET not in refused.text
    fragment = platform_client.get(f"/connections/{created['id']}/events")
    assert "the provider&#39;s events could not be read: RUNSIGNUP" in fragment.text
