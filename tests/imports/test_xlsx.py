"""The streaming XLSX reader: hostile workbooks are refused before anything is unpacked or
kept, and honest ones read exactly as calamine reads them."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import zipfile
from pathlib import Path

import pytest
import python_calamine
import xlsxwriter

from racehub.imports import xlsx
from racehub.imports.reader import Limits, UnreadableFile, open_table
from racehub.imports.service import import_limits
from racehub.settings import Settings
from tests.imports.workbooks import (
    MAIN,
    a1_and_xfd1048576,
    forbid_calamine,
    shared_strings_bomb,
    sheet_bomb,
    sheet_xml,
    write_workbook,
)

MB = 1 << 20


@pytest.fixture(autouse=True)
def _no_calamine_for_hostile_files(request: pytest.FixtureRequest,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if "honest" not in request.node.name:
        forbid_calamine(monkeypatch)


def read_all(path: Path, limits: Limits | None = None) -> list[list[str]]:
    table = open_table(path, limits=limits)
    table.check()
    return [row.cells for row in table.rows()]


# --- the hostile workbooks of issue 15 ------------------------------------------------------


def test_a1_and_xfd1048576_is_refused_from_its_dimension_before_calamine(
    tmp_path: Path,
) -> None:
    """calamine would allocate 512 GiB for this 1 KB file and abort the process."""
    path = a1_and_xfd1048576(tmp_path / "a.xlsx")
    assert path.stat().st_size < 5000

    with pytest.raises(UnreadableFile) as refused:
        open_table(path)

    assert refused.value.detail == (
        'the sheet "Data" is too large: its dimension declares A1:XFD1048576, 1,048,576 rows '
        "x 16,384 columns; the limit is 1,000 columns (A to ALL); delete the stray cells far "
        "from the data (Ctrl+End shows the last one) and save it again")


def test_a1_and_xfd1048576_written_by_xlsxwriter_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "real.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet()
    sheet.write_string(0, 0, "sequence")
    sheet.write_string(1_048_575, 16_383, "x")
    workbook.close()

    with pytest.raises(UnreadableFile, match=r"A1:XFD1048576, 1,048,576 rows x 16,384 col"):
        open_table(path)


def test_a_dimension_that_understates_the_sheet_is_caught_by_the_cells(
    tmp_path: Path,
) -> None:
    """The upload reads the first rows only: there a lie is caught when those rows show
    it; one hidden further down is caught by the whole-file check the job runs."""
    near = write_workbook(tmp_path / "near.xlsx", sheet_xml(
        {"A1": "sequence", "A2": "1", "XFD2": "x"}, dimension="A1:A2"))
    with pytest.raises(UnreadableFile, match=r"its cells span A1:XFD2, 2 rows x 16,384 col"):
        open_table(near)

    cells = {"A1": "sequence"} | {f"A{row}": str(row) for row in range(2, 5000)}
    far = write_workbook(tmp_path / "far.xlsx", sheet_xml(
        cells | {"XFD1048576": "x"}, dimension="A1:A4999"))
    table = open_table(far)
    assert table.header == ["sequence"]  # only the start was read (its first 64 KB)
    with pytest.raises(UnreadableFile, match=r"its cells span A1:XFD1048576"):
        table.check()
    with pytest.raises(UnreadableFile, match=r"its cells span A1:XFD1048576"):
        list(table.rows())  # reading on refuses it too, before the row is kept


def test_a_used_range_over_the_cell_cap_is_refused(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "a.xlsx", sheet_xml(
        {"A1": "sequence", "B2": "1", "T100000": "x"}))
    limits = Limits(max_cells=1_000_000)

    with pytest.raises(UnreadableFile, match=(
            r"its cells span A1:T100000, 100,000 rows x 20 columns \(2,000,000 cells\); "
            r"the limit is 1,000,000 cells")):
        read_all(path, limits)


def test_cells_present_over_the_cap_are_refused(tmp_path: Path) -> None:
    cells = {f"A{row}": str(row) for row in range(1, 31)}
    path = write_workbook(tmp_path / "a.xlsx", sheet_xml(cells))

    with pytest.raises(UnreadableFile, match="holds over 20 cells; the limit is 20 cells"):
        read_all(path, Limits(max_cells=20))
    assert len(read_all(path, Limits(max_cells=30))) == 29


def test_a_shared_strings_zip_bomb_is_refused_from_its_declared_size(tmp_path: Path) -> None:
    path = shared_strings_bomb(tmp_path / "bomb.xlsx", 300 * MB)
    assert path.stat().st_size < 400_000  # 300 MB of XML in a few hundred KB

    with pytest.raises(UnreadableFile, match=(
            r"^the workbook is too large: its shared strings \(xl/sharedStrings.xml\) unpacks "
            r"to 300.0 MB; the limit is 256.0 MB$")):
        open_table(path)


def test_a_sheet_xml_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = sheet_bomb(tmp_path / "bomb.xlsx", 2 * MB)

    with pytest.raises(UnreadableFile, match=(
            r"the sheet's XML \(xl/worksheets/sheet1.xml\) unpacks to 2.0 MB; "
            r"the limit is 1.0 MB")):
        open_table(path, limits=Limits(max_xml_bytes=MB))
    assert read_all(path, Limits(max_xml_bytes=3 * MB)) == [["1"]]


def test_an_unpacked_size_over_the_declaration_is_never_inflated(tmp_path: Path) -> None:
    """A zip whose directory understates the shared strings: zipfile stops at the
    declared size, the CRC fails, and the file is refused as damaged."""
    path = shared_strings_bomb(tmp_path / "liar.xlsx", 2 * MB)
    data = bytearray(path.read_bytes())
    name = b"xl/sharedStrings.xml"
    # (signature, offset of the uncompressed size, offset of the name): local header, then
    # central directory entry.
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.index(signature)
        while data[at + name_at:at + name_at + len(name)] != name:
            at = data.index(signature, at + 4)
        data[at + size_at:at + size_at + 4] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(data))

    with pytest.raises(UnreadableFile, match=r"damaged \(xl/sharedStrings.xml: .*CRC"):
        read_all(path, Limits(max_xml_bytes=MB))


def test_a_zip_listing_thousands_of_parts_is_refused_before_its_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_workbook(tmp_path / "a.xlsx", sheet_xml({"A1": "name", "A2": "Ann"}))
    with zipfile.ZipFile(path, "a") as archive:
        for number in range(10_000):
            archive.writestr(f"x/{number}", b"")
    monkeypatch.setattr(zipfile, "ZipFile", None)  # never reached

    with pytest.raises(UnreadableFile, match=(
            r"^the workbook lists 10,005 parts in its zip; an XLSX has a few dozen "
            r"\(the limit is 10,000\)$")):
        open_table(path)


def test_a_mimetype_bomb_is_not_unpacked_to_tell_the_format(tmp_path: Path) -> None:
    """What a zip is (.ods, .docx...) is told from its first bytes of "mimetype"."""
    path = tmp_path / "a.ods"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("mimetype", "w") as member:
        member.write(b"application/vnd.oasis.opendocument.spreadsheet")
        for _ in range(300):
            member.write(b" " * MB)
    reads: list[int] = []
    original = zipfile.ZipExtFile.read

    def read(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        reads.append(n)
        return original(self, n)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zipfile.ZipExtFile, "read", read)
        with pytest.raises(UnreadableFile, match=r"\(.ods\)"):
            open_table(path)
    assert reads == [100]


@pytest.mark.parametrize(("offset", "value"), [
    (6, b"\x41"),  # needs zip version 6.5
    (8, b"\x01"),  # encrypted
    (8, b"\x40"),  # strong encryption
    (10, b"\x63"),  # compression method 99
])
def test_a_zip_entry_zipfile_cannot_open_is_refused_as_damaged(
    tmp_path: Path, offset: int, value: bytes
) -> None:
    """A newer zip version, encryption or an unknown compression method in the workbook's
    parts: refused, not a 500."""
    path = write_workbook(tmp_path / "a.xlsx", sheet_xml({"A1": "name", "A2": "Ann"}))
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")  # xl/workbook.xml's entry in the central directory
    while data[at + 46:at + 61] != b"xl/workbook.xml":
        at = data.index(b"PK\x01\x02", at + 4)
    data[at + offset:at + offset + 1] = value
    path.write_bytes(bytes(data))

    with pytest.raises(UnreadableFile, match="damaged"):
        read_all(path)


def test_a_cell_over_131072_characters_is_refused(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "a.xlsx", sheet_xml(
        {"A1": "name", "A2": "x" * 131_073}))

    with pytest.raises(UnreadableFile, match="cell A2 holds over 131,072 characters"):
        read_all(path)


def test_a_shared_string_over_131072_characters_is_refused(tmp_path: Path) -> None:
    path = shared_strings_bomb(tmp_path / "a.xlsx", 200_000)

    with pytest.raises(UnreadableFile, match="shared string 0 holds over 131,072 characters"):
        open_table(path)


def test_a_dtd_is_refused(tmp_path: Path) -> None:
    laughs = ('<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa">]>'
              + sheet_xml({"A1": "&a;"}).split("?>", 1)[1])
    path = write_workbook(tmp_path / "a.xlsx", laughs)

    with pytest.raises(UnreadableFile, match="declares a DTD"):
        read_all(path)


@pytest.mark.parametrize(("xml", "message"), [
    ('<row r="2"><c r="A2" t="inlineStr"><is><t>a</t></is></c></row><row r="1"></row>',
     "row 1 comes after row 2"),
    ('<row r="1"><c r="A7" t="inlineStr"><is><t>a</t></is></c></row>',
     'cell reference "A7" in row 1 is not valid'),
    ('<row r="1"><c r="AAAA1"><v>1</v></c></row>', 'cell reference "AAAA1"'),
    ('<row r="1048577"><c><v>1</v></c></row>', "row 1048577 is beyond the sheet's"),
    ('<row r="1"><c r="A1"><v>abc</v></c></row>', 'cell A1 holds "abc" where a number'),
    ('<row r="1"><c r="A1" t="s"><v>3</v></c></row>', "shared string 3, which does not"),
    ('<row r="1"><c r="A1" t="s"><v>' + "9" * 5000 + "</v></c></row>",
     "cell A1 has no shared string index"),
    ('<row r="' + "9" * 5000 + '"><c><v>1</v></c></row>', "beyond the sheet's 1,048,576"),
    ('<row r="1"><c r="A1" s="' + "9" * 5000 + '"><v>1</v></c><c r="B1"><v>2</v></c></row>'
     '<row r="2"><c r="A2" t="inlineStr"><is><t>x</t></is></c></row>', None),
])
def test_a_malformed_sheet_is_refused_naming_the_row_or_cell(
    tmp_path: Path, xml: str, message: str | None
) -> None:
    sheet = f'<worksheet xmlns="{MAIN}"><sheetData>{xml}</sheetData></worksheet>'
    path = write_workbook(tmp_path / "a.xlsx", sheet)

    if message is None:  # an unusable style index is no style, as for calamine
        assert read_all(path) == [["x", ""]]
        return
    with pytest.raises(UnreadableFile, match=message):
        read_all(path)


# --- what still fits --------------------------------------------------------------------------


def test_the_default_limits_are_the_settings_defaults() -> None:
    assert import_limits(Settings()) == Limits()


def test_a_100k_row_20_column_sheet_fits_the_default_limits(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "a.xlsx", sheet_xml(
        {"A1": "sequence", "T1": "last", "A2": "1", "T100000": "x"}, dimension="A1:T100000"))

    rows = read_all(path)

    assert rows[0][0] == "1" and rows[-1][19] == "x" and len(rows[-1]) == 20


def test_honest_thousands_of_shared_strings_read_back_in_order(tmp_path: Path) -> None:
    """Shared strings are kept in joined blocks of 1,024: across block boundaries."""
    path = tmp_path / "honest.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet()
    sheet.write_string(0, 0, "code")
    texts = [f"{n:05d}-" + "é" * (n % 7) + "漢" * (n % 3 == 0) for n in range(3000)]
    for row, text in enumerate(texts, start=1):
        sheet.write_string(row, 0, text)
    for row, text in enumerate(reversed(texts), start=len(texts) + 1):
        sheet.write_string(row, 0, text)  # the same strings again, from the end
    workbook.close()

    assert [cells[0] for cells in read_all(path)] == texts + texts[::-1]


def test_rows_start_at_column_a_as_the_sheet_shows_them(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "a.xlsx", sheet_xml({"B2": "name", "B3": "Ann"}))

    with pytest.raises(UnreadableFile, match=r"row 1 \(the header\) is empty"):
        open_table(path)
    table = open_table(write_workbook(tmp_path / "b.xlsx",
                                      sheet_xml({"B1": "name", "B2": "Ann"})))
    assert table.header == ["", "name"]
    assert [row.cells for row in table.rows()] == [["", "Ann"]]


# --- honest workbooks read as calamine reads them ---------------------------------------------

FORMATS = ["yyyy-mm-dd", "h:mm", "h:mm:ss.000", "[h]:mm:ss", "[mm]:ss", "mm:ss", "0.00",
           "General", "d/m/yyyy h:mm", "h:mm AM/PM", "0%", '"Y: "0.00',
           "[$-409]mmmm d, yyyy", "@", "#,##0.00_);[Red](#,##0.00)"]
VALUES = [0, 0.5, 1, 1.5, 59, 60, 61, 45000, 45000.25, 45000.999999, 1e-7, 3723.456 / 86400,
          2.5, -1, -0.5, 100000.75, 2958465.9, 1234567.1]


@pytest.mark.parametrize("date_1904", [False, True])
def test_honest_workbook_values_are_what_calamine_reads(
    tmp_path: Path, date_1904: bool
) -> None:
    path = tmp_path / "honest.xlsx"
    workbook = xlsxwriter.Workbook(str(path), {"date_1904": date_1904})
    sheet = workbook.add_worksheet()
    for column, number_format in enumerate(FORMATS):
        style = workbook.add_format({"num_format": number_format})
        sheet.write_string(0, column, number_format)
        for row, value in enumerate(VALUES, start=1):
            sheet.write_number(row, column, value, style)
    last = len(VALUES) + 1
    bold = workbook.add_format({"bold": True})
    sheet.write_boolean(last, 0, True)
    sheet.write_formula(last, 1, "=1/0", None, "#DIV/0!")
    sheet.write_formula(last, 2, '="abc"', None, "abc")
    sheet.write_formula(last, 3, "=1+1", None, 2)
    sheet.write_formula(last, 4, "=TRUE()", None, True)
    sheet.write_string(last, 5, "  spaced\r\n_x0041_ \x01 漢🏃")
    sheet.write_rich_string(last, 6, "plain ", bold, "bold", " end")
    sheet.write_datetime(last, 7, dt.datetime(2026, 12, 7, 14, 45, 30, 250000),
                         workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss.000"}))
    sheet.write_blank(last, 8, None, bold)
    sheet.write_string(last, 9, "")
    workbook.close()

    calamine = python_calamine.CalamineWorkbook.from_path(str(path))
    expected = calamine.get_sheet_by_index(0).to_python()
    got = {number: values for number, values in xlsx.records(path, Limits())()}

    assert len(got) == len(expected)
    for number, values in got.items():
        want = expected[number - 1]
        assert ["" if v is None else v for v in values] == want[:len(values)], number
        assert all(v == "" for v in want[len(values):])
        assert [type(v) for v in values if v not in (None, "")] == [
            type(v) for v in want[:len(values)] if v != ""], number


# --- damaged workbooks: refused, never another exception (a 500, a job dying oddly) ------------


def _honest_parts(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    path = tmp_path / "honest.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet()
    dates = workbook.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, ["sequence", "name", "born"])
    for row in range(1, 30):
        sheet.write_row(row, 0, [row, f"runner {row}"])
        sheet.write_number(row, 2, 30000 + row, dates)
    workbook.close()
    with zipfile.ZipFile(path) as archive:
        return path, {name: archive.read(name) for name in archive.namelist()}


def _read_or_refuse(path: Path) -> None:
    with contextlib.suppress(UnreadableFile):
        read_all(path)


def test_an_xml_declaration_with_an_unknown_encoding_is_refused_as_damaged(
    tmp_path: Path
) -> None:
    sheet = sheet_xml({"A1": "name", "A2": "Ann"}).replace('"UTF-8"', '"UTF-9"')
    path = write_workbook(tmp_path / "a.xlsx", sheet)

    with pytest.raises(UnreadableFile, match=r"damaged \(xl/worksheets/sheet1.xml: .*UTF-9"):
        read_all(path)
    _, parts = _honest_parts(tmp_path)
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in parts.items():
            archive.writestr(member, content.replace(b'encoding="UTF-8"', b'encoding="UTF-9"')
                             if member == "xl/workbook.xml" else content)
    with pytest.raises(UnreadableFile, match=r"damaged \(xl/workbook.xml: .*UTF-9"):
        read_all(path)


def test_honest_workbook_with_mutated_parts_is_read_or_refused(tmp_path: Path) -> None:
    """Fixed seed, 300 workbooks: each has bytes of one XML part changed, dropped or
    inserted (the mutations that found unknown encodings and huge digit strings)."""
    _, parts = _honest_parts(tmp_path)
    rng = random.Random(20261207)
    inserts = [b"9" * 5000, b"<c>", b"</row>", b'r="ZZZ0"', b't="s"', b"<v>", b"&amp;",
               b"\x00", b'<row r="0">', b"-1", b"1e400", b"nan", b'encoding="UTF-9"']
    for _ in range(300):
        name = rng.choice([n for n in parts if n.endswith((".xml", ".rels"))])
        data = bytearray(parts[name])
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.4:
                data[at] = rng.randrange(256)
            elif choice < 0.7:
                del data[at:at + rng.randint(1, 20)]
            else:
                data[at:at] = rng.choice(inserts)
        path = tmp_path / "mutated.xlsx"
        with zipfile.ZipFile(path, "w") as archive:
            for member, content in parts.items():
                archive.writestr(member, bytes(data) if member == name else content)
        _read_or_refuse(path)


def test_honest_workbook_with_damaged_zip_bytes_is_read_or_refused(tmp_path: Path) -> None:
    """Fixed seed, 300 files with bytes of the zip itself changed (headers, directory,
    compressed data): the mutations that found encryption flags and zip versions."""
    path, _ = _honest_parts(tmp_path)
    original = path.read_bytes()
    rng = random.Random(7)
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        damaged = tmp_path / "damaged.xlsx"
        damaged.write_bytes(bytes(data))
        _read_or_refuse(damaged)
