"""Stage 1 (Columns) for import types without a fixed schema: headers detected by name,
and, when detection falls short, an import that waits in Columns for the operator's
mapping (API and page) before the rest of the pipeline runs."""

from __future__ import annotations

import html
import re
import string
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.exceptions import Invalid
from racehub.core.models import AuditEntry, Role, Tenant
from racehub.core.rbac import Perm
from racehub.imports import service
from racehub.imports.models import Import, ImportRowResult
from racehub.imports.registry import ImportType
from racehub.jobs.models import JobRun, JobStatus
from tests.factories import auth, make_tenant
from tests.imports.conftest import (
    SPLIT_RESULTS,
    RunImport,
    Upload,
    registered,
    split_results_type,
)

# Detected by name and alias, whatever the spelling: Dossard (alias of Bib), "chip_time".
DETECTED = ("Dossard,chip_time,name,Split 1\r\n"
            "7,00:41:02,Ada,00:20:11\r\n"
            "8,00:43:10,Grace,00:21:40\r\n")
# Nothing names ChipTime: the import has to wait for a mapping.
ODD = ("Dossard;Athlete;Finish Clock;Split 1;Split 2\r\n"
       "7;Ada;00:41:02;00:10:05;00:20:11\r\n"
       "8;Grace;00:43:10;00:10:40;00:21:40\r\n"
       "9;Alan;;00:11:00;\r\n")
GOOD_MAPPING = {"Bib": "Dossard", "ChipTime": "Finish Clock", "Name": "Athlete"}


