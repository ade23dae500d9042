"""The request gate: the caller is known, and anonymous or oversized bodies are refused,
before the body is read (web/gate.py).

The big bodies here are generated chunk by chunk as the app asks for them, through a
``receive`` that counts what the app took: the TestClient would build them whole first.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.orm import Session

from racehub.core.models import Role
from racehub.web.gate import ANONYMOUS_BODIES, anonymous_body
from tests.core.conftest import ClientFactory, start_browser_session
from tests.factories import auth, make_number_type, make_tenant, make_user

KB = 1024
MB = 1024 * KB
CHUNK = 64 * KB
FEW_KB = 4 * KB
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class Drive:
    """One request sent straight to the ASGI app, its body produced lazily."""

    def __init__(self, app: FastAPI, method: str, path: str, headers: dict[str, str],
                 body_size: int, *, content_length: bool = False,
                 content_type: str = "application/json") -> None:
        self.taken = 0  # body bytes the app received
        self.sent: list[dict[str, Any]] = []
        pairs = {"host": "testserver", "content-type": content_type,
                 **{k.lower(): v for k, v in headers.items()}}
        if content_length:
            pairs["content-length"] = str(body_size)
        else:
            pairs["transfer-encoding"] = "chunked"
        chunks = self._chunks(body_size)

        async def receive() -> dict[str, Any]:
            chunk = next(chunks, None)
            if chunk is None:
                return {"type": "http.request", "body": b"", "more_body": False}
            self.taken += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: dict[str, Any]) -> None:
            self.sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
            "headers": [(k.encode(), v.encode()) for k, v in pairs.items()],
        }
        asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]

    @staticmethod
    def _chunks(size: int) -> Iterator[bytes]:
        # A JSON document of ``size`` bytes, made as it is read: '{"name": "xxx..."}'.
        head, tail = b'{"name": "', b'"}'
        yield head
        left = size - len(head) - len(tail)
        while left > 0:
            yield b"x" * min(CHUNK, left)
            left -= CHUNK
        yield tail

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.sent[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


# --- anonymous bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("content_length", [True, False], ids=["length", "chunked"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer rh_unknown"},
                                     {"Authorization": "Basic dXNlcjpwdw=="}],
                         ids=["nobody", "unknown token", "not bearer"])
def test_an_anonymous_48_mb_json_is_refused_before_its_body_is_read(
    app: FastAPI, db: Session, headers: dict[str, str], content_length: bool
) -> None:
    sent = Drive(app, "POST", "/api/events", headers, 48 * MB, content_length=content_length)
    assert sent.status == 401, sent.body[:300]
    assert sent.taken <= FEW_KB
    problem = json.loads(sent.body)
    assert problem["status"] == 401 and problem["request_id"] == sent.headers["x-request-id"]
    assert sent.headers["content-type"] == "application/problem+json"
    assert "content-security-policy" in sent.headers


def test_an_anonymous_form_post_to_a_page_is_refused_before_its_body_is_read(
    app: FastAPI, db: Session,
) -> None:
    # A session cookie that no longer opens a session counts as nobody.
    sent = Drive(app, "POST", "/events/new",
                 {"cookie": "racehub_session=expired; racehub_csrf=abc"}, 48 * MB,
                 content_type="application/x-www-form-urlencoded")
    assert sent.status == 403
    assert sent.taken <= FEW_KB
    assert sent.headers["content-type"].startswith("text/html")
    assert b"not logged in" in sent.body


def test_an_anonymous_request_without_a_body_still_gets_the_apps_own_answer(
    client: TestClient,
) -> None:
    # GET pages send the browser to the login form; the API says how to authenticate, or
    # that the method is wrong.
    assert client.put("/api/me").status_code == 405
    page = client.get("/events", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/events"
    api = client.get("/api/events", headers={"Authorization": "Bearer rh_unknown"})
    assert api.status_code == 401
    assert api.json()["detail"] == "API token is unknown, expired or revoked"


def test_only_the_named_routes_take_an_anonymous_body(app: FastAPI) -> None:
    named = {("POST", "/login"), ("POST", "/logout"),
             ("POST", "/api/connections/{connection_id}/webhook")}
    unsafe = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            unsafe |= {(m, route.path) for m in route.methods or () if m not in SAFE_METHODS}
    sample = {"connection_id": str(uuid.uuid4())}
    anonymous = set()
    for method, path in unsafe:
        concrete = path.replace("{connection_id}", sample["connection_id"])
        for part in path.split("/"):
            if part.startswith("{"):
                concrete = concrete.replace(part, str(uuid.uuid4()))
        if anonymous_body(method, concrete) is not None:
            anonymous.add((method, path))
    assert anonymous == named
    assert len(ANONYMOUS_BODIES) == len(named)
    assert {a.max_bytes for a in ANONYMOUS_BODIES} == {8 * KB, 256 * KB}


# --- caps while streaming -------------------------------------------------------------------


@pytest.fixture
def json_capped(client_with: ClientFactory) -> TestClient:
    """JSON capped at 64 KB, uploads at 50 MB."""
    return client_with(max_json_kb=64)


@pytest.mark.parametrize("content_length", [True, False], ids=["length", "chunked"])
def test_an_authenticated_json_over_the_json_cap_is_413(
    json_capped: TestClient, db: Session, content_length: bool
) -> None:
    headers = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    sent = Drive(json_capped.app, "POST", "/api/events", headers,  # type: ignore[arg-type]
                 MB, content_length=content_length)
    assert sent.status == 413, sent.body[:300]
    detail = json.loads(sent.body)["detail"]
    assert "larger than the 64 KB limit" in detail and "RACEHUB_MAX_JSON_KB" in detail
    # Declared: nothing read. Streamed: stopped at the cap, not after the whole megabyte.
    assert sent.taken <= (0 if content_length else 64 * KB + CHUNK)


@pytest.mark.parametrize("chunked", [False, True])
def test_an_authenticated_json_over_the_json_cap_is_413_through_the_client(
    json_capped: TestClient, db: Session, chunked: bool
) -> None:
    headers = {**auth(db, make_tenant(db), Role.TENANT_ADMIN),
               "content-type": "application/json"}
    body = json.dumps({"name": "x" * (100 * KB), "startAt": "2026-05-01T08:00"}).encode()
    content: Any = iter([body[:50 * KB], body[50 * KB:]]) if chunked else body
    response = json_capped.post("/api/events", content=content, headers=headers)
    assert ("content-length" in response.request.headers) is not chunked
    assert response.status_code == 413
    assert "RACEHUB_MAX_JSON_KB" in response.json()["detail"]


def test_a_json_under_the_cap_reaches_the_route(json_capped: TestClient, db: Session) -> None:
    headers = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    response = json_capped.post("/api/events", headers=headers, json={
        "name": "x" * (60 * KB), "startAt": "2026-05-01T08:00", "timezone": "UTC"})
    assert response.status_code == 422  # read and parsed: the name is too long
    assert response.json()["errors"][0]["field"] == "name"


def test_a_file_upload_is_capped_by_the_upload_cap_not_the_json_cap(
    json_capped: TestClient, db: Session,
) -> None:
    tenant = make_tenant(db)
    number_type = make_number_type(db, tenant, range_start=1, range_end=99_999)
    rows = "".join(f"{i},{i:06d},\r\n" for i in range(1, 12_000))
    csv = ("sequence,number,barcode\r\n" + rows).encode()
    assert len(csv) > 64 * KB
    response = json_capped.post(
        "/api/imports", headers=auth(db, tenant, Role.TENANT_ADMIN),
        params={"importType": "NUMBER_ONBOARDING", "numberTypeId": str(number_type.id)},
        files={"file": ("batch.csv", csv)})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("content_length", [True, False], ids=["length", "chunked"])
def test_the_login_form_is_capped_at_8_kb(
    app: FastAPI, client: TestClient, content_length: bool
) -> None:
    sent = Drive(app, "POST", "/login", {}, 48 * MB, content_length=content_length,
                 content_type="application/x-www-form-urlencoded")
    assert sent.status == 413
    assert sent.headers["content-type"].startswith("text/html")  # a page, like the form
    assert b"8 KB limit of the login form" in sent.body
    assert sent.taken <= (0 if content_length else 8 * KB + CHUNK)
    # A form under the cap is read and judged: a wrong password, not a size problem.
    client.get("/login")
    response = client.post("/login", data={
        "email": "nobody@example.test", "password": "p" * (6 * KB),
        "csrf_token": client.cookies["racehub_csrf"]})
    assert response.status_code == 401


@pytest.mark.parametrize("content_length", [True, False], ids=["length", "chunked"])
def test_the_webhook_is_capped_at_256_kb_before_it_reads_more(
    app: FastAPI, client: TestClient, content_length: bool
) -> None:
    path = f"/api/connections/{uuid.uuid4()}/webhook"
    sent = Drive(app, "POST", path, {}, 48 * MB, content_length=content_length)
    assert sent.status == 413
    assert "256 KB limit of a webhook delivery" in json.loads(sent.body)["detail"]
    assert sent.taken <= (0 if content_length else 256 * KB + CHUNK)
    # Under the cap the route answers: no such connection.
    response = client.post(path, content=b'{"apiKey": "' + b"k" * (200 * KB) + b'"}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 404


# --- one lookup of the caller -----------------------------------------------------------------


def _count_statements(db: Session, table: str) -> list[str]:
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if f"FROM {table}" in statement:
            seen.append(statement)

    event.listen(db.connection(), "before_cursor_execute", before)
    return seen


def test_a_token_is_looked_up_once_per_request(client: TestClient, db: Session) -> None:
    headers = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    seen = _count_statements(db, "api_tokens")
    response = client.post("/api/events", headers=headers, json={
        "name": "Spring 10K", "startAt": "2026-04-12T09:00:00", "timezone": "UTC"})
    assert response.status_code == 201, response.text
    assert len(seen) == 1


def test_a_session_is_looked_up_once_per_request(client: TestClient, db: Session) -> None:
    tenant = make_tenant(db)
    csrf = start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    seen = _count_statements(db, "user_sessions")
    response = client.post("/api/events", headers={"X-CSRF-Token": csrf}, json={
        "name": "Spring 10K", "startAt": "2026-04-12T09:00:00", "timezone": "UTC"})
    assert response.status_code == 201, response.text
    assert len(seen) == 1


def test_the_metrics_bearer_and_the_probes_are_never_looked_up_as_callers(
    client_with: ClientFactory, db: Session
) -> None:
    client = client_with(metrics_token=SecretStr("metrics-token-for-tests-0123456789"))
    tenant = make_tenant(db)
    start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    tokens, sessions = _count_statements(db, "api_tokens"), _count_statements(db, "user_sessions")
    scrape = client.get("/metrics",
                        headers={"Authorization": "Bearer metrics-token-for-tests-0123456789"})
    assert scrape.status_code == 200, scrape.text
    assert client.get("/healthz", headers={"Authorization": "Bearer rh_unknown"}).status_code \
        == 200
    client.get("/readyz")  # with the browser session's cookie alone
    assert (tokens, sessions) == ([], [])
    # Anywhere else the same credentials are looked up, as before.
    assert client.get("/api/me", headers={"Authorization": "Bearer rh_unknown"}).status_code \
        == 401
    assert len(tokens) == 1
