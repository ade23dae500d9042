"""Input no column can hold (NUL characters, integers beyond 64 bits, cursors that were
never ours) is a 422 naming the field, for every role, never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.events.models import Event
from tests.core.conftest import start_browser_session
from tests.factories import auth, make_event, make_user


@pytest.fixture
def event(db: Session, tenant: Tenant) -> Event:
    return make_event(db, tenant)


def cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def fields_of(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize(("url", "field"), [
    ("/api/events?q=a%00b", "q"),
    ("/api/events/{event}/participants?q=a%00b", "q"),
    ("/api/race-numbers?q=%00", "q"),
    ("/api/events?status=draft&cursor=x%00", "cursor"),
    ("/api/events?a%00=1", "a"),
])
def test_a_nul_in_the_query_string_is_422_naming_the_parameter_even_for_a_viewer(
    client: TestClient, db: Session, tenant: Tenant, event: Event, url: str, field: str
) -> None:
    viewer = auth(db, tenant, Role.VIEWER)
    response = client.get(url.format(event=event.id), headers=viewer)
    assert fields_of(response) == [field]
    assert "NUL" in response.json()["detail"]


def test_a_nul_in_an_audit_filter_is_422(client: TestClient, db: Session,
                                         tenant: Tenant) -> None:
    admin = auth(db, tenant, Role.TENANT_ADMIN)
    assert fields_of(client.get("/api/audit?actor=a%00b", headers=admin)) == ["actor"]


@pytest.mark.parametrize("body", [
    {"name": "Night\x00Run", "startAt": "2026-05-01T08:00:00Z"},
    {"name": "Night Run", "startAt": "2026-05-01T08:00:00Z", "location": "\x00"},
])
def test_a_nul_in_a_json_body_is_422_naming_the_field(
    client: TestClient, db: Session, tenant: Tenant, body: dict[str, Any]
) -> None:
    admin = auth(db, tenant, Role.TENANT_ADMIN)
    field = "name" if "\x00" in body["name"] else "location"
    assert fields_of(client.post("/api/events", headers=admin, json=body)) == [field]


def test_a_nul_in_a_nested_field_names_it(
    client: TestClient, db: Session, tenant: Tenant, event: Event
) -> None:
    admin = auth(db, tenant, Role.TENANT_ADMIN)
    response = client.post(f"/api/events/{event.id}/participants", headers=admin,
                           json={"person": {"firstName": "A\x00", "lastName": "B"}})
    assert fields_of(response) == ["person.firstName"]


def test_a_nul_in_a_page_form_is_422_naming_the_input(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    csrf = start_browser_session(db, client, make_user(db, tenant, Role.TENANT_ADMIN))
    db.commit()
    response = client.post("/events/new", data={"csrf_token": csrf, "name": "a\x00b",
                                                "start_at": "2026-05-01T08:00"})
    assert response.status_code == 422
    assert "name must not contain a NUL character" in response.text


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "5K", "bibRangeStart": 10**30}, "bibRangeStart"),
    ({"name": "5K", "bibRangeStart": 1, "bibRangeEnd": 2**31}, "bibRangeEnd"),
])
def test_integers_beyond_the_columns_are_422_naming_the_field(
    client: TestClient, db: Session, tenant: Tenant, event: Event, body: dict[str, Any],
    field: str,
) -> None:
    admin = auth(db, tenant, Role.TENANT_ADMIN)
    response = client.post(f"/api/events/{event.id}/categories", headers=admin, json=body)
    assert fields_of(response) == [field]


def test_integers_beyond_64_bits_anywhere_in_a_body_are_422(
    client: TestClient, db: Session, tenant: Tenant
) -> None:
    admin = auth(db, tenant, Role.TENANT_ADMIN)
    response = client.post("/api/number-types", headers=admin,
                           json={"name": "chips", "rangeStart": 1, "rangeEnd": 2**64})
    assert fields_of(response) == ["rangeEnd"]
    assert "too large" in response.json()["detail"]


@pytest.mark.parametrize(("url", "value"), [
    ("/api/audit", cursor(str(10**25))),
    ("/api/audit", cursor(str(-(10**25)))),
    ("/api/events/{event}/participants", cursor(str(10**25), "x")),
    ("/api/events", cursor("2026-01-01T00:00:00+00:00", "a\x00b")),
    ("/api/events", cursor("10000-01-01T00:00:00+00:00",
                           "00000000-0000-0000-0000-000000000000")),
])
def test_cursors_holding_what_no_column_holds_are_422_naming_cursor(
    client: TestClient, db: Session, tenant: Tenant, event: Event, url: str, value: str
) -> None:
    admin = auth(db, tenant, Role.TENANT_ADMIN)
    response = client.get(url.format(event=event.id), headers=admin, params={"cursor": value})
    assert fields_of(response) == ["cursor"]


@pytest.mark.parametrize("start", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
                                   "9999-12-30T00:00:00+00:00"])
def test_cursors_at_the_ends_of_time_page_on(
    client: TestClient, db: Session, tenant: Tenant, event: Event, start: str
) -> None:
    # 9999-12-30 is what a stored out-of-range start reads as, so its cursor must work.
    viewer = auth(db, tenant, Role.VIEWER)
    response = client.get("/api/events", headers=viewer, params={
        "cursor": cursor(start, "00000000-0000-0000-0000-000000000000")})
    assert response.status_code == 200, response.text