def body_of(client: TestClient, headers: dict[str, str], import_id: str) -> dict[str, Any]:
    response = client.get(f"/api/imports/{import_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def waiting_import(upload: Upload, content: str = ODD) -> dict[str, Any]:
    response = upload(content, import_type=SPLIT_RESULTS)
    assert response.status_code == 201, response.text
    return response.json()


def post_mapping(client: TestClient, headers: dict[str, str], import_id: str,
                 mapping: dict[str, Any]) -> Any:
    return client.post(f"/api/imports/{import_id}/mapping", json={"mapping": mapping},
                       headers=headers)


# --- detection --------------------------------------------------------------------------------


@pytest.mark.parametrize("heading", ["ChipTime", "Chip Time", "chip_time", "CHIPTIME",
                                     "chip-time", " Chip  Time ", "chip_-_time"])
def test_header_spellings_of_one_field_normalise_alike(heading: str) -> None:
    assert service.normalize_header(heading) == service.normalize_header("ChipTime")


def test_distinct_names_stay_distinct() -> None:
    assert service.normalize_header("Chip Time") != service.normalize_header("Gun Time")
    assert service.normalize_header("Split 1") != service.normalize_header("Split 11")


_SEPARATOR = st.sampled_from([" ", "_", "-", "  ", "\t", "_-"])


@given(words=st.lists(st.text(alphabet=string.ascii_letters + string.digits,
                              min_size=1, max_size=8), min_size=1, max_size=4),
       separators=st.lists(_SEPARATOR, min_size=4, max_size=4),
       upper=st.booleans())
def test_any_casing_and_separators_detect_the_field(
    words: list[str], separators: list[str], upper: bool
) -> None:
    field = "".join(words)
    spelled = "".join(w + s for w, s in zip(words, separators, strict=False)).strip()
    spelled = spelled.upper() if upper else spelled.lower()
    import_type = split_results_type(columns=(field,), optional_columns=(), column_aliases={})
    detection = service.detect_columns(import_type, ["#", spelled])
    assert detection.column_map == {field: 1}
    assert detection.complete


def test_detection_uses_aliases_and_leaves_optional_fields_out() -> None:
    detection = service.detect_columns(split_results_type(),
                                       ["Race No", "Net Time", "Split 1"])
    assert detection.column_map == {"Bib": 0, "ChipTime": 1}
    assert detection.complete


def test_detection_reports_a_missing_required_field_by_name() -> None:
    header = ["Dossard", "Finish Clock", ""]
    detection = service.detect_columns(split_results_type(), header)
    assert detection.missing == ("ChipTime",)
    assert detection.problems(header) == [
        'required field "ChipTime" has no column (headers: "Dossard", "Finish Clock")']


def test_two_headers_claiming_one_field_are_ambiguous() -> None:
    header = ["Bib", "Chip Time", "chip_time"]
    detection = service.detect_columns(split_results_type(), header)
    assert not detection.complete
    assert detection.ambiguous == {"ChipTime": (1, 2)}
    assert detection.column_map == {"Bib": 0, "ChipTime": 1}  # the first, pre-selected
    assert detection.problems(header) == [
        'columns "Chip Time" (column 2) and "chip_time" (column 3) all name field "ChipTime"; '
        "choose one"]


@pytest.mark.parametrize(("mapping", "field", "message"), [
    ({"Bib": "Dossard", "ChipTime": "Finish Clock", "Club": "Athlete"}, "mapping.Club",
     'unknown field "Club"'),
    ({"Bib": "Dossard", "ChipTime": "Gun"}, "mapping.ChipTime",
     'field "ChipTime": the file has no column "Gun"'),
    ({"Bib": "Dossard", "ChipTime": "Dossard"}, "mapping.ChipTime",
     'column "Dossard" is mapped to both field "Bib" and field "ChipTime"'),
    ({"Bib": "Dossard", "Name": "Athlete"}, "mapping.ChipTime",
     'required field "ChipTime" is not mapped'),
    ({"Bib": "Dossard", "ChipTime": "", "Name": "Athlete"}, "mapping.ChipTime",
     'required field "ChipTime" is not mapped'),
    ({"Bib": "Dossard", "ChipTime": "Split"}, "mapping.ChipTime",
     '2 columns are named "Split" (columns 4, 5)'),
])
def test_a_mapping_is_refused_naming_the_field(mapping: dict[str, str], field: str,
                                               message: str) -> None:
    header = ["Dossard", "Athlete", "Finish Clock", "Split", "Split"]
    with pytest.raises(Invalid) as raised:
        service.resolve_mapping(split_results_type(), header, mapping)
    assert raised.value.field == field
    assert message in raised.value.detail


def test_an_optional_field_may_stay_unmapped() -> None:
    assert service.resolve_mapping(split_results_type(), ["Dossard", "Finish Clock"],
                                   {"Bib": "Dossard", "ChipTime": "Finish Clock",
                                    "Name": None}) == {"Bib": 0, "ChipTime": 1}


# --- auto-detected: the import proceeds ---------------------------------------------------------


def test_detected_columns_are_applied_and_unmapped_ones_reach_process_as_extras(
    upload: Upload, client: TestClient, headers: dict[str, str], run_import: RunImport,
    split_results: ImportType,
) -> None:
    body = waiting_import(upload, DETECTED)
    assert (body["status"], body["mappingState"], body["mappingRequired"]) == (
        "queued", "auto_detected", False)
    assert body["mapping"] == {"Bib": "Dossard", "ChipTime": "chip_time", "Name": "name"}
    columns = next(s for s in body["stages"] if s["name"] == "Columns")
    assert columns["state"] == "auto_detected"
    assert columns["tooltip"] == "Auto-detected — Bib ← Dossard, ChipTime ← chip_time, Name ← name"

    run_import(body["id"])

    done = body_of(client, headers, body["id"])
    assert done["status"] == "completed"
    rows = client.get(f"/api/imports/{body['id']}/rows", headers=headers).json()["items"]
    assert [r["values"] for r in rows] == [
        {"Bib": "7", "ChipTime": "00:41:02", "Name": "Ada", "Split 1": "00:20:11"},
        {"Bib": "8", "ChipTime": "00:43:10", "Name": "Grace", "Split 1": "00:21:40"},
    ]


def test_a_fixed_schema_type_keeps_its_400_for_a_missing_column(upload: Upload) -> None:
    response = upload("sequence,number\r\n1,0001\r\n")
    assert response.status_code == 400
    assert 'the file has no "barcode" column' in response.json()["detail"]


# --- waiting for a mapping --------------------------------------------------------------------


def test_an_import_short_of_a_column_waits_paused_in_columns_with_headers_and_sample(
    upload: Upload, db: Session, run_import: RunImport, split_results: ImportType,
) -> None:
    body = waiting_import(upload)
    assert (body["status"], body["stage"], body["mappingState"], body["mappingRequired"]) == (
        "paused", "Columns", "needs_mapping", True)
    assert body["header"] == ["Dossard", "Athlete", "Finish Clock", "Split 1", "Split 2"]
    assert body["mapping"] == {"Bib": "Dossard"}
    assert body["fields"] == [{"name": "Bib", "required": True},
                              {"name": "ChipTime", "required": True},
                              {"name": "Name", "required": False}]
    assert body["mappingProblems"] == [
        'required field "ChipTime" has no column (headers: "Dossard", "Athlete", '
        '"Finish Clock", "Split 1", "Split 2")']
    assert body["sampleRows"][0] == ["7", "Ada", "00:41:02", "00:10:05", "00:20:11"]
    assert len(body["sampleRows"]) == 3
    states = {s["name"]: s["state"] for s in body["stages"]}
    assert states == {"Columns": "needs_mapping", "Cells": "pending", "Verifying": "pending",
                      "Processing": "pending", "Done": "pending"}
    assert "Waiting for a column mapping" in body["message"]

    run_import(body["id"])  # the task queued with the upload finds the run paused

    imp = db.get(Import, uuid.UUID(body["id"]))
    assert imp.job_run.status == JobStatus.PAUSED
    assert imp.rows_total is None
    assert db.scalars(select(ImportRowResult).where(ImportRowResult.import_id == imp.id)
                      ).all() == []


def test_two_headers_for_one_field_also_wait_for_a_mapping(
    upload: Upload, split_results: ImportType
) -> None:
    body = waiting_import(upload, "Bib,Chip Time,chip_time\r\n7,00:41:02,00:41:03\r\n")
    assert (body["status"], body["mappingRequired"]) == ("paused", True)
    assert body["mapping"] == {"Bib": "Bib", "ChipTime": "Chip Time"}
    assert "all name field \"ChipTime\"" in body["mappingProblems"][0]


def test_the_mapping_round_queues_the_rest_of_the_pipeline_and_completes(
    upload: Upload, client: TestClient, headers: dict[str, str], db: Session,
    run_import: RunImport, split_results: ImportType,
) -> None:
    body = waiting_import(upload)

    response = post_mapping(client, headers, body["id"], GOOD_MAPPING)

    assert response.status_code == 200, response.text
    mapped = response.json()
    assert (mapped["status"], mapped["mappingState"], mapped["mappingRequired"]) == (
        "queued", "mapped", False)
    assert mapped["mapping"] == GOOD_MAPPING
    assert mapped["columnMap"] == {"Bib": 0, "Name": 1, "ChipTime": 2}
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "import.map_columns")
                       ).one()
    assert entry.target_id == body["id"]
    assert entry.after == {"mapping": GOOD_MAPPING}
    assert entry.before == {"proposed": {"Bib": "Dossard"}}

    run_import(body["id"])

    done = body_of(client, headers, body["id"])
    assert done["status"] == "completed"
    assert {b["key"]: b["count"] for b in done["buckets"]} == {"timed": 2, "rejected": 1}
    columns = next(s for s in done["stages"] if s["name"] == "Columns")
    assert (columns["state"], columns["tooltip"]) == (
        "mapped", "Mapped — Bib ← Dossard, ChipTime ← Finish Clock, Name ← Athlete")
    rows = client.get(f"/api/imports/{body['id']}/rows", headers=headers).json()["items"]
    assert rows[0]["values"] == {"Bib": "7", "ChipTime": "00:41:02", "Name": "Ada",
                                 "Split 1": "00:10:05", "Split 2": "00:20:11"}
    assert rows[2]["reason"] == "ChipTime is empty"
    download = client.get(f"/api/imports/{body['id']}/rows.csv", headers=headers)
    assert download.text.splitlines()[0] == (
        "\ufeffrow,bucket,reason,Bib,Name,ChipTime,Split 1,Split 2")


