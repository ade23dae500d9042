"""Errors: application/problem+json for the API (naming the field at fault), pages for HTML."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from tests.factories import auth, make_event, make_tenant

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("errors", [])]


@pytest.fixture
def tenant(db: Session) -> Tenant:
    return make_tenant(db)


@pytest.fixture
def headers(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.TENANT_ADMIN)


def test_missing_field_is_named(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/api/events", headers=headers, json={"startAt": "2026-05-01T08:00"})
    body = assert_problem(response, 422)
    assert fields(body) == ["name"]
    assert body["detail"].startswith("name: ")
    assert body["instance"] == "/api/events"


def test_fields_are_named_as_sent_in_camel_case(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.post("/api/events", headers=headers, json={"name": "Trail"})
    assert fields(assert_problem(response, 422)) == ["startAt"]


def test_unknown_timezone_is_named_with_a_hint(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/api/events", headers=headers, json={
        "name": "Trail", "startAt": "2026-05-01T08:00", "timezone": "Mars/Olympus"})
    body = assert_problem(response, 422)
    assert fields(body) == ["timezone"]
    assert "unknown time zone 'Mars/Olympus'; use an IANA name like Europe/Paris" in (
        body["errors"][0]["message"])


def test_nested_field_is_named_with_its_path(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    event = make_event(db, tenant)
    response = client.post(f"/api/events/{event.id}/participants", headers=headers, json={
        "person": {"firstName": "Ada", "lastName": "Lovelace", "email": "not-an-address"}})
    assert fields(assert_problem(response, 422)) == ["person.email"]


def test_every_invalid_field_is_listed(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/api/events", headers=headers, json={
        "name": "", "startAt": "soon", "status": "maybe"})
    assert sorted(fields(assert_problem(response, 422))) == ["name", "startAt", "status"]


def test_query_and_path_parameters_are_named(client: TestClient, headers: dict[str, str]) -> None:
    assert fields(assert_problem(client.get("/api/events?limit=0", headers=headers), 422)) \
        == ["limit"]
    assert fields(assert_problem(client.get("/api/events/42", headers=headers), 422)) \
        == ["event_id"]


def test_malformed_json_is_a_problem_not_a_crash(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.post("/api/events", headers={**headers, "content-type": "application/json"},
                           content=b'{"name": ')
    body = assert_problem(response, 422)
    assert body["errors"] == [{"field": "body",
                               "message": "the body is not valid JSON (at character 9)"}]


def test_domain_errors_map_to_their_status_and_name_their_field(
    client: TestClient, db: Session, tenant: Tenant, headers: dict[str, str]
) -> None:
    event = make_event(db, tenant)
    url = f"/api/events/{event.id}/categories"
    assert client.post(url, headers=headers, json={"name": "10K"}).status_code == 201

    conflict = assert_problem(client.post(url, headers=headers, json={"name": "10K"}), 409)
    not_found = assert_problem(client.get("/api/events/00000000-0000-4000-8000-000000000000",
                                          headers=headers), 404)

    assert conflict["title"] == "Conflict"
    assert conflict["errors"] == [{"field": "name", "message": conflict["detail"]}]
    assert "'10K'" in conflict["detail"]
    assert (not_found["title"], not_found["detail"]) == ("Not found", "event not found")
    assert "errors" not in not_found


def test_unknown_api_path_and_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/api/nothing-here"), 404)
    assert_problem(client.put("/api/me"), 405)


def test_unknown_page_is_an_html_page(client: TestClient) -> None:
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def test_unexpected_error_is_a_500_problem_without_internals(
    app: FastAPI, headers: dict[str, str]
) -> None:
    def explode() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.router.add_api_route("/api/test-explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/test-explode")
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text
    assert "request id" in body["detail"]
