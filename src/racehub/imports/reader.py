"""Read an uploaded CSV or XLSX file as a table of text cells.

The upload calls :func:`open_table` to refuse unreadable files before any job exists
(every refusal is an :class:`UnreadableFile` whose message is meant for the operator);
the background job opens the stored file again and iterates :meth:`Table.rows`.

Decisions:

- **Everything is text.** CSV cells are never converted; XLSX cells are turned into the
  text a spreadsheet shows (1000.0 -> "1000", dates in ISO format). Every cell is
  ``strip()``-ed: surrounding spaces are never meaningful in an import.
- **Untrustworthy cells are reported, not repaired.** A text cell such as
  ``1.23457E+11`` (a number Excel displayed in scientific notation and then saved that
  way) or an XLSX number too large to be exact becomes an issue on its row; the cell
  keeps its value so that the processor can refuse the row.
- **Row numbers are what a spreadsheet shows**: the header is row 1 and each CSV record
  counts as one row, even when a quoted cell spans several lines. Blank rows (every cell
  empty) are skipped wherever they are, without renumbering the rows after them.
- **The format comes from the content**, not from the file name.
- **CSV encoding**: UTF-8 (with or without BOM), else Windows-1252; UTF-16 with a BOM
  (Excel's "Unicode text") is read too. The choice is made by validating the whole file
  in chunks. The delimiter (``,`` ``;`` or tab) is detected from the first records.
  The CSV is streamed record by record, and so is an XLSX sheet (``xlsx.py``).
- **Bounded.** Nothing is read whole: a CSV record is refused past
  ``Limits.max_row_chars`` characters or ``max_columns`` cells, an XLSX sheet past the
  caps of ``xlsx.Limits`` (used range, cells present, uncompressed XML). The upload reads
  only the header and the first rows; :meth:`Table.check` reads the whole file once,
  keeping nothing, for the job to refuse a file before it writes anything.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Literal

from racehub.imports import xlsx
from racehub.imports.exceptions import UnreadableFile
from racehub.imports.xlsx import Limits, Records

__all__ = ["Limits", "Row", "Table", "UnreadableFile", "check_size", "detect_format",
           "open_table"]

Format = Literal["csv", "xlsx"]

HEAD_SIZE = 8192
CHUNK_SIZE = 1 << 20
DELIMITERS = (",", ";", "\t")
# When several delimiters split the sample consistently, the one least likely to
# appear inside unquoted data wins ("Nom, prénom;Dossard" is a ';' file).
_DELIMITER_PRIORITY = {"\t": 2, ";": 1, ",": 0}
_SAMPLE_CHARS = 65536
_SAMPLE_RECORDS = 50
_EXACT_LIMIT = 2**53

# What Excel writes for a long number shown in "General" format: 1.23457E+11, 1,2E+05.
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?E[+-]\d+", re.IGNORECASE)
MANGLED = "looks like a number mangled by Excel (scientific notation); re-export the column as text"
IMPRECISE = (
    "is a number too long for Excel to keep exactly (precision lost); "
    "format the column as text and enter the values again"
)

_SAVE_AS = "save it as .xlsx or .csv"
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "it looks like a PDF"),
    (b"\xd0\xcf\x11\xe0", f"it looks like an old Excel 97-2003 .xls file or a "
                          f"password-protected workbook; {_SAVE_AS} without a password"),
    (b"\x89PNG", "it looks like a PNG image"),
    (b"\xff\xd8\xff", "it looks like a JPEG image"),
    (b"GIF8", "it looks like a GIF image"),
    (b"\x1f\x8b", "it looks like a gzip archive"),
    (b"Rar!", "it looks like a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "it looks like a 7-Zip archive"),
)
_MARKUP = (b"<!doctype", b"<html", b"<?xml", b"<table")
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_OPEN_CODEC = {"utf-8": "utf-8-sig", "cp1252": "cp1252", "utf-16": "utf-16"}


@dataclass(slots=True)
class Row:
    number: int
    """1-based row number as a spreadsheet shows it (the header is row 1)."""
    cells: list[str]
    """Stripped text, padded with "" to the header's width; extra cells are kept."""
    issues: list[str] = field(default_factory=list)
    """Why this row cannot be trusted as is, one sentence each, naming the column."""