@pytest.mark.parametrize(("mapping", "field"), [
    ({"Bib": "Dossard", "ChipTime": "Finish Clock", "Club": "Athlete"}, "mapping.Club"),
    ({"Bib": "Dossard", "ChipTime": "Gun Time"}, "mapping.ChipTime"),
    ({"Bib": "Dossard", "ChipTime": "Dossard"}, "mapping.ChipTime"),
    ({"Bib": "Dossard", "Name": "Athlete"}, "mapping.ChipTime"),
])
def test_a_bad_mapping_is_a_422_naming_the_field_and_the_import_keeps_waiting(
    upload: Upload, client: TestClient, headers: dict[str, str], split_results: ImportType,
    mapping: dict[str, str], field: str,
) -> None:
    body = waiting_import(upload)

    response = post_mapping(client, headers, body["id"], mapping)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field.split(".")[1] in response.json()["detail"]
    after = body_of(client, headers, body["id"])
    assert (after["status"], after["mappingState"]) == ("paused", "needs_mapping")


def test_a_body_without_a_mapping_object_is_a_422(
    upload: Upload, client: TestClient, headers: dict[str, str], split_results: ImportType
) -> None:
    body = waiting_import(upload)
    response = client.post(f"/api/imports/{body['id']}/mapping", json={"Bib": "Dossard"},
                           headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "mapping"


def test_an_import_not_waiting_for_a_mapping_refuses_one_with_409(
    upload: Upload, client: TestClient, headers: dict[str, str], split_results: ImportType
) -> None:
    detected = waiting_import(upload, DETECTED)
    fixed = upload("sequence,number,barcode\r\n1,0001,\r\n").json()
    for import_id in (detected["id"], fixed["id"]):
        response = post_mapping(client, headers, import_id, {"Bib": "Dossard"})
        assert response.status_code == 409, response.text
        assert "not waiting for a column mapping" in response.json()["detail"]


def test_resume_does_not_skip_the_mapping_but_cancel_ends_the_wait(
    upload: Upload, client: TestClient, headers: dict[str, str], split_results: ImportType
) -> None:
    body = waiting_import(upload)
    resumed = client.post(f"/api/imports/{body['id']}/resume", headers=headers)
    assert resumed.status_code == 409
    assert "waits for its column mapping" in resumed.json()["detail"]

    cancelled = client.post(f"/api/imports/{body['id']}/cancel", headers=headers).json()
    assert cancelled["status"] == "cancelled"
    assert {s["name"]: s["state"] for s in cancelled["stages"]}["Columns"] == "cancelled"
    late = post_mapping(client, headers, body["id"], GOOD_MAPPING)
    assert late.status_code == 409
    assert body_of(client, headers, body["id"])["mappingState"] == "needs_mapping"


def test_a_job_resumed_elsewhere_without_a_mapping_waits_again(
    upload: Upload, db: Session, run_import: RunImport, split_results: ImportType
) -> None:
    body = waiting_import(upload)
    run = db.get(Import, uuid.UUID(body["id"])).job_run
    run.status = JobStatus.QUEUED  # what the jobs page's Resume does to the run

    run_import(body["id"])

    run = db.get(JobRun, run.id)
    assert run.status == JobStatus.PAUSED
    assert run.log[-2]["message"] == "waiting for a column mapping"
    assert db.get(Import, uuid.UUID(body["id"])).rows_total is None


# --- scoping and permission -----------------------------------------------------------------


def test_another_tenant_cannot_map_an_import(
    upload: Upload, client: TestClient, db: Session, split_results: ImportType
) -> None:
    body = waiting_import(upload)
    other = auth(db, make_tenant(db), Role.TENANT_ADMIN)

    assert post_mapping(client, other, body["id"], GOOD_MAPPING).status_code == 404
    assert client.get(f"/api/imports/{body['id']}", headers=other).status_code == 404
    imp = db.get(Import, uuid.UUID(body["id"]))
    db.refresh(imp)
    assert imp.mapping_state == "needs_mapping"


@pytest.mark.parametrize(("role", "status", "lacking"), [
    (Role.VIEWER, 403, Perm.IMPORTS_IMPORT_RUN),
    (Role.EVENT_MANAGER, 403, Perm.INVENTORY_NUMBER_MANAGE),  # runs imports, not this type
    (Role.TENANT_ADMIN, 200, None),
])
def test_mapping_needs_the_import_types_own_permission(
    upload: Upload, client: TestClient, db: Session, tenant: Tenant, role: Role, status: int,
    lacking: Perm | None,
) -> None:
    with registered(split_results_type(permission=Perm.INVENTORY_NUMBER_MANAGE)):
        body = waiting_import(upload)
        response = post_mapping(client, auth(db, tenant, role), body["id"], GOOD_MAPPING)
        assert response.status_code == status, response.text
        if lacking is not None:
            assert lacking.value in response.json()["detail"]
            assert body_of(client, auth(db, tenant, Role.VIEWER), body["id"])[
                "mappingState"] == "needs_mapping"


# --- the progress page ------------------------------------------------------------------------


def test_the_page_shows_the_mapping_form_preselected_with_the_sample(
    upload: Upload, client: TestClient, headers: dict[str, str], split_results: ImportType
) -> None:
    body = waiting_import(upload)
    page = client.get(f"/imports/{body['id']}", headers=headers)
    assert page.status_code == 200
    text = page.text
    assert 'action="/imports/' + body["id"] + '/mapping"' in text
    assert 'name="csrf_token"' in text
    assert re.search(r'<option value="Dossard" selected>Dossard</option>', text)
    assert text.count('<span class="required">required</span>') == 2
    assert "Mapping needed" in text
    assert "<td>Grace</td>" in text  # a sample row
    assert 'value="resume"' not in text  # Resume would only wait again


def test_the_form_maps_the_columns_and_a_bad_choice_is_shown_on_the_page(
    upload: Upload, client: TestClient, headers: dict[str, str], split_results: ImportType
) -> None:
    body = waiting_import(upload)
    url = f"/imports/{body['id']}/mapping"
    fields = ["Bib", "ChipTime", "Name"]

    bad = client.post(url, headers=headers, follow_redirects=False,
                      data={"field": fields, "header": ["Dossard", "", "Athlete"]})
    assert bad.status_code == 422
    assert 'required field "ChipTime" is not mapped to a column' in html.unescape(bad.text)
    assert 'data-field="mapping.ChipTime"' in bad.text
    assert re.search(r'<option value="Athlete" selected>Athlete</option>', bad.text)

    good = client.post(url, headers=headers, follow_redirects=False,
                       data={"field": fields, "header": ["Dossard", "Finish Clock", ""]})
    assert good.status_code == 303
    assert good.headers["location"] == f"/imports/{body['id']}"
    after = body_of(client, headers, body["id"])
    assert (after["status"], after["mapping"]) == (
        "queued", {"Bib": "Dossard", "ChipTime": "Finish Clock"})
    page = client.get(f"/imports/{body['id']}", headers=headers).text
    assert 'class="column-map"' in page and "mapping-form" not in page
