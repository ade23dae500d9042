"""The app factory's own routes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient


def test_the_openapi_document_is_encoded_once_and_reused(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = client.get("/api/openapi.json")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.json()["info"]["title"] == "racehub"
    assert "/api/events" in first.json()["paths"]

    def not_again() -> dict[str, Any]:
        raise AssertionError("the schema was built again")

    monkeypatch.setattr(app, "openapi", not_again)
    assert client.get("/api/openapi.json").content == first.content
