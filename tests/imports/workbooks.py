"""Hand-built XLSX workbooks, hostile ones included, for the import tests.

xlsxwriter writes honest files only; these helpers write the parts of a workbook
directly, so that a test can make a sheet lie about its dimension or a part unpack to far
more than its compressed size. calamine must never be given one of them: see
``forbid_calamine``."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"

Cells = dict[str, str]  # "A1" -> text


def sheet_xml(cells: Cells, *, dimension: str | None = None) -> str:
    """A sheet of inline-string cells, rows in order; ``dimension`` as declared."""
    rows: dict[int, list[str]] = {}
    for ref, text in cells.items():
        row = int("".join(c for c in ref if c.isdigit()))
        rows.setdefault(row, []).append(
            f'<c r="{ref}" t="inlineStr"><is><t>{escape(text)}</t></is></c>')
    body = "".join(f'<row r="{r}">{"".join(cs)}</row>' for r, cs in sorted(rows.items()))
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}">{declared}'
            f"<sheetData>{body}</sheetData></worksheet>")


def write_workbook(path: Path, sheet: str | Iterable[bytes], *,
                   shared_strings: str | Iterable[bytes] | None = None) -> Path:
    """A minimal workbook whose only sheet is ``sheet`` (text, or chunks of bytes streamed
    into the zip so that a test never holds a bomb in memory)."""
    relations = (f'<Relationship Id="rId1" Type="{REL}/worksheet" '
                 'Target="worksheets/sheet1.xml"/>')
    if shared_strings is not None:
        relations += (f'<Relationship Id="rId2" Type="{REL}/sharedStrings" '
                      'Target="sharedStrings.xml"/>')
    parts: dict[str, str | Iterable[bytes]] = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
            'openxmlformats.org/package/2006/content-types"/>'),
        "_rels/.rels": (f'<Relationships xmlns="{PKG}"><Relationship Id="rId1" '
                        f'Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
                        "</Relationships>"),
        "xl/workbook.xml": (f'<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>'
                            '<sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{PKG}">{relations}</Relationships>',
        "xl/worksheets/sheet1.xml": sheet,
    }
    if shared_strings is not None:
        parts["xl/sharedStrings.xml"] = shared_strings
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            if isinstance(content, str):
                archive.writestr(name, content)
            else:
                with archive.open(name, "w") as member:
                    for chunk in content:
                        member.write(chunk)
    return path


def a1_and_xfd1048576(path: Path, *, dimension: str | None = "A1:XFD1048576") -> Path:
    """The issue's 5 KB workbook: one cell at A1 and one at the grid's last cell."""
    return write_workbook(path, sheet_xml({"A1": "sequence", "XFD1048576": "x"},
                                          dimension=dimension))


def bomb(size: int, *, head: str, tail: str) -> Iterable[bytes]:
    """``head``, then spaces up to ``size`` bytes, then ``tail``: deflates ~1000:1."""
    yield head.encode()
    chunk = b" " * (1 << 20)
    left = size - len(head) - len(tail)
    while left > 0:
        yield chunk[:left]
        left -= len(chunk)
    yield tail.encode()


def shared_strings_bomb(path: Path, size: int) -> Path:
    """A workbook whose sharedStrings.xml unpacks to ``size`` bytes (one huge string)."""
    return write_workbook(
        path,
        f'<worksheet xmlns="{MAIN}"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c>'
        '</row><row r="2"><c r="A2" t="s"><v>0</v></c></row></sheetData></worksheet>',
        shared_strings=bomb(size, head=f'<sst xmlns="{MAIN}"><si><t>', tail="x</t></si></sst>"))


def sheet_bomb(path: Path, size: int) -> Path:
    """A workbook whose sheet XML unpacks to ``size`` bytes (blank space between cells)."""
    return write_workbook(path, bomb(
        size, head=(f'<worksheet xmlns="{MAIN}"><sheetData><row r="1"><c r="A1" '
                    't="inlineStr"><is><t>sequence</t></is></c></row>'),
        tail=('<row r="2"><c r="A2" t="inlineStr"><is><t>1</t></is></c></row>'
              "</sheetData></worksheet>")))


class CalamineCalled(AssertionError):
    pass


def forbid_calamine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any use of python-calamine fail the test instead of letting it build a dense
    range (which aborts the whole pytest process for the A1 + XFD1048576 workbook)."""
    import python_calamine

    class Forbidden:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise CalamineCalled("python-calamine was given a hostile workbook")

        @classmethod
        def from_path(cls, *args: object, **kwargs: object) -> None:
            raise CalamineCalled("python-calamine was given a hostile workbook")

        from_filelike = from_object = from_path

    monkeypatch.setattr(python_calamine, "CalamineWorkbook", Forbidden)
    monkeypatch.setattr(python_calamine, "load_workbook", Forbidden.from_path, raising=False)
