"""Every route of the OpenAPI document, fed what schemathesis generates from it (valid and
invalid bodies, query strings with NUL bytes, huge integers, odd dates), never answers 5xx.

Bounded for CI: a fixed seed, a few examples per route, no shrinking past the first
failure. Requests go to the in-process app on the test's database (rolled back), as a
TENANT_ADMIN (the role that reaches the most routes), with an event of its own so that
lists have something to page through.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, Phase, seed, settings
from sqlalchemy.orm import Session, sessionmaker

from racehub.app import create_app
from racehub.core.models import Role, Tenant
from racehub.settings import Settings
from tests.factories import auth, make_category, make_event, make_participant

EXAMPLES_PER_ROUTE = 6
SEED = 15


# The document of an app of its own (building it needs no database); each test then sends
# its cases through the ``client`` fixture, whose app runs on the test's rolled-back
# session. (schemathesis.pytest.from_fixture would do this, but fails under pytest 9.)
DOCUMENT = create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused"),
                      session_factory=sessionmaker()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def documented(method: str, path: str, status: int) -> bool:
    """Whether the operation declares this status (GET /readyz answers 503 by design when
    no worker runs, as it does in this test)."""
    operation = DOCUMENT["paths"].get(path, {}).get(method.lower(), {})
    return str(status) in operation.get("responses", {})


@pytest.fixture
def admin_headers(db: Session, tenant: Tenant) -> dict[str, str]:
    event = make_event(db, tenant)
    make_participant(db, event, bib="1", category_id=make_category(db, event, "10K").id)
    return auth(db, tenant, Role.TENANT_ADMIN)


def send(client: TestClient, case: Any, headers: dict[str, str], *,
         hostile: bool = False) -> Response:
    """The case as schemathesis would send it, through the test's own client (so the app
    runs on the test's session, and an unhandled error raises here with its traceback).
    ``hostile``: its query values and JSON body with what no column holds (a NUL in every
    text, 2**64 for every integer), which random generation seldom reaches in a few
    examples."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
    params, body = kwargs.get("params"), kwargs.get("json")
    if hostile:
        params, body = _hostile(params), _hostile(body)
    data = kwargs.get("data")
    client.cookies.clear()
    client.cookies.update(kwargs.get("cookies") or {})
    return client.request(
        kwargs["method"], kwargs["url"], headers=kwargs.get("headers"),
        params=params, json=body, files=kwargs.get("files"),
        **({"content": data} if isinstance(data, bytes | str) else {"data": data}),
    )


def _hostile(value: Any) -> Any:
    if isinstance(value, str):
        return value + "\x00"
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return 2**64
    if isinstance(value, dict):
        return {k: _hostile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(v) for v in value]
    return value


@schema.parametrize()
@seed(SEED)
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None,
          phases=[Phase.generate], suppress_health_check=list(HealthCheck))
def test_no_route_answers_5xx(case: Any, client: TestClient,
                              admin_headers: dict[str, str]) -> None:
    for hostile in (False, True):
        response = send(client, case, admin_headers, hostile=hostile)
        assert response.status_code < 500 or documented(
            case.method, case.path, response.status_code), (
            f"{case.method} {case.formatted_path} ({'hostile' if hostile else 'as generated'})"
            f" answered {response.status_code}: {response.text[:500]}")
