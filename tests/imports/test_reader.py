"""The import file reader: CSV and XLSX read back as text, refusals with clear messages."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import xlsxwriter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from racehub.imports.reader import (
    Row,
    Table,
    UnreadableFile,
    check_size,
    detect_format,
    open_table,
)

SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?E[+-]\d+", re.IGNORECASE)


def write_csv(tmp_path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / "upload.csv"
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path: Path, rows: Sequence[Sequence[object]]) -> Path:
    workbook = xlsxwriter.Workbook(str(path), {"in_memory": True})
    sheet = workbook.add_worksheet("Data")
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, str):
                sheet.write_string(r, c, value)
            elif isinstance(value, bool):
                sheet.write_boolean(r, c, value)
            elif isinstance(value, int | float):
                sheet.write_number(r, c, value)
            elif isinstance(value, dt.date | dt.timedelta):
                sheet.write_datetime(r, c, value, date_format)
    workbook.close()
    return path


def read(path: Path) -> tuple[Table, list[Row]]:
    table = open_table(path)
    return table, list(table.rows())


def cells(rows: list[Row]) -> list[list[str]]:
    return [row.cells for row in rows]


# --- CSV encodings -----------------------------------------------------------------


def test_csv_utf8_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    table, rows = read(write_csv(tmp_path, "\ufeffname,bib\nZoë,1\n"))

    assert table.header == ["name", "bib"]
    assert table.encoding == "utf-8"
    assert cells(rows) == [["Zoë", "1"]]


def test_csv_utf8_without_bom(tmp_path: Path) -> None:
    table, rows = read(write_csv(tmp_path, "name,bib\nMüller 🏃,1\n"))

    assert table.encoding == "utf-8"
    assert cells(rows) == [["Müller 🏃", "1"]]


def test_csv_that_is_not_utf8_is_read_as_windows_1252(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "name;club;fee\nMüller;Zoë’s club;12 €\n", encoding="cp1252")

    table, rows = read(path)

    assert table.encoding == "cp1252"
    assert cells(rows) == [["Müller", "Zoë’s club", "12 €"]]


def test_csv_decided_on_the_whole_file_not_its_start(tmp_path: Path) -> None:
    text = "name,bib\n" + ("D" * 1000 + ",1\n") * 2000 + "Müller,2\n"  # past the 1st MB
    path = write_csv(tmp_path, text, encoding="cp1252")

    table, rows = read(path)

    assert table.encoding == "cp1252"
    assert rows[-1].cells == ["Müller", "2"]


def test_csv_neither_utf8_nor_windows_1252_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"name,bib\nM\x81ller,1\n")  # 0x81 is undefined in Windows-1252

    with pytest.raises(UnreadableFile, match="neither UTF-8 nor Windows-1252"):
        open_table(path)


def test_csv_utf16_with_bom_as_excel_unicode_text_is_read(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "name\tbib\nZoë\t007\n", encoding="utf-16")

    table, rows = read(path)

    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert cells(rows) == [["Zoë", "007"]]


@pytest.mark.parametrize("damage", [b"\x00", b"\x00\xd8A\x00"])
def test_csv_utf16_that_is_not_valid_utf16_is_refused(tmp_path: Path, damage: bytes) -> None:
    """A cut-short file, a lone surrogate: refused at the upload, not a 500 later."""
    path = tmp_path / "x.csv"
    path.write_bytes("name\tbib\nZoë\t007\n".encode("utf-16") + damage)

    with pytest.raises(UnreadableFile, match="starts as UTF-16 text but is not valid UTF-16"):
        open_table(path)


# --- CSV structure -----------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    text = delimiter.join(["name", "bib", "club"]) + "\n" + delimiter.join(["A", "1", "X"]) + "\n"

    table, rows = read(write_csv(tmp_path, text))

    assert table.delimiter == delimiter
    assert table.header == ["name", "bib", "club"]
    assert cells(rows) == [["A", "1", "X"]]


def test_semicolon_file_with_commas_in_unquoted_cells(tmp_path: Path) -> None:
    text = "Nom, prénom;Dossard\nDupont, Jean;12\nMartin;12,5\n"

    table, rows = read(write_csv(tmp_path, text))

    assert table.delimiter == ";"
    assert cells(rows) == [["Dupont, Jean", "12"], ["Martin", "12,5"]]


def test_comma_file_with_a_semicolon_in_the_header(tmp_path: Path) -> None:
    text = "Name;Alias,Bib,Club\nAnn,1,X\nBob,2,Y\n"

    table, rows = read(write_csv(tmp_path, text))

    assert table.delimiter == ","
    assert cells(rows) == [["Ann", "1", "X"], ["Bob", "2", "Y"]]


def test_one_column_file_is_read_with_a_comma(tmp_path: Path) -> None:
    table, rows = read(write_csv(tmp_path, "barcode\n0123\n0456\n"))

    assert table.delimiter == ","
    assert cells(rows) == [["0123"], ["0456"]]


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_csv_line_endings(tmp_path: Path, newline: str) -> None:
    text = newline.join(["name,bib", "Ann,1", "Bob,2"]) + newline

    _, rows = read(write_csv(tmp_path, text))

    assert [(row.number, row.cells) for row in rows] == [(2, ["Ann", "1"]), (3, ["Bob", "2"])]


def test_quoted_newline_counts_as_one_row_like_a_spreadsheet(tmp_path: Path) -> None:
    text = 'name,address\r\nAnn,"1 rue X\r\n75001 Paris"\r\nBob,"a\nb\nc"\r\nCid,z\r\n'

    _, rows = read(write_csv(tmp_path, text))

    assert [(row.number, row.cells) for row in rows] == [
        (2, ["Ann", "1 rue X\r\n75001 Paris"]),
        (3, ["Bob", "a\nb\nc"]),
        (4, ["Cid", "z"]),
    ]


def test_quoted_delimiters_and_doubled_quotes(tmp_path: Path) -> None:
    text = 'name,nick\n"Dupont, Jean","the ""fast"" one"\n'

    _, rows = read(write_csv(tmp_path, text))

    assert cells(rows) == [["Dupont, Jean", 'the "fast" one']]


def test_unclosed_quote_names_the_row(tmp_path: Path) -> None:
    table = open_table(write_csv(tmp_path, 'name,bib\nAnn,1\n"Bob,2\nCid,3\n'))

    with pytest.raises(UnreadableFile, match="row 3 cannot be read as CSV"):
        list(table.rows())


def test_cells_are_stripped(tmp_path: Path) -> None:
    table, rows = read(write_csv(tmp_path, " name , bib\n  Ann\t, 1 \n"))

    assert table.header == ["name", "bib"]
    assert cells(rows) == [["Ann", "1"]]


def test_blank_rows_are_skipped_without_renumbering(tmp_path: Path) -> None:
    text = "name;bib\n\nAnn;1\n;\n  ; \nBob;2\n\n;;\n\n\n"

    _, rows = read(write_csv(tmp_path, text))

    assert [(row.number, row.cells) for row in rows] == [(3, ["Ann", "1"]), (6, ["Bob", "2"])]


def test_short_rows_are_padded_and_long_rows_reported(tmp_path: Path) -> None:
    text = "name,bib,club\nAnn\nBob,2,X,,\nCid,3,Y,extra\n"

    _, rows = read(write_csv(tmp_path, text))

    assert rows[0] == Row(2, ["Ann", "", ""], [])
    assert rows[1] == Row(3, ["Bob", "2", "X"], [])
    assert rows[2] == Row(4, ["Cid", "3", "Y", "extra"], ["row has 4 cells, the header has 3"])


def test_blank_and_repeated_column_names_are_reported(tmp_path: Path) -> None:
    table, _ = read(write_csv(tmp_path, "name,,bib,name,,\nAnn,x,1,A,,\n"))

    assert table.header == ["name", "", "bib", "name"]
    assert table.issues == [
        "column 2 has no name in the header",
        'column name "name" is used twice (columns 1 and 4)',
    ]


def test_rows_can_be_read_again(tmp_path: Path) -> None:
    table = open_table(write_csv(tmp_path, "name\nAnn\nBob\n"))

    assert list(table.rows()) == list(table.rows())


# --- text, never numbers -------------------------------------------------------------


def test_csv_barcode_keeps_its_leading_zero(tmp_path: Path) -> None:
    _, rows = read(write_csv(tmp_path, "barcode,bib\n012345678901,007\n"))

    assert rows == [Row(2, ["012345678901", "007"], [])]


@pytest.mark.parametrize("value", ["1.23457E+11", "1,23457E+11", "1.2E+5", "1E+12", "1.5e-05"])
def test_csv_number_mangled_by_excel_is_flagged_and_kept(tmp_path: Path, value: str) -> None:
    _, rows = read(write_csv(tmp_path, f'name;barcode\nAnn;"{value}"\n'))

    assert rows[0].cells == ["Ann", value]
    assert rows[0].issues == [
        f'column "barcode": "{value}" looks like a number mangled by Excel '
        "(scientific notation); re-export the column as text"
    ]


@pytest.mark.parametrize("value", ["E+11", "1.2", "12E3", "1E", "AB1E+5", "1.2.3E+4", "007"])
def test_text_that_only_resembles_scientific_notation_is_not_flagged(
    tmp_path: Path, value: str
) -> None:
    _, rows = read(write_csv(tmp_path, f"name;code\nAnn;{value}\n"))

    assert rows[0].issues == []


def test_mangled_value_under_a_blank_column_name_names_the_column_number(tmp_path: Path) -> None:
    _, rows = read(write_csv(tmp_path, "name,,bib\nAnn,1E+12,1\n"))

    assert rows[0].issues[0].startswith('column 2: "1E+12" looks like a number mangled')


# --- empty files and headers ---------------------------------------------------------


def test_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="^the file is empty$"):
        open_table(write_csv(tmp_path, ""))


@pytest.mark.parametrize("text", ["\n\n", "\ufeff", " \r\n , , \r\n", ",,,\n\n,\n"])
def test_file_of_blank_lines_is_refused_as_empty(tmp_path: Path, text: str) -> None:
    with pytest.raises(UnreadableFile, match="^the file is empty$"):
        open_table(write_csv(tmp_path, text))


@pytest.mark.parametrize("text", ["name,bib", "name,bib\r\n", "name,bib\n\n,\n\n"])
def test_header_only_file_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(UnreadableFile, match="header row but no data rows"):
        open_table(write_csv(tmp_path, text))


def test_blank_first_row_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match=r"row 1 \(the header\) is empty"):
        open_table(write_csv(tmp_path, "\nname,bib\nAnn,1\n"))


# --- refused files -------------------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "neither CSV nor XLSX (it looks like a PDF)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old Excel 97-2003 .xls"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "it looks like a PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "it looks like a JPEG image"),
        (b"name,bib\x00\x01\x02", "it holds binary data, not text"),
        (b"<!DOCTYPE html><html><table><tr><td>1</td></tr></table>", "web page or XML"),
        (b'<?xml version="1.0"?><Workbook>', "web page or XML"),
    ],
)
def test_files_that_are_not_csv_or_xlsx_are_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "upload.csv"
    path.write_bytes(content)

    with pytest.raises(UnreadableFile, match=re.escape(message)) as raised:
        open_table(path)
    with pytest.raises(UnreadableFile, match=re.escape(message)):
        detect_format(content)
    assert raised.value.detail.startswith("the file is neither CSV nor XLSX (")


def test_old_xls_message_says_how_to_fix_it() -> None:
    with pytest.raises(UnreadableFile, match=r"save it as \.xlsx or \.csv"):
        detect_format(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"notes.txt": b"hello"}, "(it is a ZIP archive)"),
        ({"word/document.xml": b"<w/>"}, "(it looks like a Word document)"),
        ({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"}, "(.ods)"),
        ({"xl/workbook.bin": b"\x00"}, "(.xlsb)"),
    ],
)
def test_zip_that_is_not_an_xlsx_workbook_is_refused(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    path = make_zip(tmp_path / "upload.xlsx", members)

    with pytest.raises(UnreadableFile, match=re.escape(message)):
        open_table(path)


def test_truncated_xlsx_is_refused_as_damaged(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "upload.xlsx", [["name"], ["Ann"]])
    path.write_bytes(path.read_bytes()[:600])

    with pytest.raises(UnreadableFile, match="damaged or incomplete"):
        open_table(path)


def test_format_comes_from_the_content_not_the_name(tmp_path: Path) -> None:
    xlsx = write_xlsx(tmp_path / "named.csv", [["name"], ["Ann"]])
    csv_file = tmp_path / "named.xlsx"
    csv_file.write_text("name\nAnn\n")

    assert (open_table(xlsx).format, open_table(csv_file).format) == ("xlsx", "csv")
    assert detect_format(xlsx.read_bytes()[:100]) == "xlsx"


def test_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "name\n" + "Ann\n" * 10)

    with pytest.raises(UnreadableFile, match="^the file is 45 bytes; the limit is 40 bytes$"):
        open_table(path, max_bytes=40)
    assert open_table(path, max_bytes=45).header == ["name"]
    with pytest.raises(UnreadableFile, match="^the file is 52.5 MB; the limit is 50.0 MB$"):
        check_size(55_050_240, max_bytes=50 * 1024 * 1024)


# --- XLSX ----------------------------------------------------------------------------


def test_xlsx_text_barcode_keeps_its_leading_zero(tmp_path: Path) -> None:
    table, rows = read(write_xlsx(tmp_path / "a.xlsx", [["barcode"], ["012345678901"]]))

    assert (table.format, table.encoding, table.delimiter) == ("xlsx", None, None)
    assert rows == [Row(2, ["012345678901"], [])]


def test_xlsx_numbers_become_the_text_a_spreadsheet_shows(tmp_path: Path) -> None:
    values: list[object] = [1000, 12.5, 0.1 + 0.2, 1e-7, -3, True, 0]
    _, rows = read(write_xlsx(tmp_path / "a.xlsx", [list("abcdefg"), values]))

    assert rows == [Row(2, ["1000", "12.5", "0.3", "0.0000001", "-3", "TRUE", "0"], [])]


def test_xlsx_dates_become_iso_text(tmp_path: Path) -> None:
    _, rows = read(write_xlsx(tmp_path / "a.xlsx", [["born"], [dt.date(1990, 5, 17)]]))

    assert rows[0].cells == ["1990-05-17"]


def test_xlsx_durations_keep_their_milliseconds(tmp_path: Path) -> None:
    """Chip times as Excel keeps them: a fraction of a day shown as [h]:mm:ss.000 (read as
    a duration) or h:mm:ss.000 (read as a time of day)."""
    path = tmp_path / "times.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet()
    duration = workbook.add_format({"num_format": "[h]:mm:ss.000"})
    clock = workbook.add_format({"num_format": "h:mm:ss.000"})
    sheet.write_row(0, 0, ["ChipTime", "GunTime", "Ultra", "Whole"])
    sheet.write_number(1, 0, (3723.456) / 86400, duration)
    sheet.write_number(1, 1, (3723.456) / 86400, clock)
    sheet.write_number(1, 2, (26 * 3600 + 1.5) / 86400, duration)
    sheet.write_number(1, 3, 1800 / 86400, duration)
    workbook.close()

    _, rows = read(path)

    assert rows[0].cells == ["1:02:03.456", "01:02:03.456000", "26:00:01.500", "0:30:00"]


def test_xlsx_number_too_large_to_be_exact_is_flagged(tmp_path: Path) -> None:
    _, rows = read(write_xlsx(tmp_path / "a.xlsx", [["barcode"], [12345678901234567]]))

    assert rows[0].cells[0].startswith("123456789012345")
    assert rows[0].issues == [
        f'column "barcode": "{rows[0].cells[0]}" is a number too long for Excel to keep '
        "exactly (precision lost); format the column as text and enter the values again"
    ]


def test_xlsx_text_mangled_by_excel_is_flagged(tmp_path: Path) -> None:
    _, rows = read(write_xlsx(tmp_path / "a.xlsx", [["name", "barcode"], ["Ann", "1.23457E+11"]]))

    assert rows[0].cells == ["Ann", "1.23457E+11"]
    assert rows[0].issues == [
        'column "barcode": "1.23457E+11" looks like a number mangled by Excel '
        "(scientific notation); re-export the column as text"
    ]


def test_xlsx_numeric_header_and_blank_rows(tmp_path: Path) -> None:
    rows_in: list[list[object]] = [["name", 2024], ["Ann", 1], ["", ""], ["Bob", 2], ["", ""]]

    table, rows = read(write_xlsx(tmp_path / "a.xlsx", rows_in))

    assert table.header == ["name", "2024"]
    assert [(row.number, row.cells) for row in rows] == [(2, ["Ann", "1"]), (4, ["Bob", "2"])]


def test_xlsx_data_beyond_the_header_is_reported(tmp_path: Path) -> None:
    _, rows = read(write_xlsx(tmp_path / "a.xlsx", [["name"], ["Ann", "", "oops"]]))

    assert rows == [Row(2, ["Ann", "", "oops"], ["row has 3 cells, the header has 1"])]


def test_xlsx_empty_sheet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="first sheet of the workbook is empty"):
        open_table(write_xlsx(tmp_path / "a.xlsx", []))


def test_xlsx_header_not_on_row_1_is_refused(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "a.xlsx", [[], [], ["name"], ["Ann"]])

    with pytest.raises(UnreadableFile, match=r"row 1 \(the header\) is empty"):
        open_table(path)


def test_xlsx_header_only_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="header row but no data rows"):
        open_table(write_xlsx(tmp_path / "a.xlsx", [["name", "bib"]]))


def test_xlsx_reads_the_first_visible_sheet(tmp_path: Path) -> None:
    path = tmp_path / "a.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    hidden = workbook.add_worksheet("Lists")
    hidden.write_string(0, 0, "hidden")
    data = workbook.add_worksheet("Data")
    data.write_string(0, 0, "name")
    data.write_string(1, 0, "Ann")
    data.activate()
    hidden.hide()
    workbook.close()

    _, rows = read(path)

    assert cells(rows) == [["Ann"]]


# --- round trips of generated nasty files --------------------------------------------

NASTY = (
    "aZ0129 .+-E"  # leading zeros, spaces and the makings of 1.2E+5
    "\t,;\"'\r\n"  # delimiters, quotes, line breaks
    "éüÖß€‚œ’"  # Windows-1252 (‚ and ’ are 0x82 and 0x92)
    "漢🏃\u00a0\u2028\x85\x01="  # not Windows-1252; odd whitespace; control; formula-like
)
names = (
    st.text(alphabet=NASTY.replace(",", "").replace(";", "").replace("\t", ""), max_size=8)
    .map(str.strip)
    .filter(bool)
)
values = st.one_of(
    st.text(alphabet=NASTY, max_size=10),
    st.sampled_from(["012345678901", "1.23457E+11", "", " ", '""', "\r\n", "=1+1"]),
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    header = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    rows = draw(st.lists(st.lists(values, min_size=len(header), max_size=len(header)),
                         max_size=30))
    return header, rows


def expected_rows(rows: list[list[str]]) -> list[tuple[int, list[str], bool]]:
    """(row number, stripped cells, flagged?) of the rows that are not blank."""
    result = []
    for number, row in enumerate(rows, start=2):
        stripped = [cell.strip() for cell in row]
        if any(stripped):
            result.append((number, stripped, any(SCIENTIFIC.fullmatch(c) for c in stripped)))
    return result


def read_back(path: Path, rows: list[list[str]]) -> Table | None:
    """Open ``path`` and check its rows; None when there are none to read."""
    expected = expected_rows(rows)
    if not expected:
        with pytest.raises(UnreadableFile, match="header row but no data rows"):
            open_table(path)
        return None
    table = open_table(path)
    got = [(row.number, row.cells, bool(row.issues)) for row in table.rows()]
    assert got == expected
    return table


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def to_csv(rows: list[list[str]], delimiter: str, newline: str, quote_all: bool) -> str:
    """Quote like csv.QUOTE_MINIMAL/QUOTE_ALL, but also quote a lone \\r as Excel does
    (Python's writer does not when the line terminator is \\n)."""
    special = {delimiter, '"', "\r", "\n"}
    if len(rows[0]) == 1:
        special |= {",", ";", "\t"}  # a one-column file cannot show its delimiter

    def field(value: str) -> str:
        if quote_all or special & set(value):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(delimiter.join(map(field, row)) + newline for row in rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=tables(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    newline=st.sampled_from(["\r\n", "\n"]),
    quote_all=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]),
)
def test_generated_csv_reads_back_as_written(
    table: tuple[list[str], list[list[str]]],
    delimiter: str,
    newline: str,
    quote_all: bool,
    encoding: str,
) -> None:
    header, rows = table
    text = to_csv([header, *rows], delimiter, newline, quote_all)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    if encoding == "cp1252":  # Windows-1252 bytes that happen to be valid UTF-8 are UTF-8
        assume(data.isascii() or not is_utf8(data))

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.csv"
        path.write_bytes(data)
        result = read_back(path, rows)

    if result is not None:
        assert result.header == header
        assert result.issues == []
        if len(header) > 1:
            assert result.delimiter == delimiter


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables())
def test_generated_xlsx_reads_back_as_written(
    table: tuple[list[str], list[list[str]]],
) -> None:
    header, rows = table

    with tempfile.TemporaryDirectory() as folder:
        path = write_xlsx(Path(folder) / "generated.xlsx", [list(header), *rows])
        result = read_back(path, rows)

    if result is not None:
        assert result.header == header
