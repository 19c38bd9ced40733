"""Reading a roster file (CSV in any common encoding, or an XLSX workbook) into tables."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openpyxl
from django.conf import settings
from django.utils.translation import gettext as _

from .cells import FormulaWithoutValue
from .columns import (
    COLUMNS,
    EQUIPMENT,
    HEADER_INDEX,
    KINDS,
    MAX_ROWS,
    MEMBER,
    SHEET_TITLE_ALIASES,
    SHEET_TITLES,
    UNIT,
    Column,
    norm_header,
)
from .reports import RosterFileError

# --- reading files -----------------------------------------------------------------


@dataclass
class Table:
    """One sheet of a file: its header and rows (row number, cells)."""

    title: str
    kind: str
    columns: dict[int, Column]  # cell index -> column
    ignored: list[str]
    rows: list[tuple[int, list[Any]]]

    def values(self, cells: list[Any]) -> dict[str, Any]:
        return {col.key: cells[i] if i < len(cells) else None for i, col in self.columns.items()}

    def header_of(self, key: str) -> str:
        for col in self.columns.values():
            if col.key == key:
                return col.header
        return key


def import_size_check(*, size: int) -> None:
    limit = settings.ROSTER_IMPORT_MAX_BYTES
    if size > limit:
        raise RosterFileError(
            _("文件过大（%(size).1f MB），上限为 %(limit).1f MB。请按区或按表拆分后分批导入。")
            % {"size": size / 1024 / 1024, "limit": limit / 1024 / 1024}
        )


def roster_file_read(*, data: bytes, filename: str) -> tuple[list[Table], str]:
    """The tables of a CSV or XLSX file and the text encoding ("" for XLSX).

    Raises RosterFileError naming what is wrong with the file as a whole.
    """
    import_size_check(size=len(data))
    if not data.strip():
        raise RosterFileError(_("文件为空。"))
    if data[:4] == b"PK\x03\x04":
        raw, encoding = _xlsx_tables(data), ""
    elif data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise RosterFileError(_("不支持旧版 Excel（.xls）文件，请另存为 .xlsx 或 CSV。"))
    else:
        text, encoding = _decode(data)
        raw = [(filename.rsplit("/", 1)[-1], _csv_rows(text))]
    tables = [_classify(title, rows) for title, rows in raw]
    tables = [t for t in tables if t is not None]
    if not tables:
        raise RosterFileError(_("文件中没有数据。"))
    seen: dict[str, str] = {}
    for t in tables:
        if t.kind in seen:
            raise RosterFileError(
                _("工作表「%(a)s」和「%(b)s」都是%(kind)s表，请合并为一个。")
                % {"a": seen[t.kind], "b": t.title, "kind": SHEET_TITLES[t.kind]}
            )
        seen[t.kind] = t.title
    total = sum(len(t.rows) for t in tables)
    if total > MAX_ROWS:
        raise RosterFileError(
            _("文件行数过多（%(n)d 行），上限为 %(max)d 行。") % {"n": total, "max": MAX_ROWS}
        )
    return sorted(tables, key=lambda t: KINDS.index(t.kind)), encoding


def _decode(data: bytes) -> tuple[str, str]:
    """Text of a CSV from Excel: UTF-8 (with or without BOM), UTF-16, or GBK/GB18030."""
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        # GBK text is almost never valid UTF-8, so trying UTF-8 first is safe;
        # GB18030 is the superset of GBK that Excel's "ANSI" CSV uses in China.
        candidates = ["utf-8", "gb18030"]
    for encoding in candidates:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise RosterFileError(
        _(
            "无法识别文件编码（既不是 UTF-8 也不是 GBK）。"
            "请在 Excel 中“另存为 → CSV UTF-8（逗号分隔）”后重新导入。"
        )
    )


def _csv_rows(text: str) -> Iterator[tuple[int, list[Any]]]:
    first_line = text.split("\n", 1)[0]
    delimiter = max([",", "\t", ";"], key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    number = 0  # the header row itself may be the one the reader refuses
    try:
        for number, cells in enumerate(reader, start=1):
            yield number, cells
    except csv.Error as exc:
        raise RosterFileError(
            _("CSV 格式错误（第 %(row)d 行附近）：%(error)s") % {"row": number + 1, "error": exc}
        ) from exc


def _xlsx_tables(data: bytes) -> list[tuple[str, Iterator[tuple[int, list[Any]]]]]:
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise RosterFileError(_("无法读取 XLSX 文件，文件可能已损坏。")) from exc
    formulas_book = None

    def rows(sheet) -> Iterator[tuple[int, list[Any]]]:
        nonlocal formulas_book
        # Some writers store a wrong sheet size; read to the real end.
        sheet.reset_dimensions()
        values = sheet.iter_rows(values_only=True)
        if not _has_formulas(archive, sheet):
            for number, cells in enumerate(values, start=1):
                yield number, list(cells)
            return
        # Cached values are what Excel shows, and what we read; a formula cell
        # without one (a file written by a program, never saved by Excel)
        # would read as blank. A second pass over the same sheet, in step,
        # tells those cells apart so the row is refused instead.
        if formulas_book is None:
            formulas_book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        source = formulas_book[sheet.title]
        source.reset_dimensions()
        formulas = source.iter_rows(values_only=True)
        for number, (cells, raw) in enumerate(
            itertools.zip_longest(values, formulas, fillvalue=()), start=1
        ):
            yield number, _formulas_marked(list(cells), raw)

    return [(sheet.title, rows(sheet)) for sheet in book.worksheets]


def _has_formulas(archive: zipfile.ZipFile, sheet) -> bool:
    """A cheap look at the sheet's XML: most rosters hold no formula at all."""
    try:
        with archive.open(sheet._worksheet_path) as xml:  # openpyxl keeps no public name
            body = xml.read()
    except (KeyError, AttributeError):
        return True  # cannot tell: take the careful path
    return b"<f>" in body or b"<f " in body