@dataclass(slots=True)
class Table:
    format: Format
    header: list[str]
    """Stripped column names; trailing blank ones dropped, blank ones in between kept."""
    issues: list[str]
    """Problems with the header itself (blank or repeated column names)."""
    _records: Callable[[], Records] = field(repr=False)
    _check: Callable[[], None] = field(repr=False)
    encoding: str | None = None
    """CSV only: "utf-8", "cp1252" or "utf-16"."""
    delimiter: str | None = None
    """CSV only: ",", ";" or a tab."""
    unpacked_bytes: int = 0
    """What :meth:`check` reads: the CSV file, or the XLSX sheet XML and shared strings."""

    def rows(self) -> Iterator[Row]:
        """The data rows, blank ones skipped; each call reads the file again from the start."""
        width = len(self.header)
        records = self._records()
        try:
            for number, record in records:
                if number == 1:
                    continue  # the header
                cells = _texts(record)
                if not any(cells):
                    continue
                issues = [
                    f'{self._column(index)}: "{cells[index]}" {problem}'
                    for index, value in enumerate(record)
                    if (problem := _distrust(value, cells[index]))
                ]
                while len(cells) > width and not cells[-1]:
                    cells.pop()
                if len(cells) > width:
                    issues.append(f"row has {len(cells)} cells, the header has {width}")
                cells.extend([""] * (width - len(cells)))
                yield Row(number, cells, issues)
        finally:
            records.close()

    def check(self) -> None:
        """Read the whole file once, keeping nothing: UnreadableFile if any part of it is
        beyond the limits (the upload only read its first rows)."""
        self._check()

    def _column(self, index: int) -> str:
        if index < len(self.header) and self.header[index]:
            return f'column "{self.header[index]}"'
        return f"column {index + 1}"


def check_size(size: int, *, max_bytes: int) -> None:
    """Refuse a file of ``size`` bytes over the cap (callable while an upload streams in)."""
    if size > max_bytes:
        raise UnreadableFile(f"the file is {_human(size)}; the limit is {_human(max_bytes)}")


# Names whose content is then told apart (detect_format): a spreadsheet saved as CSV or
# XLSX, an old .xls (refused by its content, with what to do), or no extension at all.
_NAMED_AS_TABLE = {"", ".csv", ".tsv", ".xlsx", ".xls"}


def check_file_name(filename: str) -> None:
    """Refuse a file whose name says it is no spreadsheet (``notes.txt``, ``list.pdf``) as
    the wrong type, before its content is read: a text file would otherwise be read as a
    CSV and refused for what it holds ("a header row but no data rows")."""
    suffix = PurePath(filename).suffix.lower()
    if suffix not in _NAMED_AS_TABLE:
        raise UnreadableFile(f"a {suffix} file is the wrong type: upload a .csv or .xlsx "
                             f"file ({_SAVE_AS})")


def detect_format(source: Path | bytes) -> Format:
    """Tell CSV from XLSX by content, refusing anything else with a reason.

    Given the first bytes only (what an upload handler has in hand), any ZIP passes as
    XLSX; given a path, the ZIP's contents are checked too.
    """
    head = _head(source) if isinstance(source, Path) else source[:HEAD_SIZE]
    if not head:
        raise UnreadableFile("the file is empty")
    if head.startswith(_ZIP):
        if isinstance(source, Path):
            _check_workbook(source)
        elif head[30:38] == b"mimetype" and b"opendocument" in head[38:120]:
            raise UnreadableFile(_not_csv_or_xlsx("it looks like an OpenDocument file "
                                                  f"(.ods); {_SAVE_AS}"))
        return "xlsx"
    for magic, looks_like in _SIGNATURES:
        if head.startswith(magic):
            raise UnreadableFile(_not_csv_or_xlsx(looks_like))
    if head.startswith(_UTF16_BOMS):
        return "csv"
    if b"\x00" in head:
        raise UnreadableFile(_not_csv_or_xlsx("it holds binary data, not text"))
    if head.removeprefix(codecs.BOM_UTF8).lstrip().lower().startswith(_MARKUP):
        raise UnreadableFile(_not_csv_or_xlsx(
            "it is a web page or XML document, as some sites export under an .xls name; "
            f"open it in Excel and {_SAVE_AS}"))
    return "csv"


