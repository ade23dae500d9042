"""The request middleware: request ids, security headers, the CSRF cookie, the body cap."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.app import create_app
from racehub.core.deps import CSRF_COOKIE
from racehub.core.models import Role
from racehub.db.session import lend
from racehub.events.models import Event
from racehub.settings import Settings
from tests.core.conftest import ClientFactory
from tests.factories import auth, make_tenant

MB = 1024 * 1024
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def assert_security_headers(response: Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def _explode() -> None:
    raise RuntimeError("boom")


REQUESTS: dict[str, Callable[[TestClient, dict[str, str]], Response]] = {
    "json 200": lambda c, h: c.get("/api/me", headers=h),
    "json 401": lambda c, h: c.get("/api/me"),
    "json 404": lambda c, h: c.get("/api/nothing", headers=h),
    "json 422": lambda c, h: c.post("/api/events", headers=h, json={}),
    "html page": lambda c, h: c.get("/login"),
    "html 404": lambda c, h: c.get("/nothing"),
    "redirect": lambda c, h: c.get("/", follow_redirects=False),
    "static file": lambda c, h: c.get("/static/racehub.css"),
    "openapi": lambda c, h: c.get("/api/openapi.json"),
    "500": lambda c, h: c.get("/api/test-explode"),
}


@pytest.fixture
def lenient_client(app: FastAPI) -> Iterator[TestClient]:
    """Answers 500s like production instead of raising them into the test."""
    app.router.add_api_route("/api/test-explode", _explode)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("name", list(REQUESTS))
def test_every_response_has_a_request_id_and_the_security_headers(
    lenient_client: TestClient, db: Session, name: str
) -> None:
    response = REQUESTS[name](lenient_client, auth(db, make_tenant(db), Role.VIEWER))
    assert GENERATED_ID.match(response.headers["x-request-id"])
    assert_security_headers(response)
    if response.headers.get("content-type") == "application/problem+json":
        assert response.json()["request_id"] == response.headers["x-request-id"]


def test_sane_incoming_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/api/me", headers={"X-Request-ID": "lb-7f3a.91_x"})
    assert response.headers["x-request-id"] == "lb-7f3a.91_x"
    assert response.json()["request_id"] == "lb-7f3a.91_x"


@pytest.mark.parametrize("incoming", [
    "short", "has spaces in it", "x" * 65, "<script>alert(1)</script>", "ok-id\r\nSet-Cookie",
])
def test_odd_incoming_request_id_is_replaced(client: TestClient, incoming: str) -> None:
    response = client.get("/api/me", headers={"X-Request-ID": incoming})
    assert GENERATED_ID.match(response.headers["x-request-id"])


def test_each_request_gets_its_own_id(client: TestClient) -> None:
    ids = {client.get("/login").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_csrf_cookie_is_set_once_and_then_kept(client: TestClient) -> None:
    first = client.get("/login")
    token = client.cookies[CSRF_COOKIE]
    second = client.get("/login")
    assert CSRF_COOKIE in first.headers["set-cookie"]
    assert "set-cookie" not in second.headers
    assert client.cookies[CSRF_COOKIE] == token


# --- body cap -----------------------------------------------------------------------------


def big_event_body(size: int) -> bytes:
    return json.dumps({"name": "x" * size, "startAt": "2026-05-01T08:00"}).encode()


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


def assert_too_large(response: Response) -> None:
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "larger than the 1 MB limit" in response.json()["detail"]
    assert_security_headers(response)


@pytest.fixture
def capped(client_with: ClientFactory) -> TestClient:
    return client_with(max_upload_mb=1)


def event_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Event)) or 0


def test_body_over_the_cap_with_content_length_is_413(capped: TestClient, db: Session) -> None:
    headers = {**auth(db, make_tenant(db), Role.TENANT_ADMIN), "content-type": "application/json"}
    response = capped.post("/api/events", content=big_event_body(2 * MB), headers=headers)
    assert_too_large(response)
    assert event_count(db) == 0


def test_chunked_body_over_the_cap_is_413(capped: TestClient, db: Session) -> None:
    headers = {**auth(db, make_tenant(db), Role.TENANT_ADMIN), "content-type": "application/json"}
    response = capped.post("/api/events", content=chunks(big_event_body(2 * MB)),
                           headers=headers)
    assert "content-length" not in response.request.headers
    assert_too_large(response)
    assert event_count(db) == 0


def test_chunked_form_over_the_cap_is_413_before_the_csrf_check_reads_it(
    capped: TestClient,
) -> None:
    body = b"email=a%40b.test&password=" + b"x" * (2 * MB)
    response = capped.post("/login", content=chunks(body),
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert_security_headers(response)


def test_body_under_the_cap_reaches_the_route(capped: TestClient, db: Session) -> None:
    headers = {**auth(db, make_tenant(db), Role.TENANT_ADMIN), "content-type": "application/json"}
    response = capped.post("/api/events", content=chunks(big_event_body(MB - 1000)),
                           headers=headers)
    assert response.status_code == 422  # read whole, then refused for the 200-char name limit
    assert response.json()["errors"][0]["field"] == "name"


def test_cap_counts_every_chunk_of_a_streamed_body(capped: TestClient, db: Session) -> None:
    """Drive the ASGI app directly, in many small receive() messages and no length."""
    headers = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    body = big_event_body(2 * MB)
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks(body, 8192)
    ] + [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/events", "raw_path": b"/api/events",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                    (b"authorization", headers["Authorization"].encode())],
    }
    asyncio.run(capped.app(scope, receive, send))  # type: ignore[arg-type]

    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 413
    assert len(messages) > 100  # stopped reading early, not after swallowing everything
    assert event_count(db) == 0


def test_every_log_line_of_a_request_carries_its_request_id(
    settings: Settings, db: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings.model_copy(update={"log_level": "INFO", "log_json": True}),
                     session_factory=lend(db))
    app.router.add_api_route("/api/test-explode", _explode)
    capsys.readouterr()  # start-up lines belong to no request
    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.get("/login", headers={"X-Request-ID": "req-ok-0001"})
        failed = client.get("/api/test-explode", headers={"X-Request-ID": "req-boom-0002"})

    assert (ok.status_code, failed.status_code) == (200, 500)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    by_event = {(line["event"], line.get("path")): line for line in lines}
    assert by_event[("request", "/login")]["request_id"] == "req-ok-0001"
    assert by_event[("request", "/api/test-explode")]["request_id"] == "req-boom-0002"
    # A line logged inside the request (the unhandled error, with its traceback) too.
    (error,) = [line for line in lines if line["event"] == "request.unhandled_error"]
    assert error["request_id"] == "req-boom-0002" and "RuntimeError: boom" in error["exception"]
