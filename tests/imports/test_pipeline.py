"""The import pipeline (C05) with the manufactured-number import (T06) plugged in: what an
upload is refused for, the stages, the buckets, resuming, and the row downloads."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.core.models import AuditEntry, Role, Tenant
from racehub.imports.models import Import, ImportRowResult
from racehub.imports.registry import IMPORT_TYPES
from racehub.inventory.models import NumberType, RaceNumber
from racehub.jobs.models import JobRun
from racehub.settings import Settings
from tests.factories import auth, make_number_type, make_tenant
from tests.imports.conftest import RunImport, Upload

GOOD = ("sequence,number,barcode\r\n"
        "1,0001,012345678901\r\n"
        "2,0002,\r\n"
        "3,0003,E2801160\r\n")


def counts_of(body: dict[str, Any]) -> dict[str, int]:
    return {b["key"]: b["count"] for b in body["buckets"]}


def rows_in(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


# --- the upload -----------------------------------------------------------------------------


def test_an_upload_is_stored_and_queued_with_the_stage_bar(
    upload: Upload, db: Session, settings: Settings
) -> None:
    response = upload(GOOD)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["fileFormat"], body["header"]) == (
        "queued", "csv", ["sequence", "number", "barcode"])
    assert body["columnMap"] == {"sequence": 0, "number": 1, "barcode": 2}
    stages = {s["name"]: s for s in body["stages"]}
    assert list(stages) == ["Columns", "Cells", "Verifying", "Processing", "Done"]
    assert stages["Columns"]["state"] == "auto_applied"
    assert stages["Verifying"]["state"] == "skipped"
    assert stages["Verifying"]["tooltip"] == ("Skipped — manufactured-number imports do not "
                                             "need fingerprint verification.")
    imp = db.get(Import, body["id"])
    assert (settings.data_dir / imp.stored_path).read_bytes() == GOOD.encode()
    # Its run names the import it works on: who may control it follows from the import.
    assert (imp.job_run.subject_type, imp.job_run.subject_id) == ("import", imp.id)
    queued = db.execute(select(func.count()).select_from(
        __import__("sqlalchemy").table("procrastinate_jobs"))).scalar()
    assert queued == 1


@pytest.mark.parametrize(("content", "message"), [
    ("sequence,number\r\n1,0001\r\n", 'the file has no "barcode" column'),
    ("Sequence;Number\r\n1;0001\r\n", 'no "barcode" column'),
    ("seq,num,code\r\n1,2,3\r\n", 'no "sequence", "number", "barcode" columns'),
    ("", "the file is empty"),
    ("sequence,number,barcode\r\n", "header row but no data rows"),
    (b"%PDF-1.7 binary", "PDF"),
])
def test_an_unusable_file_is_a_400_and_leaves_nothing(
    upload: Upload, db: Session, settings: Settings, content: str | bytes, message: str
) -> None:
    response = upload(content)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert message in response.json()["detail"]
    assert response.json()["errors"][0]["field"] == "file"
    assert rows_in(db, Import) == 0 and rows_in(db, JobRun) == 0
    assert not any((settings.data_dir / "imports").rglob("upload"))


@pytest.mark.parametrize("filename", ["notes.txt", "numbers.json", "scan.PDF"])
def test_a_file_named_as_no_spreadsheet_is_refused_as_the_wrong_type(
    upload: Upload, db: Session, filename: str
) -> None:
    """Even a .txt holding a header and no rows: its type is what is wrong, not its rows."""
    response = upload("sequence,number,barcode\n", filename=filename)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    suffix = filename.rsplit(".", 1)[1].lower()
    assert detail.startswith(f"{filename}: a .{suffix} file is the wrong type: upload a .csv "
                             "or .xlsx file")
    assert "no data rows" not in detail
    assert response.json()["errors"][0]["field"] == "file"
    assert rows_in(db, Import) == 0


def test_the_import_type_and_number_type_are_required(
    upload: Upload, client: TestClient, headers: dict[str, str], db: Session
) -> None:
    unknown = upload(GOOD, import_type="NOPE")
    assert unknown.status_code == 400 and "unknown importType 'NOPE'" in unknown.text
    missing = client.post("/api/imports", params={"importType": "NUMBER_ONBOARDING"},
                          headers=headers, files={"file": ("a.csv", GOOD.encode())})
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "numberTypeId"
    foreign = make_number_type(db, make_tenant(db))
    other = upload(GOOD, number_type_id=foreign.id)
    assert other.status_code == 404 and other.json()["errors"][0]["field"] == "numberTypeId"


def test_only_those_who_manage_inventory_import_numbers(
    upload: Upload, db: Session, tenant: Tenant
) -> None:
    manager = upload(GOOD, as_headers=auth(db, tenant, Role.EVENT_MANAGER))
    assert manager.status_code == 403 and "inventory:number:manage" in manager.text
    viewer = upload(GOOD, as_headers=auth(db, tenant, Role.VIEWER))
    assert viewer.status_code == 403 and "imports:import:run" in viewer.text


# --- running ---------------------------------------------------------------------------------


def test_every_row_lands_in_its_bucket(upload: Upload, run_import: RunImport, db: Session,
                                       client: TestClient, headers: dict[str, str],
                                       number_type: NumberType) -> None:
    from tests.factories import onboard

    onboard(db, number_type, ("9", "0009", "OLD-9"))
    content = ("sequence,number,barcode,colour\r\n"
               "1,0001,012345678901,red\r\n"      # imported, leading zero kept
               "2,0002,,red\r\n"                   # imported without a tag
               "9,0009,OLD-9,red\r\n"              # already on file
               "4,0004,T4,red\r\n"                 # duplicate sequence (with row 6)
               "x,0005,T5,red\r\n"                 # other issue: sequence
               "4,0004b,T4b,red\r\n"
               "7,0007,1.23457E+11,red\r\n"        # other issue: mangled by Excel
               "8,0008,OLD-9,red\r\n"              # other issue: tag paired to 0009
               ",,,\r\n")                          # blank: ignored
    imp_id = upload(content).json()["id"]
    run_import(imp_id, batch_size=3)
    body = client.get(f"/api/imports/{imp_id}", headers=headers).json()
    assert (body["status"], body["stage"], body["percent"]) == ("completed", "Done", 100.0)
    assert body["rowsTotal"] == 8 and body["rowsDone"] == 8
    assert counts_of(body) == {"imported": 1, "imported_without_tag": 1, "already_on_file": 1,
                               "duplicate_sequence": 2, "other_issue": 3}
    assert all(s["state"] in ("done", "auto_applied", "skipped") for s in body["stages"])
    issues = client.get(f"/api/imports/{imp_id}/rows", headers=headers,
                        params={"bucket": "other_issue"}).json()["items"]
    assert [(r["rowNumber"], r["reason"]) for r in issues] == [
        (6, "sequence 'x' is not a positive whole number"),
        (8, 'column "barcode": "1.23457E+11" looks like a number mangled by Excel '
            "(scientific notation); re-export the column as text"),
        (9, "barcode OLD-9 is already paired to number 0009 (sequence 9, Marathon 2027); "
            "not re-paired to sequence 8"),
    ]
    tagged = db.scalar(select(RaceNumber).where(RaceNumber.sequence == 1))
    assert tagged.tag.code == "012345678901"
    (completed,) = db.scalars(select(AuditEntry).where(
        AuditEntry.action == "import.completed", AuditEntry.target_id == imp_id)).all()
    assert completed.after["importType"] == "NUMBER_ONBOARDING"
    assert completed.after["params"]["numberTypeId"] == str(number_type.id)
    assert (completed.after["rowsTotal"], completed.after["counts"]) == (8, counts_of(body))


def test_reimporting_the_same_file_changes_nothing_but_the_state_log(
    upload: Upload, run_import: RunImport, db: Session, client: TestClient,
    headers: dict[str, str]
) -> None:
    run_import(upload(GOOD).json()["id"])
    before = rows_in(db, RaceNumber)
    again = upload(GOOD).json()["id"]
    run_import(again)
    body = client.get(f"/api/imports/{again}", headers=headers).json()
    assert counts_of(body)["already_on_file"] == 3 and rows_in(db, RaceNumber) == before


def test_an_xlsx_file_is_read_as_text(upload: Upload, run_import: RunImport, db: Session,
                                      tmp_path: Path, client: TestClient,
                                      headers: dict[str, str]) -> None:
    path = tmp_path / "batch.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["sequence", "number", "barcode"])
    sheet.write_number(1, 0, 1)
    sheet.write_string(1, 1, "0001")
    sheet.write_string(1, 2, "000123")
    sheet.write_number(2, 0, 2)
    sheet.write_number(2, 1, 2)
    sheet.write_number(2, 2, 1234567890123456789)  # beyond a float's precision
    book.close()
    imp_id = upload(path.read_bytes(), filename="batch.xlsx").json()["id"]
    run_import(imp_id)
    body = client.get(f"/api/imports/{imp_id}", headers=headers).json()
    assert body["fileFormat"] == "xlsx"
    assert counts_of(body)["imported"] == 1 and counts_of(body)["other_issue"] == 1
    assert db.scalar(select(RaceNumber).where(RaceNumber.sequence == 1)).tag.code == "000123"


def test_pause_then_resume_continues_after_the_last_committed_batch(
    upload: Upload, run_import: RunImport, db: Session, client: TestClient,
    headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    content = "sequence,number,barcode\r\n" + "".join(f"{n},{n:04d},\r\n" for n in range(1, 11))
    imp_id = upload(content).json()["id"]
    real = IMPORT_TYPES["NUMBER_ONBOARDING"]
    batches: list[list[int]] = []

    def process_then_pause(*args: Any, **kwargs: Any) -> Any:
        batches.append([r.number for r in kwargs["rows"]])
        if len(batches) == 2:  # a pause asked for while the second batch is written
            client.post(f"/api/imports/{imp_id}/pause", headers=headers)
        return real.process(*args, **kwargs)

    monkeypatch.setitem(IMPORT_TYPES, "NUMBER_ONBOARDING",
                        dataclasses.replace(real, process=process_then_pause))
    run_import(imp_id, batch_size=3)
    paused = client.get(f"/api/imports/{imp_id}", headers=headers).json()
    assert (paused["status"], paused["rowsDone"]) == ("paused", 6)
    assert {s["name"]: s["state"] for s in paused["stages"]}["Processing"] == "paused"

    resumed = client.post(f"/api/imports/{imp_id}/resume", headers=headers)
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    run_import(imp_id, batch_size=3)
    done = client.get(f"/api/imports/{imp_id}", headers=headers).json()
    assert done["status"] == "completed"
    assert batches == [[2, 3, 4], [5, 6, 7], [8, 9, 10], [11]]  # nothing twice, nothing skipped
    assert counts_of(done)["imported_without_tag"] == 10
    assert rows_in(db, ImportRowResult) == 10 and rows_in(db, RaceNumber) == 10


def test_cancel_keeps_the_partial_breakdown(
    upload: Upload, run_import: RunImport, db: Session, client: TestClient,
    headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    content = "sequence,number,barcode\r\n" + "".join(f"{n},{n:04d},\r\n" for n in range(1, 8))
    imp_id = upload(content).json()["id"]
    real = IMPORT_TYPES["NUMBER_ONBOARDING"]
    calls = []

    def process_then_cancel(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            client.post(f"/api/imports/{imp_id}/cancel", headers=headers)
        return real.process(*args, **kwargs)

    monkeypatch.setitem(IMPORT_TYPES, "NUMBER_ONBOARDING",
                        dataclasses.replace(real, process=process_then_cancel))
    run_import(imp_id, batch_size=2)
    body = client.get(f"/api/imports/{imp_id}", headers=headers).json()
    assert (body["status"], body["rowsDone"], body["rowsTotal"]) == ("cancelled", 4, 7)
    assert counts_of(body)["imported_without_tag"] == 4 and rows_in(db, RaceNumber) == 4
    page = client.get(f"/inventory/numbers/onboard/imports/{imp_id}/summary", headers=headers)
    assert page.status_code == 200
    assert "Cancelled after 4 of 7 rows" in page.text
    assert '<strong class="not-processed">3</strong>' in page.text


# --- reading results -------------------------------------------------------------------------


def test_bucket_rows_page_and_download_as_csv(upload: Upload, run_import: RunImport,
                                              client: TestClient,
                                              headers: dict[str, str]) -> None:
    content = "sequence,number,barcode\r\n" + "".join(
        f"x{n},=HYPERLINK(\"evil\"),\r\n" for n in range(1, 6))
    imp_id = upload(content).json()["id"]
    run_import(imp_id)
    first = client.get(f"/api/imports/{imp_id}/rows", headers=headers,
                       params={"bucket": "other_issue", "limit": 2}).json()
    rest = client.get(f"/api/imports/{imp_id}/rows", headers=headers, params={
        "bucket": "other_issue", "limit": 2, "cursor": first["nextCursor"]}).json()
    assert [r["rowNumber"] for r in first["items"] + rest["items"]] == [2, 3, 4, 5]
    download = client.get(f"/api/imports/{imp_id}/rows.csv", headers=headers,
                          params={"bucket": "other_issue"})
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(download.text.lstrip("\ufeff"))))
    assert lines[0] == ["row", "bucket", "reason", "sequence", "number", "barcode"]
    assert len(lines) == 6
    assert lines[1][4] == "'=HYPERLINK(\"evil\")"  # never a live formula in Excel
    bad = client.get(f"/api/imports/{imp_id}/rows.csv", headers=headers,
                     params={"bucket": "nope"})
    assert bad.status_code == 400 and "unknown bucket" in bad.text


def test_recent_imports_are_listed_by_type(upload: Upload, client: TestClient,
                                           headers: dict[str, str]) -> None:
    ids = [upload(GOOD, filename=f"b{n}.csv").json()["id"] for n in range(3)]
    listed = client.get("/api/imports", headers=headers,
                        params={"importType": "NUMBER_ONBOARDING", "limit": 2}).json()
    assert [i["id"] for i in listed["items"]] == ids[::-1][:2]


def test_another_tenants_import_is_not_found(upload: Upload, client: TestClient, db: Session
                                             ) -> None:
    imp_id = upload(GOOD).json()["id"]
    stranger = auth(db, make_tenant(db), Role.TENANT_ADMIN)
    for path in ("", "/rows", "/rows.csv"):
        assert client.get(f"/api/imports/{imp_id}{path}", headers=stranger).status_code == 404
    assert client.post(f"/api/imports/{imp_id}/cancel", headers=stranger).status_code == 404


# --- pages -----------------------------------------------------------------------------------


def test_progress_and_summary_pages(upload: Upload, run_import: RunImport, client: TestClient,
                                    headers: dict[str, str], db: Session) -> None:
    imp_id = upload(GOOD).json()["id"]
    queued = client.get(f"/imports/{imp_id}", headers=headers)
    assert queued.status_code == 200
    assert "Auto-applied" in queued.text and "SKIPPED" in queued.text
    assert 'hx-trigger="every 1s"' in queued.text
    assert 'data-callers="{&#34;t06&#34;:' in queued.text
    run_import(imp_id)
    done = client.get(f"/imports/{imp_id}", headers={**headers, "HX-Request": "true"})
    assert 'data-terminal="true"' in done.text and "every 1s" not in done.text
    summary = client.get(f"/inventory/numbers/onboard/imports/{imp_id}/summary",
                         headers=headers)
    assert summary.status_code == 200
    for label in ("Rows imported", "Rows imported without a tag", "Rows already on file",
                  "Duplicate sequence", "Other issues"):
        assert label in summary.text
    assert "012345678901" in summary.text
    upload_page = client.get("/inventory/numbers/onboard/import", headers=headers)
    assert "Required columns: <code>sequence</code>, <code>number</code>, " \
           "<code>barcode</code>" in upload_page.text
    assert "source system" not in upload_page.text.lower()
    assert "batch.csv" in upload_page.text  # the recent imports list