def _formulas_marked(cells: list[Any], raw: tuple[Any, ...]) -> list[Any]:
    for i, source in enumerate(raw):
        if cells[i : i + 1] in ([None], []) and isinstance(source, str) and source.startswith("="):
            if i >= len(cells):
                cells.extend([None] * (i + 1 - len(cells)))
            cells[i] = FormulaWithoutValue(source)
    return cells


def _is_blank(cells: list[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _classify(title: str, numbered_rows: Iterator[tuple[int, list[Any]]]) -> Table | None:
    """Find the header (first non-blank row), tell the table's kind, map its columns."""
    header: list[Any] | None = None
    for _number, cells in numbered_rows:
        if not _is_blank(cells):
            header = cells
            break
    if header is None:
        return None  # an empty sheet
    names = [norm_header(h) for h in header]
    kind = _table_kind(title, names)
    if kind is None:
        expected = "；".join(
            _("%(kind)s表需要列 %(cols)s")
            % {
                "kind": SHEET_TITLES[k],
                "cols": "、".join(c.header for c in COLUMNS[k] if c.required),
            }
            for k in KINDS
        )
        raise RosterFileError(
            _("无法识别表格「%(title)s」的内容：%(expected)s。")
            % {"title": title, "expected": expected}
        )
    index = HEADER_INDEX[kind]
    columns: dict[int, Column] = {}
    ignored: list[str] = []
    for i, name in enumerate(names):
        col = index.get(name)
        if col is None or not col.imported:
            if name:
                ignored.append(str(header[i]).strip())
            continue
        if col in columns.values():
            raise RosterFileError(
                _("表格「%(title)s」中“%(col)s”列出现了两次。")
                % {"title": title, "col": col.header}
            )
        columns[i] = col
    missing = [c.header for c in COLUMNS[kind] if c.required and c not in columns.values()]
    if missing:
        raise RosterFileError(
            _("表格「%(title)s」（%(kind)s表）缺少列：%(cols)s。")
            % {"title": title, "kind": SHEET_TITLES[kind], "cols": "、".join(missing)}
        )
    rows = [(n, cells) for n, cells in numbered_rows if not _is_blank(cells)]
    return Table(title=title, kind=kind, columns=columns, ignored=ignored, rows=rows)


def _table_kind(title: str, names: list[str]) -> str | None:
    for kind, aliases in SHEET_TITLE_ALIASES.items():
        if title.strip().lower() in aliases:
            return kind
    # The columns that only one kind of table has.
    present = set(names)
    if present & {"手机号", "phone", "mobile"}:
        return MEMBER
    if present & {"数量", "quantity", "qty", "装备", "equipment"}:
        return EQUIPMENT
    if present & {"纬度", "lat", "latitude", "经度", "lon", "街镇代码", "region", "单元名称"}:
        return UNIT
    return None
