"""GET /api/imports: the /imports page's list as JSON: the imports the caller may read,
filtered by type, status, event and who, keyset-paged; never another tenant's."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.inventory.importers import NUMBER_ONBOARDING
from racehub.inventory.models import NumberType
from racehub.jobs.models import JobStatus
from racehub.timing.importers import TIMING_RESULTS
from tests.factories import auth, make_event, make_number_type, make_tenant
from tests.imports.test_pages import make_import

H = dict[str, str]


def listed(client: TestClient, headers: H, **params: str) -> list[str]:
    response = client.get("/api/imports", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [i["id"] for i in response.json()["items"]]


def problem(client: TestClient, headers: H, code: int, **params: str) -> dict[str, Any]:
    response = client.get("/api/imports", headers=headers, params=params)
    assert response.status_code == code, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def test_import_list_filters_by_type_status_event_and_who(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType, headers: H,
) -> None:
    event, other_event = make_event(db, tenant), make_event(db, tenant)
    numbers = make_import(db, tenant, NUMBER_ONBOARDING, {"numberTypeId": str(number_type.id)},
                          minute=1, who="ada@example.test")
    results = make_import(db, tenant, TIMING_RESULTS,
                          {"eventId": str(event.id), "identifierMode": "PERSON_ID"}, minute=2,
                          status=JobStatus.FAILED)
    elsewhere = make_import(db, tenant, TIMING_RESULTS,
                            {"eventId": str(other_event.id), "identifierMode": "PERSON_ID"},
                            minute=3)

    assert listed(client, headers) == [str(elsewhere.id), str(results.id), str(numbers.id)]
    assert listed(client, headers, importType=NUMBER_ONBOARDING) == [str(numbers.id)]
    assert listed(client, headers, status="failed") == [str(results.id)]
    assert listed(client, headers, eventId=str(event.id)) == [str(results.id)]
    assert listed(client, headers, who="ADA@example.test") == [str(numbers.id)]
    assert listed(client, headers, importType=TIMING_RESULTS, status="completed") == [
        str(elsewhere.id)]
    body = client.get("/api/imports", headers=headers, params={"eventId": str(event.id)}).json()
    (item,) = body["items"]
    assert (item["importType"], item["status"], item["filename"]) == (
        TIMING_RESULTS, "failed", "file.csv")


def test_import_list_pages_by_keyset_keeping_its_filters(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType, headers: H,
) -> None:
    made = [make_import(db, tenant, NUMBER_ONBOARDING, {"numberTypeId": str(number_type.id)},
                        minute=i) for i in range(5)]
    make_import(db, tenant, TIMING_RESULTS,
                {"eventId": str(make_event(db, tenant).id), "identifierMode": "PERSON_ID"},
                minute=9)

    seen: list[str] = []
    params = {"importType": NUMBER_ONBOARDING, "limit": "2"}
    pages = 0
    while True:
        body = client.get("/api/imports", headers=headers, params=params).json()
        seen += [i["id"] for i in body["items"]]
        pages += 1
        if body["nextCursor"] is None:
            break
        params = {**params, "cursor": body["nextCursor"]}
    assert (seen, pages) == ([str(i.id) for i in reversed(made)], 3)


def test_import_list_refuses_bad_filters_naming_them_and_another_tenants_event(
    client: TestClient, db: Session, headers: H,
) -> None:
    for params in [{"limit": "0"}, {"limit": "201"}, {"status": "nope"}, {"eventId": "nope"},
                   {"importType": "NOPE"}, {"cursor": "nope"}]:
        (field,) = params
        body = problem(client, headers, 422, **params)
        assert field in [e["field"] for e in body["errors"]], (params, body)
    assert "importType must be one of" in problem(client, headers, 422,
                                                  importType="NOPE")["detail"]
    foreign = make_event(db, make_tenant(db))
    problem(client, headers, 404, eventId=str(foreign.id))


def test_import_list_never_shows_another_tenants_imports(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType,
) -> None:
    mine = make_import(db, tenant, NUMBER_ONBOARDING, {"numberTypeId": str(number_type.id)})
    other = make_tenant(db)
    theirs = make_import(db, other, NUMBER_ONBOARDING,
                         {"numberTypeId": str(make_number_type(db, other).id)})

    assert listed(client, auth(db, tenant, Role.VIEWER)) == [str(mine.id)]
    assert listed(client, auth(db, other, Role.TENANT_ADMIN)) == [str(theirs.id)]