def open_table(path: Path, *, max_bytes: int | None = None,
               limits: Limits | None = None) -> Table:
    """Open ``path``, read its header and check that at least one data row follows.

    Only the start of the file is read (up to its first data row): the rest is read by
    :meth:`Table.rows` and checked whole by :meth:`Table.check`."""
    limits = limits or Limits()
    if max_bytes is not None:
        check_size(path.stat().st_size, max_bytes=max_bytes)
    if detect_format(path) == "xlsx":
        table = Table("xlsx", [], [], xlsx.records(path, limits),
                      lambda: xlsx.check(path, limits),
                      unpacked_bytes=xlsx.unpacked_size(path, limits))
    else:
        encoding = _csv_encoding(path)
        codec = _OPEN_CODEC[encoding]
        delimiter = _csv_delimiter(path, codec)
        csv_records = _csv_records(path, codec, delimiter, limits)
        table = Table("csv", [], [], csv_records, lambda: _consume(csv_records()),
                      encoding=encoding, delimiter=delimiter,
                      unpacked_bytes=path.stat().st_size)

    records = table._records()
    try:
        number, first = next(records, (1, []))
        header = _texts(first) if number == 1 else []
        while header and not header[-1]:
            header.pop()
        # stops at the first data row
        rest_blank = number == 1 and all(_blank(record) for _, record in records)
    finally:
        records.close()
    if not header:
        if rest_blank:
            raise UnreadableFile("the file is empty" if table.format == "csv"
                                 else "the first sheet of the workbook is empty")
        raise UnreadableFile("row 1 (the header) is empty; "
                             "the first row must hold the column names")
    if rest_blank:
        raise UnreadableFile("the file has a header row but no data rows")
    table.header = header
    table.issues = _header_issues(header)
    return table


def _texts(record: Sequence[object]) -> list[str]:
    """Every cell as stripped text (a CSV's cells are all text already)."""
    return [value.strip() if type(value) is str else _text(value) for value in record]


def _text(value: object) -> str:
    """The text a spreadsheet shows for an XLSX cell's value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and math.isfinite(value):
        if value.is_integer():
            return str(int(value))
        # Excel keeps 15 significant digits; never write an exponent.
        return format(Decimal(format(value, ".15g")), "f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        # A duration ([h]:mm:ss), e.g. a chip time: to the millisecond, as timing systems
        # write them; a day is a fraction in Excel, so finer digits are float noise.
        seconds, millis = divmod(round(value.total_seconds() * 1000), 1000)
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        shown = f"{hours}:{minutes:02}:{seconds:02}"
        return f"{shown}.{millis:03}" if millis else shown
    return str(value).strip()


def _distrust(value: object, text: str) -> str | None:
    """Why the cell's text cannot be trusted, or None."""
    if type(value) is str:
        return MANGLED if _SCIENTIFIC.fullmatch(text) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return IMPRECISE if abs(value) >= _EXACT_LIMIT else None
    return None


# --- CSV ---------------------------------------------------------------------------


def _csv_encoding(path: Path) -> str:
    utf16 = _head(path).startswith(_UTF16_BOMS)
    with path.open("rb") as file:
        for encoding in ("utf-16",) if utf16 else ("utf-8", "cp1252"):
            file.seek(0)
            decoder = codecs.getincrementaldecoder(encoding)()
            try:
                while chunk := file.read(CHUNK_SIZE):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                continue
            return encoding
    if utf16:  # checked too: a damaged one failed half-way through its job
        raise UnreadableFile("the file starts as UTF-16 text but is not valid UTF-16 "
                             '(damaged or cut short); save it again as "CSV UTF-8"')
    raise UnreadableFile('the file is neither UTF-8 nor Windows-1252 text; '
                         'save it as "CSV UTF-8"')


