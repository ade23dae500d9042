"""Issue 15.1: hostile XLSX and CSV files are refused at the upload (400 naming the
problem, nothing kept) or fail their job with the reason; no process is taken down and
python-calamine never sees them (it would abort the test process itself)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from racehub.imports.models import Import
from racehub.jobs.models import JobRun, JobStatus
from racehub.settings import Settings
from tests.imports.conftest import RunImport, Upload
from tests.imports.workbooks import (
    MAIN,
    a1_and_xfd1048576,
    bomb,
    forbid_calamine,
    shared_strings_bomb,
    sheet_bomb,
    write_workbook,
)

MB = 1 << 20
GOOD = "sequence,number,barcode\r\n1,0001,012345678901\r\n"


@pytest.fixture(autouse=True)
def _no_calamine(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_calamine(monkeypatch)


def count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def far_cell_past_the_start(path: Path, size: int) -> Path:
    """Rows 1-2 honest, a declared dimension of A1:C2, then ``size`` bytes of blank space
    and a cell at XFD1048576: past what the upload reads of a file this large."""
    cells = "".join(f'<c r="{c}{r}" t="inlineStr"><is><t>{v}</t></is></c>'
                    for r, c, v in ((1, "A", "sequence"), (1, "B", "number"),
                                    (1, "C", "barcode")))
    first = f'<row r="1">{cells}</row><row r="2"><c r="A2"><v>1</v></c><c r="B2"><v>1</v></c></row>'
    return write_workbook(path, bomb(
        size, head=(f'<worksheet xmlns="{MAIN}"><dimension ref="A1:C2"/><sheetData>{first}'),
        tail=('<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
              "</sheetData></worksheet>")))


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "A1 and XFD1048576": (
        a1_and_xfd1048576,
        'the sheet "Data" is too large: its dimension declares A1:XFD1048576, 1,048,576 rows '
        "x 16,384 columns; the limit is 1,000 columns"),
    "A1 and XFD1048576 under a dimension of A1:A2": (
        lambda path: a1_and_xfd1048576(path, dimension="A1:A2"),
        "its cells span A1:XFD1048576, 1,048,576 rows x 16,384 columns"),
    "a 300 MB sharedStrings.xml in 300 KB": (
        lambda path: shared_strings_bomb(path, 300 * MB),
        "its shared strings (xl/sharedStrings.xml) unpacks to 300.0 MB; the limit is 256.0 MB"),
    "a 257 MB sheet XML": (
        lambda path: sheet_bomb(path, 257 * MB),
        "the sheet's XML (xl/worksheets/sheet1.xml) unpacks to 257.0 MB; the limit is "
        "256.0 MB"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_workbook_is_a_400_naming_the_problem_and_leaves_nothing(
    upload: Upload, db: Session, settings: Settings, tmp_path: Path, name: str
) -> None:
    make, message = HOSTILE[name]
    path = make(tmp_path / "hostile.xlsx")

    response = upload(path.read_bytes(), filename="hostile.xlsx")

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("hostile.xlsx: ")
    assert message in response.json()["detail"]
    assert response.json()["errors"][0]["field"] == "file"
    assert count(db, Import) == 0 and count(db, JobRun) == 0
    assert not any(p.is_file() for p in (settings.data_dir / "imports").rglob("*"))


def test_the_caps_are_settings(
    upload: Upload, settings: Settings, tmp_path: Path
) -> None:
    path = sheet_bomb(tmp_path / "a.xlsx", 2 * MB)
    settings.import_max_xml_mb = 1
    refused = upload(path.read_bytes(), filename="a.xlsx")
    assert refused.status_code == 400
    assert "unpacks to 2.0 MB; the limit is 1.0 MB" in refused.json()["detail"]

    settings.import_max_xml_mb, settings.import_max_columns = 256, 2
    narrow = upload(GOOD)
    assert narrow.status_code == 400
    assert "row 1 has 3 cells; the limit is 2 columns" in narrow.json()["detail"]

    settings.import_max_columns, settings.import_max_cells = 1000, 2
    small = upload(f'{GOOD}2,0002,\r\n')
    assert small.status_code == 201  # a CSV is streamed: its cells are not counted


@pytest.mark.parametrize(("content", "message"), [
    ("sequence,number,barcode" + ",x" * 1000 + "\r\n1,2,3\r\n",
     "row 1 has 1,003 cells; the limit is 1,000 columns"),
    ("sequence,number,barcode\r\n1,2," + "9" * (1 << 20) + "\r\n",
     "row 2 is longer than 1,048,576 characters"),
    # one record of 250,000 quoted cells spanning a line each
    ("sequence,number,barcode\r\n" + '"a\n",' * 250_000 + "\r\n",
     "row 2 is longer than 1,048,576 characters"),
    ("sequence,number,barcode\r\n1,2," + "9" * 131_073 + "\r\n",
     "row 2 cannot be read as CSV (field larger than field limit (131072))"),
])
def test_a_csv_row_over_the_limits_is_a_400_naming_the_row(
    upload: Upload, db: Session, content: str, message: str
) -> None:
    response = upload(content)

    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert count(db, Import) == 0


def test_a_small_file_is_checked_whole_at_the_upload(
    upload: Upload, db: Session, tmp_path: Path
) -> None:
    """Up to 1 MB unpacked, the cell past the first rows (and past the first 64 KB the
    reader inflates at a time) is found at the upload."""
    path = far_cell_past_the_start(tmp_path / "far.xlsx", 900_000)

    response = upload(path.read_bytes(), filename="far.xlsx")

    assert response.status_code == 400, response.text
    assert "its cells span A1:XFD1048576" in response.json()["detail"]
    assert count(db, Import) == 0


def test_a_large_file_whose_excess_lies_past_the_start_fails_its_job(
    upload: Upload, run_import: RunImport, db: Session, tmp_path: Path
) -> None:
    """The upload reads the start of a file past 1 MB unpacked; the job reads it whole
    before processing a row, and fails naming the cell."""
    path = far_cell_past_the_start(tmp_path / "far.xlsx", 5 * MB)

    response = upload(path.read_bytes(), filename="far.xlsx")
    assert response.status_code == 201, response.text
    run_import(response.json()["id"])

    imp = db.get(Import, response.json()["id"])
    assert imp is not None
    assert imp.job_run.status == JobStatus.FAILED
    assert imp.job_run.message.startswith(
        'far.xlsx: the sheet "Data" is too large: its cells span A1:XFD1048576')
    assert imp.job_run.done == 0 and imp.rows_total is None


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_job_given_a_hostile_workbook_fails_with_the_reason(
    upload: Upload, run_import: RunImport, db: Session, settings: Settings, tmp_path: Path,
    name: str,
) -> None:
    """A file stored before these checks existed (or swapped on disk) is refused by the
    job itself; the worker lives on."""
    response = upload(GOOD)
    assert response.status_code == 201
    imp = db.get(Import, response.json()["id"])
    assert imp is not None
    make, message = HOSTILE[name]
    make(settings.data_dir / imp.stored_path)

    run_import(imp.id)

    db.refresh(imp)
    assert imp.job_run.status == JobStatus.FAILED
    assert imp.job_run.message.startswith("batch.csv: ")
    assert message in imp.job_run.message
    assert imp.job_run.done == 0
