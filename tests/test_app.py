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


SERVED_APP_HEAP = """
import gc
from racehub.app import create_served_app
app = create_served_app()
print(app.title, gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_the_served_app_leaves_its_start_up_objects_out_of_the_collectors_sight() -> None:
    """``racehub serve``'s factory: the ~200k objects of the imports and the app (with the
    ORM's mappers configured) are frozen, so a full collection no longer walks them while
    requests wait. A process of its own: freezing would keep this test run's objects."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "RACEHUB_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    out = subprocess.run([sys.executable, "-c", SERVED_APP_HEAP], env=env, check=True,
                         timeout=120, capture_output=True, text=True).stdout.split()
    title, frozen, unfrozen = out[-3], int(out[-2]), int(out[-1])
    assert title == "racehub"
    assert frozen > 100_000
    assert unfrozen < frozen / 50
