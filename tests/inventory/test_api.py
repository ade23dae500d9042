"""The inventory API and pages: number types, race numbers with their state log, the
manufactured-numbers template."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.inventory.models import NumberType
from tests.factories import auth, make_number_type, make_tenant, onboard

H = dict[str, str]


def test_number_types_are_created_and_listed(client: TestClient, db: Session,
                                             tenant: Tenant) -> None:
    headers = auth(db, tenant)
    created = client.post("/api/number-types", headers=headers, json={
        "name": "Trail 2027", "prefix": "T", "rangeStart": 100, "rangeEnd": 999})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["rangeStart"], body["rangeEnd"]) == ("Trail 2027", 100, 999)
    listed = client.get("/api/number-types", headers=auth(db, tenant, Role.VIEWER))
    assert [t["name"] for t in listed.json()] == ["Trail 2027"]


def test_a_bad_number_type_names_the_field(client: TestClient, db: Session,
                                           tenant: Tenant) -> None:
    headers = auth(db, tenant)
    bad_range = client.post("/api/number-types", headers=headers,
                            json={"name": "X", "rangeStart": 10, "rangeEnd": 5})
    assert bad_range.status_code == 422
    assert [e["field"] for e in bad_range.json()["errors"]] == ["rangeEnd"]
    make_number_type(db, tenant, name="Taken")
    taken = client.post("/api/number-types", headers=headers, json={"name": "Taken"})
    assert taken.status_code == 409
    assert taken.json()["errors"][0]["field"] == "name"


def test_only_tenant_admins_manage_number_types(client: TestClient, db: Session,
                                                tenant: Tenant) -> None:
    response = client.post("/api/number-types", headers=auth(db, tenant, Role.EVENT_MANAGER),
                           json={"name": "Nope"})
    assert response.status_code == 403
    assert "inventory:number:manage" in response.text


def test_race_numbers_list_filters_by_type_and_pages(client: TestClient, db: Session,
                                                     tenant: Tenant,
                                                     number_type: NumberType) -> None:
    other_type = make_number_type(db, tenant, name="Kids")
    onboard(db, number_type, *[(str(n), f"M{n}", "") for n in range(1, 6)])
    onboard(db, other_type, ("1", "K1", "KID-1"))
    headers = auth(db, tenant, Role.VIEWER)
    first = client.get("/api/race-numbers", headers=headers,
                       params={"numberTypeId": str(number_type.id), "limit": 3}).json()
    assert [r["number"] for r in first["items"]] == ["M1", "M2", "M3"]
    rest = client.get("/api/race-numbers", headers=headers, params={
        "numberTypeId": str(number_type.id), "limit": 3, "cursor": first["nextCursor"]}).json()
    assert [r["number"] for r in rest["items"]] == ["M4", "M5"] and rest["nextCursor"] is None
    by_tag = client.get("/api/race-numbers", headers=headers, params={"q": "KID-1"}).json()
    assert [(r["number"], r["tagCode"], r["numberTypeName"]) for r in by_tag["items"]] == [
        ("K1", "KID-1", "Kids")]


def test_an_unknown_number_type_filter_is_a_404_naming_it(client: TestClient, db: Session,
                                                          tenant: Tenant) -> None:
    foreign = make_number_type(db, make_tenant(db))
    for type_id in (foreign.id, uuid.uuid4()):
        response = client.get("/api/race-numbers", headers=auth(db, tenant),
                              params={"numberTypeId": str(type_id)})
        assert response.status_code == 404
        assert response.json()["errors"][0]["field"] == "numberTypeId"


def test_a_race_number_comes_with_its_state_log(client: TestClient, db: Session,
                                                tenant: Tenant,
                                                number_type: NumberType) -> None:
    [result] = onboard(db, number_type, ("42", "0042", "CHIP-42"))
    onboard(db, number_type, ("42", "0042", "CHIP-42"))
    body = client.get(f"/api/race-numbers/{result.race_number_id}",
                      headers=auth(db, tenant, Role.VIEWER)).json()
    assert (body["sequence"], body["state"], body["tagCode"]) == (42, "MANUFACTURED",
                                                                  "CHIP-42")
    assert [(e["action"], e["toState"]) for e in body["log"]] == [
        ("manufactured", "MANUFACTURED"), ("reimported", None)]


def test_the_template_is_the_fixed_schema_with_one_example(client: TestClient, db: Session,
                                                           tenant: Tenant) -> None:
    response = client.get("/api/race-numbers/templates/manufactured-numbers.csv",
                          headers=auth(db, tenant, Role.VIEWER))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    lines = response.text.splitlines()
    assert lines[0] == "sequence,number,barcode" and len(lines) == 2


# --- pages -----------------------------------------------------------------------------------


def test_the_race_numbers_page_searches_with_an_htmx_partial(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType
) -> None:
    onboard(db, number_type, ("1", "0001", "CHIP-A"), ("2", "0002", ""))
    db.commit()
    headers = auth(db, tenant, Role.VIEWER)
    db.commit()
    page = client.get("/inventory/numbers", headers=headers)
    assert page.status_code == 200
    assert "Marathon 2027" in page.text and "CHIP-A" in page.text
    partial = client.get("/inventory/numbers", params={"q": "0002"},
                         headers={**headers, "HX-Request": "true", "HX-Target": "race-numbers"})
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert "0002" in partial.text and "CHIP-A" not in partial.text


def test_the_number_types_page_form_reports_a_taken_name(
    client: TestClient, db: Session, tenant: Tenant, number_type: NumberType
) -> None:
    headers = auth(db, tenant)
    db.commit()
    response = client.post("/inventory/number-types", headers=headers,
                           data={"name": "Marathon 2027"})
    assert response.status_code == 409
    assert "already exists" in response.text
    assert 'value="Marathon 2027"' in response.text  # what was typed stays in the form
    viewer = auth(db, tenant, Role.VIEWER)
    db.commit()
    assert "Add a number type" not in client.get("/inventory/number-types",
                                                 headers=viewer).text
