"""Stream the first visible worksheet of an XLSX workbook, within bounds.

Why not python-calamine: it reads a sheet whole into a DENSE range from its first to its
last cell, so a 5 KB workbook holding A1 and XFD1048576 asks for 512 GiB and aborts the
process (a Rust OOM no ``except`` catches). Here the sheet XML is streamed from the zip
with expat, one row at a time, and every bound is checked before anything is kept:

- the uncompressed size of the sheet XML and of ``sharedStrings.xml`` (declared in the
  zip and counted as it is inflated: a zip bomb is refused, never inflated);
- the used range (rows x columns, from ``<dimension ref>`` and from the cells seen), the
  cells present, the column of every cell with a value, the length of a cell's text.

A caller that stops reading (the upload reads the header and a few rows) never inflates
the rest. ``check`` reads everything once without keeping values: the worker runs it
before a job reads the rows.

Cell values follow calamine's rules, so the text the reader makes of them is unchanged:
numbers are floats; a number whose cell format is a date or time becomes a
``date``/``time``/``datetime``, one formatted as a duration (``[h]:mm:ss``) a
``timedelta``, both to the millisecond; booleans are bools; text (shared, inline or a
formula's result) is ``str``. Rows start at column A, as the sheet shows them.
"""

from __future__ import annotations

import math
import posixpath
import re
import zipfile
import zlib
from array import array
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Protocol
from xml.etree import ElementTree
from xml.parsers import expat

from racehub.imports.exceptions import UnreadableFile

SHEET_ROWS = 1_048_576
SHEET_COLUMNS = 16_384
CELL_CHARS = 131_072  # Excel keeps 32,767 characters in a cell; CSV's field limit
_PART_BYTES = 16 << 20  # workbook.xml, its relationships, styles.xml
_PARTS = 10_000  # entries in the zip: a workbook has a few dozen
_BLOCK = 1024  # shared strings kept per joined block
_STYLES = 100_000  # Excel allows 64,000 cell formats
_CHUNK = 1 << 16
_NS = " "  # expat's namespace separator: names arrive as "uri local"
_REF = re.compile(r"([A-Z]{1,3})([0-9]{1,7})")
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_DAMAGED = "the XLSX workbook is damaged ({}); save it again and re-upload it"
_EXCEL_EPOCH = datetime(1899, 12, 30)
_DAY_MS = 86_400_000

# What zipfile raises for a damaged or unsupported member: a bad CRC or header, a
# truncated stream, encryption (RuntimeError), a compression method it lacks.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
               NotImplementedError, ValueError)

Records = Generator[tuple[int, Sequence[object]], None, None]


@dataclass(frozen=True)
class Limits:
    """What one import file may hold (see ``Settings.import_*``)."""

    max_cells: int = 10_000_000
    """Cells in the used range (rows x columns), and cells present in the sheet XML."""
    max_columns: int = 1_000
    """Columns of a row (CSV) or of the sheet (XLSX, counted from A)."""
    max_xml_bytes: int = 256 << 20
    """Uncompressed size of the sheet XML and of sharedStrings.xml."""
    max_row_chars: int = 1 << 20
    """Characters in one CSV record."""


def column_name(number: int) -> str:
    """1 -> A, 27 -> AA, 16384 -> XFD."""
    name = ""
    while number:
        number, rest = divmod(number - 1, 26)
        name = chr(65 + rest) + name
    return name


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number


def _parse_ref(ref: str) -> tuple[int, int] | None:
    """"B3" -> (row 3, column 2); None when it is not a cell reference."""
    match = _REF.fullmatch(ref.replace("$", ""))
    if not match:
        return None
    return int(match[2]), _column_number(match[1])


def _count(n: int) -> str:
    return f"{n:,}"


