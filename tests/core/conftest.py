"""Fixtures for the core tests: apps built with other settings, browser-style sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.app import create_app
from racehub.core import service as core_service
from racehub.core.deps import SESSION_COOKIE
from racehub.core.models import User
from racehub.db.session import lend
from racehub.settings import Settings

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def client_with(settings: Settings, db: Session) -> Iterator[ClientFactory]:
    """``client_with(max_upload_mb=1, base_url="https://testserver", ip="203.0.113.9")``: a
    client of an app on ``db`` whose settings differ from the default test settings."""
    clients: list[TestClient] = []

    def build(
        base_url: str = "http://testserver", ip: str = "testclient", **overrides: Any
    ) -> TestClient:
        app = create_app(settings.model_copy(update=overrides), session_factory=lend(db))
        test_client = TestClient(app, base_url=base_url, client=(ip, 50000))
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    yield build
    for test_client in clients:
        test_client.__exit__(None, None, None)


def start_browser_session(db: Session, client: TestClient, user: User) -> str:
    """Log ``user`` in without the login form (no password check): sets the session cookie
    on ``client`` and returns the CSRF token the pages would embed."""
    token = core_service.start_session(
        db, user=user, ip=None, user_agent="pytest",
        policy=core_service.LoginPolicy(max_failures=5, lockout=timedelta(minutes=15),
                                        session_lifetime=timedelta(hours=1)),
    )
    db.flush()
    client.cookies.set(SESSION_COOKIE, token)
    client.get("/api/openapi.json")  # any response hands out the CSRF cookie
    csrf = client.cookies.get("racehub_csrf")
    assert csrf
    return csrf
