"""/healthz, /readyz and /metrics: anonymous and cheap, each failure named."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session

from racehub.app import create_app
from racehub.core.models import Tenant
from racehub.db.session import lend
from racehub.jobs.models import JobRun
from racehub.settings import Settings

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def client_of(settings: Settings, db: Session) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        app = create_app(settings.model_copy(update=overrides), session_factory=lend(db))
        client = TestClient(app, base_url="http://testserver").__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def _heartbeat(db: Session, seconds_ago: int) -> None:
    db.execute(text("INSERT INTO procrastinate_workers (last_heartbeat) "
                    "VALUES (now() - make_interval(secs => :s))"), {"s": seconds_ago})


def test_healthz_answers_anyone(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_with_current_migrations_and_a_recent_worker(
    client: TestClient, db: Session
) -> None:
    _heartbeat(db, seconds_ago=5)
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "migrations": True, "worker": True}


def test_readyz_fails_without_a_worker(client: TestClient, db: Session) -> None:
    db.execute(text("DELETE FROM procrastinate_workers"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == {"ok": False, "detail": "no worker is running"}


def test_readyz_fails_when_the_last_heartbeat_is_older_than_the_setting(
    client_of: Callable[..., TestClient], db: Session
) -> None:
    db.execute(text("DELETE FROM procrastinate_workers"))
    _heartbeat(db, seconds_ago=300)
    worker = client_of(ready_worker_seconds=120).get("/readyz").json()["checks"]["worker"]
    assert worker["ok"] is False
    assert re.fullmatch(r"last worker heartbeat 30\d s ago", worker["detail"])
    assert client_of(ready_worker_seconds=600).get("/readyz").json()["checks"]["worker"]["ok"]


def test_readyz_names_migrations_the_database_lacks(client: TestClient, db: Session) -> None:
    _heartbeat(db, seconds_ago=1)
    db.execute(text("UPDATE alembic_version SET version_num = '0001_old'"))
    response = client.get("/readyz")
    assert response.status_code == 503
    migrations = response.json()["checks"]["migrations"]
    assert migrations["ok"] is False
    assert migrations["detail"].startswith("database at 0001_old, code expects ")
    assert migrations["detail"].endswith("run racehub migrate")


def test_readyz_says_the_database_is_unreachable(settings: Settings) -> None:
    # A port nothing listens on (the discard port): the probe answers, it does not hang or 500.
    dead = settings.model_copy(update={
        "database_url": "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"})
    with TestClient(create_app(dead)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert database["ok"] is False
    assert database["detail"].startswith("unreachable (")


def test_metrics_are_off_by_default(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {TOKEN}x", TOKEN])
def test_metrics_refuse_a_missing_or_wrong_token(
    client_of: Callable[..., TestClient], header: str | None
) -> None:
    client = client_of(metrics_token=SecretStr(TOKEN))
    headers = {"Authorization": header} if header else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "racehub_" not in response.text


def _sample(body: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        metric, _, value = line.rpartition(" ")
        if metric.split("{")[0] == name and \
                ",".join(sorted(metric.partition("{")[2].rstrip("}").split(","))) == wanted:
            return float(value)
    return 0.0


def test_metrics_count_requests_by_route_template_and_jobs_by_kind_and_state(
    client_of: Callable[..., TestClient], db: Session, tenant: Tenant
) -> None:
    client = client_of(metrics_token=SecretStr(TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = client.get("/metrics", headers=auth).text
    db.add(JobRun(tenant_id=tenant.id, kind="assign_bibs", params={}, counts={}, log=[],
                  checkpoint={}))
    db.flush()

    client.get("/healthz")
    client.get("/api/events/00000000-0000-0000-0000-000000000000")  # 401: no token
    client.get("/no/such/page/12345")

    after = client.get("/metrics", headers=auth)
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")
    body = after.text
    route = "/api/events/{event_id}"
    assert (_sample(body, "racehub_http_requests_total", method="GET", route=route, status="401")
            - _sample(before, "racehub_http_requests_total", method="GET", route=route,
                      status="401")) == 1
    assert _sample(body, "racehub_http_requests_total", method="GET", route="<unmatched>",
                   status="404") >= 1
    assert "/no/such/page" not in body  # unknown paths never become labels
    assert _sample(body, "racehub_http_request_duration_seconds_count", method="GET",
                   route="/healthz") >= 1
    assert _sample(body, "racehub_jobs", kind="assign_bibs", state="queued") >= 1


MULTIPROCESS_CHILD = """
from racehub.ops.metrics import REQUESTS
REQUESTS.labels("GET", "/healthz", "200").inc()
"""
MULTIPROCESS_SCRAPE = """
from racehub.ops.metrics import exposition
print(exposition().decode())
"""


def test_metrics_of_several_web_processes_add_up(tmp_path: Any) -> None:
    """racehub serve --workers N: each process counts its own requests; a scrape answered by
    any one of them reports the sum (PROMETHEUS_MULTIPROC_DIR, set by serve)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", MULTIPROCESS_CHILD], env=env, check=True,
                       timeout=60)
    scrape = subprocess.run([sys.executable, "-c", MULTIPROCESS_SCRAPE], env=env, check=True,
                            timeout=60, capture_output=True, text=True).stdout
    assert _sample(scrape, "racehub_http_requests_total", method="GET", route="/healthz",
                   status="200") == 2