def _csv_delimiter(path: Path, codec: str) -> str:
    """The delimiter that splits the first records cleanly into the same number (>1) of cells."""
    with path.open(encoding=codec, newline="") as file:
        sample = file.read(_SAMPLE_CHARS)
    truncated = len(sample) == _SAMPLE_CHARS
    best, best_score = ",", (False, 0.0, -1)
    for delimiter in DELIMITERS:
        stream, widths, clean = io.StringIO(sample), [], True
        try:
            for record in csv.reader(stream, delimiter=delimiter, strict=True):
                while record and not record[-1]:
                    record.pop()
                if record:
                    widths.append(len(record))
                if len(widths) > _SAMPLE_RECORDS:
                    break
        except csv.Error:
            # A quote where this delimiter cannot be, unless the sample was cut short
            # inside a quoted cell.
            clean = truncated and stream.tell() == len(sample)
        if not widths or widths[0] < 2:
            continue
        rows = widths[1:]
        consistency = sum(w == widths[0] for w in rows) / len(rows) if rows else 1.0
        score = (clean, consistency, _DELIMITER_PRIORITY[delimiter])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _csv_records(path: Path, codec: str, delimiter: str,
                 limits: Limits) -> Callable[[], Records]:
    longest = limits.max_row_chars

    def records() -> Records:
        number = chars = 0

        def lines() -> Iterator[str]:
            # One line at a time, never longer than a record may be: a file of one
            # 50 MB line would otherwise be read whole and split into millions of cells.
            nonlocal chars
            while line := file.readline(longest + 1):
                chars += len(line)
                if chars > longest:
                    raise UnreadableFile(
                        f"row {number + 1} is longer than {longest:,} characters; the "
                        "limit is one record of that size (check the quotes in that row)")
                yield line

        with path.open(encoding=codec, newline="") as file:
            reader = csv.reader(lines(), delimiter=delimiter, strict=True)
            try:
                for record in reader:
                    number, chars = number + 1, 0
                    width = len(record)
                    while width and not record[width - 1]:
                        width -= 1
                    if width > limits.max_columns:
                        raise UnreadableFile(
                            f"row {number} has {width:,} cells; the limit is "
                            f"{limits.max_columns:,} columns")
                    yield number, record
            except csv.Error as error:
                raise UnreadableFile(f"row {number + 1} cannot be read as CSV ({error}); "
                                     "check the quotes in that row") from error

    return records


def _consume(records: Records) -> None:
    for _ in records:
        pass


# --- XLSX --------------------------------------------------------------------------


def _check_workbook(path: Path) -> None:
    xlsx.check_directory(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            kind = b""
            if "mimetype" in names:
                with archive.open("mimetype") as mimetype:
                    kind = mimetype.read(100)  # never the whole member: it may be a bomb
    except xlsx.ZIP_ERRORS:
        raise UnreadableFile("the file looks like an XLSX workbook but is damaged or "
                             "incomplete; save it again and re-upload it") from None
    if "xl/workbook.xml" in names:
        return
    if "xl/workbook.bin" in names:
        looks_like = f"it is a binary Excel workbook (.xlsb); {_SAVE_AS}"
    elif b"opendocument" in kind:
        looks_like = f"it looks like an OpenDocument file (.ods); {_SAVE_AS}"
    elif "word/document.xml" in names:
        looks_like = "it looks like a Word document"
    elif "ppt/presentation.xml" in names:
        looks_like = "it looks like a PowerPoint presentation"
    else:
        looks_like = "it is a ZIP archive"
    raise UnreadableFile(_not_csv_or_xlsx(looks_like))


# --- helpers -----------------------------------------------------------------------


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(HEAD_SIZE)


def _blank(record: Sequence[object]) -> bool:
    return not any(_texts(record))


def _header_issues(header: list[str]) -> list[str]:
    issues = [f"column {index} has no name in the header"
              for index, name in enumerate(header, start=1) if not name]
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if not name:
            continue
        if name in seen:
            issues.append(f'column name "{name}" is used twice (columns {seen[name]} '
                          f"and {index})")
        else:
            seen[name] = index
    return issues


def _not_csv_or_xlsx(looks_like: str) -> str:
    return f"the file is neither CSV nor XLSX ({looks_like})"


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