def _mb(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MB"


# --- the workbook: which sheet, its styles, its shared strings --------------------------


def check_directory(path: Path) -> None:
    """Refuse a zip listing more than ``_PARTS`` entries before ``zipfile`` reads its
    directory: a 50 MB upload can list a million empty entries, about 500 MB of ZipInfo."""
    with path.open("rb") as file:
        size = file.seek(0, 2)
        file.seek(max(0, size - (1 << 16) - 22))
        tail = file.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or len(tail) < end + 22:
            return  # not a zip zipfile can open: it says so itself
        entries = int.from_bytes(tail[end + 10:end + 12], "little")
        locator = end - 20
        if entries == 0xFFFF and locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
            file.seek(int.from_bytes(tail[locator + 8:locator + 16], "little"))
            record = file.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                entries = int.from_bytes(record[32:40], "little")
    if entries > _PARTS:
        raise UnreadableFile(f"the workbook lists {_count(entries)} parts in its zip; an XLSX "
                             f"has a few dozen (the limit is {_count(_PARTS)})")


class Workbook:
    """An open workbook: its first visible worksheet, date system and number formats."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.limits = limits
        check_directory(path)
        try:
            self.archive = zipfile.ZipFile(path)
        except ZIP_ERRORS:
            raise UnreadableFile("the file looks like an XLSX workbook but is damaged or "
                                 "incomplete; save it again and re-upload it") from None
        try:
            self._names = {name.lower(): name for name in self.archive.namelist()}
            workbook = self._part("xl/workbook.xml")
            relations = self._relations("xl/_rels/workbook.xml.rels")
            self.date1904 = False
            sheets: list[tuple[str, str, str]] = []  # name, state, relationship id
            for element in workbook.iter():
                name = _local(element.tag)
                if name == "workbookPr":
                    self.date1904 = element.get("date1904", "").lower() in ("1", "true")
                elif name == "sheet":
                    rid = next((v for k, v in element.attrib.items() if _local(k) == "id"), "")
                    sheets.append((element.get("name", ""), element.get("state", "visible"),
                                   rid))
            for sheet_name, state, rid in sheets:
                kind, target = relations.get(rid, ("", ""))
                if state == "visible" and kind.endswith("/worksheet") and target:
                    self.sheet_name, self.sheet_path = sheet_name, self._member(target)
                    break
            else:
                raise UnreadableFile("the workbook has no visible worksheet")
            targets = {kind.rsplit("/", 1)[-1]: target for kind, target in relations.values()}
            self.strings_path = self._find(targets.get("sharedStrings"),
                                           "xl/sharedStrings.xml")
            styles_path = self._find(targets.get("styles"), "xl/styles.xml")
            self.formats = _number_formats(self._part(styles_path)) if styles_path else []
            for member in (self.sheet_path, self.strings_path):
                if member:
                    self._check_declared(member)
        except BaseException:
            self.archive.close()
            raise

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _find(self, target: str | None, default: str) -> str | None:
        member = self._member(target) if target else default
        return self._names.get(member.lower())

    def _member(self, target: str) -> str:
        path = target[1:] if target.startswith("/") else posixpath.join("xl", target)
        path = posixpath.normpath(path)
        found = self._names.get(path.lower())
        if found is None:
            raise UnreadableFile(_DAMAGED.format(f"its part {path} is missing"))
        return found

    def _check_declared(self, member: str) -> None:
        size = self.archive.getinfo(member).file_size
        if size > self.limits.max_xml_bytes:
            raise UnreadableFile(_too_large(member, size, self.limits.max_xml_bytes))

    def _relations(self, member: str) -> dict[str, tuple[str, str]]:
        if member.lower() not in self._names:
            return {}
        return {element.get("Id", ""): (element.get("Type", ""), element.get("Target", ""))
                for element in self._part(self._names[member.lower()]).iter()
                if _local(element.tag) == "Relationship"}

    def _part(self, member: str) -> ElementTree.Element:
        """A small XML part, parsed whole (refused over a few MB or with a DTD)."""
        name = self._names.get(member.lower())
        if name is None:
            raise UnreadableFile(_DAMAGED.format(f"its part {member} is missing"))
        if self.archive.getinfo(name).file_size > _PART_BYTES:
            raise UnreadableFile(_too_large(name, self.archive.getinfo(name).file_size,
                                            _PART_BYTES))
        with self._open(name) as part:
            data = b"".join(_chunks(part, name, _PART_BYTES))
        if b"<!DOCTYPE" in data:
            _no_doctype()
        try:
            return ElementTree.fromstring(data)
        except (ElementTree.ParseError, LookupError, ValueError) as error:
            # LookupError: an XML declaration naming an unknown encoding
            raise UnreadableFile(_DAMAGED.format(f"{name}: {error}")) from None

    def _open(self, member: str) -> IO[bytes]:
        try:
            return self.archive.open(member)
        except ZIP_ERRORS as error:
            raise UnreadableFile(_DAMAGED.format(f"{member}: {error}")) from None

    def stream(self, member: str, parser: expat.XMLParserType) -> Iterator[None]:
        """Feed ``member`` to ``parser`` a chunk at a time, yielding after each chunk."""
        try:
            with self._open(member) as part:
                for chunk in _chunks(part, member, self.limits.max_xml_bytes):
                    parser.Parse(chunk, False)
                    yield
            parser.Parse(b"", True)
        except (expat.ExpatError, LookupError) as error:
            # LookupError: an XML declaration naming an unknown encoding
            raise UnreadableFile(_DAMAGED.format(f"{member}: {error}")) from None
        yield


def _chunks(part: IO[bytes], member: str, cap: int) -> Iterator[bytes]:
    """The member inflated a chunk at a time, refused once past ``cap`` bytes."""
    total = 0
    try:
        while chunk := part.read(_CHUNK):
            total += len(chunk)
            if total > cap:
                raise UnreadableFile(_too_large(member, total, cap, at_least=True))
            yield chunk
    except ZIP_ERRORS as error:
        raise UnreadableFile(_DAMAGED.format(f"{member}: {error}")) from None


def _too_large(member: str, size: int, cap: int, *, at_least: bool = False) -> str:
    what = (f"its shared strings ({member})" if "sharedstrings" in member.lower()
            else f"the sheet's XML ({member})" if "worksheets/" in member.lower()
            else f"its part {member}")
    return (f"the workbook is too large: {what} unpacks to {'over ' if at_least else ''}"
            f"{_mb(size)}; the limit is {_mb(cap)}")


def _no_doctype(*args: object) -> None:
    raise UnreadableFile(_DAMAGED.format("its XML declares a DTD, which workbooks never do"))


class _Handlers(Protocol):
    def _start(self, name: str, attrs: dict[str, str]) -> None: ...
    def _end(self, name: str) -> None: ...
    def _data(self, text: str) -> None: ...


def _parser_for(handlers: _Handlers) -> expat.XMLParserType:
    """An expat parser feeding ``handlers``; a DTD (entity expansion) is refused."""
    parser = expat.ParserCreate(namespace_separator=_NS)
    parser.StartElementHandler = handlers._start
    parser.EndElementHandler = handlers._end
    parser.CharacterDataHandler = handlers._data
    parser.StartDoctypeDeclHandler = _no_doctype
    parser.buffer_text = True
    return parser


def _local(name: str) -> str:
    return name.rpartition("}")[2].rpartition(_NS)[2]


def _number_formats(styles: ElementTree.Element) -> list[str | None]:
    """Per cell style (``s``): "date", "duration" or None."""
    custom: dict[str, str] = {}
    formats: list[str | None] = []
    for element in styles.iter():
        name = _local(element.tag)
        if name == "numFmt":
            custom[element.get("numFmtId", "")] = element.get("formatCode", "")
        elif name == "cellXfs":
            for xf in element:
                if _local(xf.tag) != "xf":
                    continue
                if len(formats) >= _STYLES:
                    raise UnreadableFile(_DAMAGED.format(
                        f"it declares over {_count(_STYLES)} cell formats"))
                number_format = xf.get("numFmtId", "0")
                formats.append(_custom_kind(custom[number_format]) if number_format in custom
                               else _builtin_kind(number_format))
    return formats


def _builtin_kind(number_format: str) -> str | None:
    if number_format in ("14", "15", "16", "17", "18", "19", "20", "21", "22", "45", "47"):
        return "date"
    return "duration" if number_format == "46" else None


def _custom_kind(code: str) -> str | None:
    """calamine's ``detect_custom_number_format``: is the first section a date or time
    (``yyyy-mm-dd``, ``h:mm``) or a duration (``[h]:mm:ss``)?"""
    escaped = quoted = ampm = hms = False
    brackets = 0
    previous = " "
    for char in code:
        if escaped:
            escaped = False
        elif char in "_\\":
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char == ";":
            return None
        elif char == "[":
            brackets += 1
        elif char == "]" and brackets == 1 and hms:
            return "duration"
        elif char == "]":
            brackets = max(brackets - 1, 0)
        elif char in "aA" and not ampm and brackets == 0:
            ampm = True
        elif brackets == 0 and char in ("pmPM/" if ampm else "dmhysDMHYS"):
            return "date"
        elif not (hms and char.lower() == previous.lower()):
            hms = previous == "[" and char in "mhsMHS"
        previous = char
    return None


class _SharedStrings:
    """``xl/sharedStrings.xml``, parsed only as far as the cells read so far need.

    Kept compact, a block of ``_BLOCK`` strings joined into one ``str`` with their offsets:
    millions of short strings as separate objects would take several times the XML's size
    (a 256 MB part of two-letter strings, about a gigabyte)."""

    def __init__(self, book: Workbook) -> None:
        self._blocks: list[tuple[str, array[int]]] = []
        self._pending: list[str] = []
        self._parts: list[str] | None = None
        self._chars = 0
        self._phonetic = 0
        self._text = False
        parser = _parser_for(self)
        self._feed = book.stream(book.strings_path, parser) if book.strings_path else iter(())

    def __len__(self) -> int:
        return len(self._blocks) * _BLOCK + len(self._pending)

    def get(self, index: int, ref: str) -> str:
        while index >= len(self) and next(self._feed, False) is not False:
            pass
        if index >= len(self):
            raise UnreadableFile(_DAMAGED.format(
                f"cell {ref} refers to shared string {index}, which does not exist"))
        block, at = divmod(index, _BLOCK)
        if block == len(self._blocks):
            return self._pending[at]
        text, offsets = self._blocks[block]
        return text[offsets[at]:offsets[at + 1]]

    def drain(self) -> None:
        """Read to the end (checks the whole part's size) without keeping the strings."""
        for _ in self._feed:
            self._blocks.clear()

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rpartition(_NS)[2]
        if local == "si":
            self._parts, self._chars = [], 0
        elif local == "rPh":
            self._phonetic += 1
        elif local == "t" and self._parts is not None and not self._phonetic:
            self._text = True

    def _end(self, name: str) -> None:
        local = name.rpartition(_NS)[2]
        if local == "si" and self._parts is not None:
            self._pending.append(_unescape("".join(self._parts)))
            self._parts = None
            if len(self._pending) == _BLOCK:
                offsets = array("Q", [0])
                for text in self._pending:
                    offsets.append(offsets[-1] + len(text))
                self._blocks.append(("".join(self._pending), offsets))
                self._pending = []
        elif local == "rPh":
            self._phonetic -= 1
        elif local == "t":
            self._text = False

    def _data(self, text: str) -> None:
        if self._text and self._parts is not None:
            self._chars += len(text)
            if self._chars > CELL_CHARS:
                raise UnreadableFile(f"shared string {len(self)} holds over "
                                     f"{_count(CELL_CHARS)} characters; a spreadsheet cell "
                                     "holds at most 32,767")
            self._parts.append(text)


def _unescape(text: str) -> str:
    """OOXML writes control characters as ``_x000D_``."""
    return _ESCAPE.sub(lambda m: chr(int(m[1], 16)), text) if "_x" in text else text


# --- the sheet ---------------------------------------------------------------------------


class _Sheet:
    """expat handlers turning the sheet XML into (row number, values) one row at a time.

    The hot path (every cell) avoids regexes and string building: a cell's reference is
    checked by its suffix against the row and its letters looked up in ``_COLUMNS``."""

    def __init__(self, book: Workbook, *, values: bool) -> None:
        self.book, self.limits, self.values = book, book.limits, values
        self.strings = _SharedStrings(book) if values else None
        self.ready: list[tuple[int, list[object]]] = []
        self.in_data = False
        self.row = 0
        self.row_text = "0"
        self.column = 0
        self.cells: dict[int, object] = {}
        self.present = 0
        # The rows and columns holding values (the used range), empty until the first.
        self.top = self.left = SHEET_ROWS + SHEET_COLUMNS
        self.bottom = self.right = 0
        self.type = "n"
        self.style = 0
        self.parts: list[str] | None = None  # text of <v>, or of <is><t>
        self.chars = 0
        self.inline = False  # inside <is>
        self.in_text = False  # inside <v>, or <t> of <is> (not of <rPh>)
        self.phonetic = 0
        self.text = ""

    def parser(self) -> expat.XMLParserType:
        return _parser_for(self)

    @property
    def ref(self) -> str:
        return f"{column_name(self.column)}{self.row}"

    # -- bounds

    def _refuse_extent(self, first_row: int, first_col: int, last_row: int, last_col: int,
                       *, declared: bool) -> None:
        rows, columns = last_row - first_row + 1, last_col - first_col + 1
        span = (f"{column_name(first_col)}{first_row}:{column_name(last_col)}{last_row}, "
                f"{_count(rows)} rows x {_count(columns)} columns")
        how = "its dimension declares" if declared else "its cells span"
        fix = ("delete the stray cells far from the data (Ctrl+End shows the last one) and "
               "save it again")
        sheet = f'the sheet "{self.book.sheet_name}" is too large: {how} {span}'
        if last_col > self.limits.max_columns:
            raise UnreadableFile(f"{sheet}; the limit is {_count(self.limits.max_columns)} "
                                 f"columns (A to {column_name(self.limits.max_columns)}); {fix}")
        if rows * columns > self.limits.max_cells:
            raise UnreadableFile(f"{sheet} ({_count(rows * columns)} cells); the limit is "
                                 f"{_count(self.limits.max_cells)} cells; {fix}")

    def _dimension(self, ref: str) -> None:
        corners = [_parse_ref(corner) for corner in ref.split(":")]
        if not ref or None in corners or len(corners) > 2:
            return  # unusable: the cells are checked one by one anyway
        (first_row, first_col), (last_row, last_col) = corners[0], corners[-1]  # type: ignore[misc]
        self._refuse_extent(min(first_row, last_row), min(first_col, last_col),
                            max(first_row, last_row), max(first_col, last_col), declared=True)

    def _grow(self) -> None:
        """The used range takes in the current cell: refused past the limits."""
        row, column = self.row, self.column
        self.top, self.bottom = min(self.top, row), max(self.bottom, row)
        self.left, self.right = min(self.left, column), max(self.right, column)
        if self.right > self.limits.max_columns or (
                (self.bottom - self.top + 1) * (self.right - self.left + 1)
                > self.limits.max_cells):
            self._refuse_extent(self.top, self.left, self.bottom, self.right, declared=False)

    # -- handlers

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = _LOCAL.get(name) or _local_name(name)
        if local == "c" and self.in_data:
            self._start_cell(attrs)
        elif local == "v" and self.in_data:
            self.parts, self.in_text = [], True
        elif not self.in_data:
            if local == "dimension":
                self._dimension(attrs.get("ref", ""))
            elif local == "sheetData":
                self.in_data = True
        elif local == "row":
            number = attrs.get("r")
            # Digits only, and few: int() refuses a 5,000-digit string with a ValueError.
            row = (int(number) if number and number.isdigit() and len(number) < 10
                   else SHEET_ROWS + 1 if number else self.row + 1)
            if row <= self.row or row > SHEET_ROWS:
                raise UnreadableFile(_DAMAGED.format(
                    f"row {row} comes after row {self.row}" if row <= self.row
                    else f"row {row} is beyond the sheet's {_count(SHEET_ROWS)} rows"))
            self.row, self.row_text, self.column, self.cells = row, str(row), 0, {}
        elif local == "is":
            self.inline, self.parts = True, []
        elif local == "t" and self.inline and not self.phonetic:
            self.in_text = True
        elif local == "rPh":
            self.phonetic += 1

    def _start_cell(self, attrs: dict[str, str]) -> None:
        self.present += 1
        if self.present > self.limits.max_cells:
            raise UnreadableFile(
                f'the sheet "{self.book.sheet_name}" is too large: it holds over '
                f"{_count(self.limits.max_cells)} cells; the limit is "
                f"{_count(self.limits.max_cells)} cells")
        ref = attrs.get("r")
        if ref:
            column = (_COLUMNS.get(ref[:-len(self.row_text)])
                      if ref.endswith(self.row_text) else None)
            if column is None:
                raise UnreadableFile(_DAMAGED.format(
                    f'cell reference "{ref[:20]}" in row {self.row} is not valid'))
            self.column = column
        else:
            self.column += 1
            if self.column > SHEET_COLUMNS:
                raise UnreadableFile(_DAMAGED.format(f"row {self.row} has over "
                                                     f"{_count(SHEET_COLUMNS)} cells"))
        self.type = attrs.get("t", "n")
        style = attrs.get("s")
        self.style = int(style) if style and style.isdigit() and len(style) < 10 else 0
        self.parts, self.chars, self.text = None, 0, ""

    def _data(self, text: str) -> None:
        if not self.in_text or self.parts is None:
            return
        self.chars += len(text)
        if self.chars > CELL_CHARS:
            raise UnreadableFile(f"cell {self.ref} holds over {_count(CELL_CHARS)} characters;"
                                 " a spreadsheet cell holds at most 32,767")
        self.parts.append(text)

    def _end(self, name: str) -> None:
        if not self.in_data:
            return
        local = _LOCAL.get(name) or _local_name(name)
        if local == "v":
            self.in_text = False
            parts = self.parts or ()
            self.text, self.parts = parts[0] if len(parts) == 1 else "".join(parts), None
        elif local == "c":
            if self.text:
                column = self.column
                if column > self.right or column < self.left or self.row > self.bottom:
                    self._grow()
                self.cells[column] = self._value() if self.values else True
        elif local == "row":
            if self.cells:
                width = max(self.cells)
                self.ready.append((self.row, [self.cells.get(c) for c in range(1, width + 1)]))
            self.cells = {}
        elif local == "t":
            self.in_text = False
        elif local == "is":
            self.text, self.parts, self.inline = "".join(self.parts or ()), None, False
        elif local == "rPh":
            self.phonetic -= 1
        elif local == "sheetData":
            self.in_data = False

    def _value(self) -> object:
        text, kind = self.text, self.type
        if kind == "s":
            text = text.strip()
            if not text.isdigit() or len(text) > 10:
                raise UnreadableFile(_DAMAGED.format(f"cell {self.ref} has no shared string "
                                                     "index"))
            assert self.strings is not None
            return self.strings.get(int(text), self.ref)
        if kind == "n":
            try:
                number = float(text)
            except ValueError:
                raise UnreadableFile(_DAMAGED.format(
                    f'cell {self.ref} holds "{text[:20]}" where a number belongs')) from None
            formats = self.book.formats
            shown = formats[self.style] if self.style < len(formats) else None
            if shown is None or not math.isfinite(number):
                return number
            return (_duration(number) if shown == "duration"
                    else _date(number, self.book.date1904))
        if kind in ("inlineStr", "str"):
            return _unescape(text)
        if kind == "b":
            return text.strip() not in ("0", "false", "")
        if kind == "e":
            return None  # #DIV/0!, #N/A...: no value, as calamine reads them
        if kind == "d":
            return _iso(text)
        raise UnreadableFile(_DAMAGED.format(f'cell {self.ref} has an unknown type "{kind[:10]}"'))


_COLUMNS = {column_name(number): number for number in range(1, SHEET_COLUMNS + 1)}
_LOCAL: dict[str, str] = {}


def _local_name(name: str) -> str:
    local = name.rpartition(_NS)[2]
    if len(_LOCAL) < 1000:  # a hostile file must not grow the cache
        _LOCAL[name] = local
    return local


def _round(value: float) -> int:
    """Rust's round(): halves away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _date(serial: float, date1904: bool) -> object:
    days = serial + 1462 if date1904 else serial
    if days < 60:
        days += 1  # Excel counts a 29 February 1900 that never was
    try:
        moment = _EXCEL_EPOCH + timedelta(milliseconds=_round(days * _DAY_MS))
    except OverflowError:
        return serial
    if serial < 1:
        return moment.time()
    if moment.time() == time():
        return moment.date()
    return moment


def _duration(serial: float) -> object:
    try:
        return timedelta(milliseconds=_round(serial * _DAY_MS))
    except OverflowError:
        return serial


def _iso(text: str) -> object:
    for parse in (date.fromisoformat, datetime.fromisoformat, time.fromisoformat):
        try:
            return parse(text)
        except ValueError:
            continue
    return text


def records(path: Path, limits: Limits) -> Callable[[], Records]:
    """The sheet's rows with a value, as (row number, values from column A)."""
    with Workbook(path, limits):
        pass  # refuse an unusable workbook now, at the upload

    def rows() -> Records:
        with Workbook(path, limits) as book:
            sheet = _Sheet(book, values=True)
            for _ in book.stream(book.sheet_path, sheet.parser()):
                ready, sheet.ready = sheet.ready, []
                yield from ready

    return rows


def unpacked_size(path: Path, limits: Limits) -> int:
    """What the sheet XML and the shared strings declare they unpack to, in bytes."""
    with Workbook(path, limits) as book:
        return sum(book.archive.getinfo(member).file_size
                   for member in (book.sheet_path, book.strings_path) if member)


def check(path: Path, limits: Limits) -> None:
    """Read the whole sheet and its shared strings once, keeping nothing: UnreadableFile
    if any bound is exceeded anywhere in the file."""
    with Workbook(path, limits) as book:
        sheet = _Sheet(book, values=False)
        for _ in book.stream(book.sheet_path, sheet.parser()):
            sheet.ready.clear()
        _SharedStrings(book).drain()
