"""Bulk import and export of the roster: units, members and kit, as CSV or XLSX.

Import is two passes over the file, and the second only runs if the first
found nothing wrong:

1. **Check** every row (``roster_import(..., dry_run=True)`` stops here): parse,
   validate, resolve natural keys (unit code, member phone, unit code + kit
   kind) against the database, check the user's scope, and sort each row into
   new / updated / unchanged. Every bad row is reported (sheet, row number as
   Excel shows it, column, message), not just the first.
2. **Write** all of it in one transaction with bulk inserts and updates (plus
   their audit history rows, by the importing user), then one "reload all"
   roster change for the dispatch index. Nothing is written if any row is bad.

A CSV file holds one table; an XLSX workbook may hold several (units first,
then members, then kit, whatever the sheet order), so a whole city goes in as
one all-or-nothing import. The kind of each table is told by its sheet name
or its columns. Export writes the same columns, so an exported file can be
edited and imported back.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import io
import math
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import openpyxl
from django.conf import settings
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from . import phones
from .models import Equipment, EquipmentKind, ImportJob, Member, Region, Unit, phone_mask
from .scoping import scope_filter, user_may, user_sees_phones
from .services import locations_in_service_area, roster_changed

UNIT, MEMBER, EQUIPMENT = "unit", "member", "equipment"
KINDS = (UNIT, MEMBER, EQUIPMENT)  # also the order tables are written in
MODELS: dict[str, type[Model]] = {UNIT: Unit, MEMBER: Member, EQUIPMENT: Equipment}
SHEET_TITLES = {UNIT: "单元", MEMBER: "队员", EQUIPMENT: "装备"}
SHEET_TITLE_ALIASES = {
    UNIT: {"单元", "应急单元", "units", "unit"},
    MEMBER: {"队员", "members", "member"},
    EQUIPMENT: {"装备", "kit", "equipment"},
}

WRITE_BATCH = 2_000  # rows per bulk call (with their history rows)
KEY_CHUNK = 2_000  # keys per IN (...) lookup (SQLite's variable limit)
MAX_ROWS = 1_000_000
SAMPLE_SIZE = 10  # changes shown per sheet in a preview
CN_MOBILE = phones.CN_MOBILE

ProgressCallback = Callable[[str, int, int], None]  # phase, done, total


# --- columns ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # what export writes; import accepts it and the aliases
    aliases: tuple[str, ...] = ()
    required: bool = False
    imported: bool = True  # False: written by export for information, ignored on import


COLUMNS: dict[str, tuple[Column, ...]] = {
    UNIT: (
        Column("code", "单元编码", ("code", "unit_code"), required=True),
        Column("name", "单元名称", ("name",), required=True),
        Column("kind", "类型", ("kind",), required=True),
        Column("region", "街镇代码", ("region", "region_code", "street_code"), required=True),
        Column("region_name", "街镇名称", ("region_name",), imported=False),
        Column("address", "地址", ("address",)),
        Column("lat", "纬度", ("lat", "latitude"), required=True),
        Column("lon", "经度", ("lon", "lng", "longitude"), required=True),
        Column("post_min", "本岗最少留守人数", ("post_min",)),
        Column("is_active", "启用", ("is_active", "active")),
    ),
    MEMBER: (
        Column("phone", "手机号", ("phone", "mobile"), required=True),
        Column("name", "姓名", ("name",), required=True),
        Column("unit", "单元编码", ("unit", "unit_code"), required=True),
        Column("role", "角色", ("role",)),
        Column("trained", "已培训", ("trained",)),
        Column("is_active", "有效", ("is_active", "active")),
        # Duty is live state clocked by members; a file must not overwrite it.
        Column("on_duty", "在岗", ("on_duty",), imported=False),
    ),
    EQUIPMENT: (
        Column("unit", "单元编码", ("unit", "unit_code"), required=True),
        Column("kind", "装备", ("kind", "equipment"), required=True),
        Column("quantity", "数量", ("quantity", "qty"), required=True),
        Column("condition", "状态", ("condition",)),
        Column("last_inspected", "上次检查", ("last_inspected",)),
        Column("expires", "有效期至", ("expires",)),
    ),
}


def _norm_header(value: object) -> str:
    text = "" if value is None else str(value)
    return re.sub(r"[\s*＊]", "", text.replace("\ufeff", "")).lower()


_HEADER_INDEX: dict[str, dict[str, Column]] = {
    kind: {_norm_header(name): col for col in cols for name in (col.header, col.key, *col.aliases)}
    for kind, cols in COLUMNS.items()
}


# --- errors and reports ------------------------------------------------------------


class RosterFileError(Exception):
    """The file as a whole cannot be imported (size, format, encoding, columns)."""

    def __init__(self, messages: list[str] | str):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("; ".join(self.messages))


@dataclass(frozen=True)
class RowError:
    sheet: str
    row: int | None  # as Excel numbers it (the header is row 1); None: the whole sheet
    field: str  # the column header
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "row": self.row, "field": self.field, "message": self.message}


@dataclass
class SheetReport:
    title: str
    kind: str
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "kind": self.kind,
            "rows": self.rows,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "ignored_columns": self.ignored_columns,
            "sample": self.sample,
        }


@dataclass
class ImportReport:
    dry_run: bool
    committed: bool = False
    encoding: str = ""
    sheets: list[SheetReport] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "committed": self.committed,
            "encoding": self.encoding,
            "sheets": [s.as_dict() for s in self.sheets],
            "errors": [e.as_dict() for e in self.errors],
            "error_count": len(self.errors),
            "seconds": round(self.seconds, 2),
        }


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
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise RosterFileError(_("无法读取 XLSX 文件，文件可能已损坏。")) from exc

    def rows(sheet) -> Iterator[tuple[int, list[Any]]]:
        # Some writers store a wrong sheet size; read to the real end.
        sheet.reset_dimensions()
        for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, list(cells)

    return [(sheet.title, rows(sheet)) for sheet in book.worksheets]


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
    names = [_norm_header(h) for h in header]
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
    index = _HEADER_INDEX[kind]
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


# --- cell parsing --------------------------------------------------------------------


class CellError(ValueError):
    pass


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).strip()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _required_text(value: Any, max_length: int) -> str:
    text = _text(value)
    if not text:
        raise CellError(_("不能为空。"))
    if len(text) > max_length:
        raise CellError(_("不能超过 %(n)d 个字符。") % {"n": max_length})
    return text


def _code(value: Any, max_length: int = 32) -> str:
    text = _required_text(value, max_length)
    if re.search(r"\s", text):
        raise CellError(_("编码不能包含空格。"))
    return text


def _choice(choices: Iterable[tuple[str, Any]]) -> Callable[[Any], str]:
    """A parser accepting a choice's stored value or its (Chinese) label."""
    options = list(choices)
    lookup = {str(label): stored for stored, label in options}
    lookup |= {stored: stored for stored, _label in options}
    listed = "、".join(str(label) for _s, label in options)

    def parse(value: Any) -> str:
        text = _text(value)
        found = lookup.get(text) or lookup.get(text.lower())
        if found is None:
            raise CellError(
                _("“%(value)s”不是有效的选项，可选：%(options)s。")
                % {"value": text, "options": listed}
            )
        return found

    return parse


_TRUE = {"是", "1", "true", "yes", "y", "启用", "有效", "在岗", "√", "✓", "t"}
_FALSE = {"否", "0", "false", "no", "n", "停用", "无效", "离岗", "×", "f"}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellError(_("请填写“是”或“否”。"))


def _int(value: Any, *, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise CellError(_("须为整数。"))
    if isinstance(value, int):
        number = value
    else:
        try:
            as_float = float(_text(value))
        except ValueError as exc:
            raise CellError(_("须为整数。")) from exc
        if not as_float.is_integer():
            raise CellError(_("须为整数。"))
        number = int(as_float)
    if not low <= number <= high:
        raise CellError(_("须在 %(low)d 到 %(high)d 之间。") % {"low": low, "high": high})
    return number


def _coordinate(value: Any, limit: float) -> float:
    try:
        number = float(value) if isinstance(value, int | float) else float(_text(value))
    except ValueError as exc:
        raise CellError(_("坐标须为数字（WGS-84 十进制度）。")) from exc
    if math.isnan(number) or not -limit <= number <= limit:
        raise CellError(_("坐标无效：纬度须在 -90..90，经度须在 -180..180。"))
    return number


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = _text(value)
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a date, no time
        except ValueError:
            continue
    raise CellError(_("日期格式应为 2025-03-31。"))


def phone_normalize(value: Any) -> str:
    """An 11-digit mainland mobile number from what a spreadsheet holds, or CellError."""
    text = _text(value)
    if not text:
        raise CellError(_("不能为空。"))
    try:
        return phones.phone_normalize(text)
    except phones.PhoneInvalid as exc:
        if exc.scientific:
            raise CellError(
                _("手机号被 Excel 显示成了科学计数法（%(value)s）；请把该列设为“文本”后重新导出。")
                % {"value": text}
            ) from None
    raise CellError(_("手机号须为 11 位中国大陆手机号（如 13800138000）。"))


def cn_mobile_validate(value: str) -> None:
    """Form validator: the stored form of a phone is exactly 11 digits, 1[3-9]..."""
    from django.core.exceptions import ValidationError

    if not CN_MOBILE.fullmatch(value or ""):
        raise ValidationError(_("手机号须为 11 位中国大陆手机号（如 13800138000）。"))


# --- import -----------------------------------------------------------------------------


@dataclass
class _Planned:
    """One row that will be written: a new object, or an existing one with changes."""

    row: int
    obj: Model
    changes: dict[str, tuple[Any, Any]]
    unit_code: str = ""  # members and kit: the unit, resolved to an id at write time


@dataclass
class _Plan:
    creates: dict[str, list[_Planned]] = field(default_factory=lambda: {k: [] for k in KINDS})
    updates: dict[str, list[_Planned]] = field(default_factory=lambda: {k: [] for k in KINDS})


class _Context:
    """What the check pass needs to know about the database and the importing user."""

    def __init__(self, user) -> None:
        self.user = user
        # None: the system (a management command without --as) sees everything.
        self.scope_path = None if user is None or user.is_superuser else user.staff.region.path
        self.regions = {
            code: (pk, level, path, name)
            for pk, code, level, path, name in Region.objects.values_list(
                "pk", "code", "level", "path", "name"
            )
        }
        self.units: dict[str, dict[str, Any]] = {}  # existing units by code
        self.file_units: dict[str, int] = {}  # codes of unit rows in this file -> row

    def in_scope(self, path: str) -> bool:
        return self.scope_path is None or path.startswith(self.scope_path)

    def load_units(self, codes: Iterable[str]) -> None:
        fields = [f.attname for f in Unit._meta.concrete_fields]
        rows = _values_by_key(Unit.objects.all(), "code", codes, [*fields, "region__path"])
        self.units = {r["code"]: r for r in rows}


def _values_by_key(
    qs: QuerySet, key: str, keys: Iterable[Any], fields: list[str]
) -> Iterator[dict[str, Any]]:
    unique = sorted(set(keys))
    for start in range(0, len(unique), KEY_CHUNK):
        yield from qs.filter(**{f"{key}__in": unique[start : start + KEY_CHUNK]}).values(*fields)


def roster_import(
    *,
    data: bytes,
    filename: str,
    user,
    dry_run: bool,
    reason: str = "",
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Check a roster file and, unless ``dry_run`` or a row is bad, write all of it.

    ``user`` is the importing staff user (scope and audit); None means the
    system (whole city, no audit user). Raises RosterFileError for a file that
    cannot be read at all and PermissionError for a user who may not import.
    Row problems come back in ``report.errors``; then nothing is written.
    """
    started = time.monotonic()
    report = ImportReport(dry_run=dry_run)
    tables, report.encoding = roster_file_read(data=data, filename=filename)
    if user is not None:
        for table in tables:
            model = MODELS[table.kind]
            if not (user_may(user, "add", model) and user_may(user, "change", model)):
                raise PermissionError(
                    _("您没有导入%(kind)s的权限。") % {"kind": SHEET_TITLES[table.kind]}
                )
    report_progress = progress or (lambda phase, done, total: None)
    total_rows = sum(len(t.rows) for t in tables)

    ctx = _Context(user)
    referenced = {
        _text(cells[i])
        for t in tables
        for i, col in t.columns.items()
        if col.key in ("code", "unit")
        for _n, cells in t.rows
        if i < len(cells)
    }
    ctx.load_units(referenced)
    plan = _Plan()
    checked = 0
    for table in tables:
        sheet = SheetReport(title=table.title, kind=table.kind, rows=len(table.rows))
        sheet.ignored_columns = table.ignored
        report.sheets.append(sheet)
        checker = {UNIT: _check_units, MEMBER: _check_members, EQUIPMENT: _check_equipment}
        for done in checker[table.kind](table, ctx, plan, sheet, report.errors):
            report_progress("check", checked + done, total_rows)
        checked += len(table.rows)
    report.errors.sort(key=lambda e: (KINDS.index(_kind_of(report, e.sheet)), e.row or 0))

    if not dry_run and report.ok:
        _write(plan, user=user, reason=reason or filename, progress=report_progress)
        report.committed = True
    report.seconds = time.monotonic() - started
    return report


def _kind_of(report: ImportReport, title: str) -> str:
    return next((s.kind for s in report.sheets if s.title == title), UNIT)


def _parse_row(
    table: Table, number: int, cells: list[Any], parsers: dict[str, Callable[[Any], Any]], errors
) -> dict[str, Any] | None:
    """Parsed values of the cells present (a blank optional cell is left out)."""
    values: dict[str, Any] = {}
    failed = False
    width = len(cells)
    for i, col in table.columns.items():
        parse = parsers.get(col.key)
        if parse is None:
            continue
        cell = cells[i] if i < width else None
        if not col.required and (cell is None or (isinstance(cell, str) and not cell.strip())):
            continue
        try:
            values[col.key] = parse(cell)
        except CellError as exc:
            errors.append(RowError(table.title, number, col.header, str(exc)))
            failed = True
    return None if failed else values


def _changes(current: dict[str, Any], values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (current[k], v) for k, v in values.items() if current[k] != v}


def _sample(sheet: SheetReport, number: int, action: str, key: str, changes) -> None:
    if len(sheet.sample) < SAMPLE_SIZE:
        sheet.sample.append(
            {
                "row": number,
                "action": action,
                "key": key,
                "changes": {k: [_jsonable(a), _jsonable(b)] for k, (a, b) in changes.items()},
            }
        )


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _check_units(table: Table, ctx: _Context, plan: _Plan, sheet: SheetReport, errors) -> Iterator:
    parsers = {
        "code": _code,
        "name": lambda v: _required_text(v, 128),
        "kind": _choice(Unit.Kind.choices),
        "region": lambda v: _code(v, 16),
        "address": lambda v: _text(v)[:255],
        "lat": lambda v: _coordinate(v, 90),
        "lon": lambda v: _coordinate(v, 180),
        "post_min": lambda v: _int(v, low=0, high=100),
        "is_active": _bool,
    }
    region_header = table.header_of("region")
    located: list[tuple[int, float, float, _Planned | None]] = []
    now = timezone.now()
    for i, (number, cells) in enumerate(table.rows):
        if i % 5000 == 0:
            yield i
        values = _parse_row(table, number, cells, parsers, errors)
        code = _text(table.values(cells).get("code"))
        if code:
            if code in ctx.file_units:
                errors.append(
                    RowError(
                        table.title,
                        number,
                        table.header_of("code"),
                        _("单元编码 %(code)s 与第 %(row)d 行重复。")
                        % {"code": code, "row": ctx.file_units[code]},
                    )
                )
                continue
            ctx.file_units[code] = number
        if values is None:
            continue
        region = ctx.regions.get(values["region"])
        if region is None:
            errors.append(RowError(table.title, number, region_header, _("街镇代码不存在。")))
            continue
        region_id, level, path, region_name = region
        if level not in (Region.Level.STREET, Region.Level.COMMUNITY):
            errors.append(
                RowError(
                    table.title,
                    number,
                    region_header,
                    _("须填写街道/镇的代码，%(code)s（%(name)s）不是街镇。")
                    % {"code": values["region"], "name": region_name},
                )
            )
            continue
        if not ctx.in_scope(path):
            errors.append(
                RowError(
                    table.title,
                    number,
                    region_header,
                    _("%(name)s（%(code)s）不在您的管辖范围内。")
                    % {"name": region_name, "code": values["region"]},
                )
            )
            continue
        values["region_id"] = region_id
        del values["region"]
        current = ctx.units.get(code)
        if current is not None and not ctx.in_scope(current["region__path"]):
            errors.append(
                RowError(
                    table.title,
                    number,
                    table.header_of("code"),
                    _("单元编码 %(code)s 已被您管辖范围以外的单元使用。") % {"code": code},
                )
            )
            continue
        if current is None:
            unit = Unit(**values)
            planned = _Planned(number, unit, {k: (None, v) for k, v in values.items()})
            plan.creates[UNIT].append(planned)
            sheet.new += 1
            _sample(sheet, number, "new", code, planned.changes)
            located.append((number, unit.lat, unit.lon, planned))
            continue
        changes = _changes(current, values)
        if not changes:
            sheet.unchanged += 1
            continue
        fields = {k: v for k, v in current.items() if k != "region__path"}
        unit = Unit(**{**fields, **values, "updated_at": now})
        planned = _Planned(number, unit, changes)
        plan.updates[UNIT].append(planned)
        sheet.updated += 1
        _sample(sheet, number, "update", code, changes)
        if "lat" in changes or "lon" in changes:
            located.append((number, unit.lat, unit.lon, planned))
    _check_service_area(table, located, errors)
    yield len(table.rows)


def _check_service_area(table: Table, located, errors) -> None:
    """Points outside the service area are refused: the rule of
    ``units.services.location_validate``, for the whole file at once."""
    if not located:
        return
    inside = locations_in_service_area(
        lat=np.array([p[1] for p in located]), lon=np.array([p[2] for p in located])
    )
    message = _("坐标不在服务区域内。")
    for (number, _lat, _lon, _p), ok in zip(located, inside, strict=True):
        if not ok:
            errors.append(RowError(table.title, number, table.header_of("lat"), message))


def _unit_for_row(table: Table, ctx: _Context, number: int, code: str, errors) -> bool:
    """Is the row's unit known (in the database or this file) and in the user's scope?"""
    header = table.header_of("unit")
    current = ctx.units.get(code)
    if current is not None:
        if ctx.in_scope(current["region__path"]):
            return True
        errors.append(
            RowError(
                table.title,
                number,
                header,
                _("单元 %(code)s 不在您的管辖范围内。") % {"code": code},
            )
        )
        return False
    if code in ctx.file_units:
        return True
    errors.append(
        RowError(
            table.title,
            number,
            header,
            _("单元编码 %(code)s 不存在（数据库和本文件的单元表中都没有）。") % {"code": code},
        )
    )
    return False


def _check_members(
    table: Table, ctx: _Context, plan: _Plan, sheet: SheetReport, errors
) -> Iterator:
    parsers = {
        "phone": phone_normalize,
        "name": lambda v: _required_text(v, 64),
        "unit": _code,
        "role": _choice(Member.Role.choices),
        "trained": _bool,
        "is_active": _bool,
    }
    phone_col = next(i for i, c in table.columns.items() if c.key == "phone")
    phones = []
    for _n, cells in table.rows:
        try:
            phones.append(phone_normalize(cells[phone_col] if phone_col < len(cells) else None))
        except CellError:
            continue
    fields = [f.attname for f in Member._meta.concrete_fields]
    extra = ["unit__region__path", "unit__code"]
    existing = {
        r["phone"]: r for r in _values_by_key(Member.objects.all(), "phone", phones, fields + extra)
    }
    seen: dict[str, int] = {}
    phone_header = table.header_of("phone")
    for i, (number, cells) in enumerate(table.rows):
        if i % 5000 == 0:
            yield i
        values = _parse_row(table, number, cells, parsers, errors)
        if values is None:
            continue
        phone = values["phone"]
        if phone in seen:
            errors.append(
                RowError(
                    table.title,
                    number,
                    phone_header,
                    _("手机号 %(phone)s 与第 %(row)d 行重复。")
                    % {"phone": phone, "row": seen[phone]},
                )
            )
            continue
        seen[phone] = number
        code = values.pop("unit")
        if not _unit_for_row(table, ctx, number, code, errors):
            continue
        current = existing.get(phone)
        if current is not None and not ctx.in_scope(current["unit__region__path"]):
            errors.append(
                RowError(
                    table.title,
                    number,
                    phone_header,
                    _("手机号 %(phone)s 已登记在您管辖范围以外的单元，不能在此修改。")
                    % {"phone": phone},
                )
            )
            continue
        unit_id = ctx.units[code]["id"] if code in ctx.units else None
        if current is None:
            planned = _Planned(
                number, Member(**values), {k: (None, v) for k, v in values.items()}, code
            )
            planned.changes["unit"] = (None, code)
            plan.creates[MEMBER].append(planned)
            sheet.new += 1
            _sample(sheet, number, "new", phone, planned.changes)
            continue
        changes = _changes(current, values)
        if unit_id != current["unit_id"]:
            changes["unit"] = (current["unit__code"], code)
        if not changes:
            sheet.unchanged += 1
            continue
        row = {k: v for k, v in current.items() if k not in extra}
        planned = _Planned(number, Member(**{**row, **values}), changes, code)
        plan.updates[MEMBER].append(planned)
        sheet.updated += 1
        _sample(sheet, number, "update", phone, changes)
    yield len(table.rows)


def _check_equipment(
    table: Table, ctx: _Context, plan: _Plan, sheet: SheetReport, errors
) -> Iterator:
    parsers = {
        "unit": _code,
        "kind": _choice(EquipmentKind.choices),
        "quantity": lambda v: _int(v, low=0, high=10_000),
        "condition": _choice(Equipment.Condition.choices),
        "last_inspected": _date,
        "expires": _date,
    }
    unit_ids = [u["id"] for u in ctx.units.values()]
    fields = [f.attname for f in Equipment._meta.concrete_fields]
    existing = {
        (r["unit_id"], r["kind"]): r
        for r in _values_by_key(Equipment.objects.all(), "unit_id", unit_ids, fields)
    }
    seen: dict[tuple[str, str], int] = {}
    for i, (number, cells) in enumerate(table.rows):
        if i % 5000 == 0:
            yield i
        values = _parse_row(table, number, cells, parsers, errors)
        if values is None:
            continue
        code = values.pop("unit")
        key = (code, values["kind"])
        if key in seen:
            errors.append(
                RowError(
                    table.title,
                    number,
                    table.header_of("kind"),
                    _("单元 %(code)s 的该项装备与第 %(row)d 行重复。")
                    % {"code": code, "row": seen[key]},
                )
            )
            continue
        seen[key] = number
        if not _unit_for_row(table, ctx, number, code, errors):
            continue
        unit_id = ctx.units[code]["id"] if code in ctx.units else None
        current = existing.get((unit_id, values["kind"])) if unit_id else None
        label = f"{code} {EquipmentKind(values['kind']).label}"
        if current is None:
            planned = _Planned(
                number, Equipment(**values), {k: (None, v) for k, v in values.items()}, code
            )
            plan.creates[EQUIPMENT].append(planned)
            sheet.new += 1
            _sample(sheet, number, "new", label, planned.changes)
            continue
        changes = _changes(current, values)
        if not changes:
            sheet.unchanged += 1
            continue
        planned = _Planned(number, Equipment(**{**current, **values}), changes, code)
        plan.updates[EQUIPMENT].append(planned)
        sheet.updated += 1
        _sample(sheet, number, "update", label, changes)
    yield len(table.rows)


def _write(plan: _Plan, *, user, reason: str, progress: ProgressCallback) -> None:
    """Write every planned row, with history, in one transaction."""
    total = sum(len(plan.creates[k]) + len(plan.updates[k]) for k in KINDS)
    done = 0
    progress("write", 0, total)
    history = {"default_user": user, "default_change_reason": reason[:100]}
    with transaction.atomic():
        unit_ids = (
            {
                code: pk
                for code, pk in Unit.objects.values_list("code", "pk").iterator(chunk_size=5000)
            }
            if any(plan.creates[k] or plan.updates[k] for k in (MEMBER, EQUIPMENT))
            else {}
        )
        for kind in KINDS:
            model = MODELS[kind]
            creates = [p.obj for p in plan.creates[kind]]
            for planned in plan.creates[kind] + plan.updates[kind]:
                if planned.unit_code:
                    planned.obj.unit_id = unit_ids[planned.unit_code]
            for start in range(0, len(creates), WRITE_BATCH):
                batch = creates[start : start + WRITE_BATCH]
                bulk_create_with_history(batch, model, batch_size=WRITE_BATCH, **history)
                done += len(batch)
                progress("write", done, total)
            if kind == UNIT:
                unit_ids.update({u.code: u.pk for u in creates})
            updates = plan.updates[kind]
            fields = sorted({_attname(model, f) for p in updates for f in p.changes})
            if kind == UNIT and updates:
                fields.append("updated_at")
            for start in range(0, len(updates), WRITE_BATCH):
                batch = [p.obj for p in updates[start : start + WRITE_BATCH]]
                bulk_update_with_history(
                    batch, model, fields, batch_size=WRITE_BATCH // 4, **history
                )
                done += len(batch)
                progress("write", done, total)
        roster_changed(unit_ids=None)


def _attname(model: type[Model], name: str) -> str:
    return model._meta.get_field(name).attname


# --- export -------------------------------------------------------------------------------


def _bool_text(value: bool) -> str:
    return _("是") if value else _("否")


def roster_export_rows(
    *, user, kind: str, queryset: QuerySet | None = None
) -> tuple[list[str], Iterator[list[Any]]]:
    """Headers and rows of one roster table as ``user`` may see it.

    The rows are limited to the user's scope whatever ``queryset`` is passed
    (an admin changelist's filtered rows, say), and phones are masked for
    roles that do not get them in full.
    """
    model = MODELS[kind]
    if not user_may(user, "view", model):
        raise PermissionError(_("您没有查看该数据的权限。"))
    qs = (queryset if queryset is not None else model.objects.all()).filter(
        scope_filter(user, model._meta.model_name)
    )
    headers = [c.header for c in COLUMNS[kind]]
    if kind == UNIT:
        kinds = dict(Unit.Kind.choices)
        values = qs.order_by("code").values_list(
            "code", "name", "kind", "region__code", "region__name", "address", "lat", "lon",
            "post_min", "is_active",
        )  # fmt: skip

        def rows() -> Iterator[list[Any]]:
            for code, name, k, rcode, rname, address, lat, lon, post_min, active in values.iterator(
                chunk_size=5000
            ):
                yield [code, name, str(kinds[k]), rcode, rname, address, lat, lon, post_min,
                       _bool_text(active)]  # fmt: skip

    elif kind == MEMBER:
        roles = dict(Member.Role.choices)
        show = phone_mask if not user_sees_phones(user) else (lambda p: p)
        values = qs.order_by("unit__code", "id").values_list(
            "phone", "name", "unit__code", "role", "trained", "is_active", "on_duty"
        )

        def rows() -> Iterator[list[Any]]:
            for phone, name, code, role, trained, active, on_duty in values.iterator(
                chunk_size=5000
            ):
                yield [show(phone), name, code, str(roles[role]), _bool_text(trained),
                       _bool_text(active), _bool_text(on_duty)]  # fmt: skip

    else:
        kit = dict(EquipmentKind.choices)
        conditions = dict(Equipment.Condition.choices)
        values = qs.order_by("unit__code", "kind").values_list(
            "unit__code", "kind", "quantity", "condition", "last_inspected", "expires"
        )

        def rows() -> Iterator[list[Any]]:
            for code, k, qty, condition, inspected, expires in values.iterator(chunk_size=5000):
                yield [code, str(kit[k]), qty, str(conditions[condition]), inspected, expires]

    return headers, rows()


def roster_export_csv(*, user, kind: str, queryset: QuerySet | None = None) -> Iterator[bytes]:
    """A UTF-8 CSV (with the BOM Excel needs to show Chinese), streamed in chunks."""
    headers, rows = roster_export_rows(user=user, kind=kind, queryset=queryset)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> bytes:
        data = buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        return data

    writer.writerow(headers)
    yield codecs.BOM_UTF8 + take()
    for i, row in enumerate(rows, start=1):
        writer.writerow(["" if v is None else v for v in row])
        if i % 2000 == 0:
            yield take()
    yield take()


def roster_export_xlsx(
    *, user, kinds: Iterable[str], querysets: dict[str, QuerySet] | None = None
) -> bytes:
    """An XLSX workbook with one sheet per kind, named so that import recognises it."""
    book = openpyxl.Workbook(write_only=True)
    for kind in kinds:
        headers, rows = roster_export_rows(
            user=user, kind=kind, queryset=(querysets or {}).get(kind)
        )
        sheet = book.create_sheet(SHEET_TITLES[kind])
        sheet.append(headers)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def import_errors_csv(*, errors: list[dict[str, Any]]) -> bytes:
    """Every bad row of a report as a CSV (UTF-8 with BOM, for Excel)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_("工作表"), _("行号"), _("列"), _("问题")])
    for e in errors:
        row = "" if e["row"] is None else e["row"]
        writer.writerow([e["sheet"], row, e["field"], e["message"]])
    return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")


# --- import jobs (run by a Celery worker) ----------------------------------------------


def import_job_create(*, user, filename: str, data: bytes, dry_run: bool = True) -> ImportJob:
    """Store an uploaded roster file as a job and enqueue it after commit.

    A dry run (the default) previews; ``import_job_confirm`` then commits the
    same file. Raises RosterFileError for a file over the size limit and
    PermissionError for a user who may not import.
    """
    if not user_may(user, "add", ImportJob):
        raise PermissionError(_("您没有导入名册的权限。"))
    import_size_check(size=len(data))
    # Housekeeping: a preview nobody confirmed within a day lets go of its file.
    ImportJob.objects.filter(
        data__isnull=False, created_at__lt=timezone.now() - dt.timedelta(days=1)
    ).update(data=None)
    job = ImportJob.objects.create(
        created_by=user, filename=filename[:255], size=len(data), data=data, dry_run=dry_run
    )
    _enqueue(job)
    return job


def import_job_confirm(*, user, job: ImportJob) -> ImportJob:
    """Commit the file of a clean dry run, as a new job (checked again on the way in)."""
    if not job.dry_run or job.status != ImportJob.Status.DONE or job.data is None:
        raise ValueError(_("只能确认一次已完成且没有错误的预览。"))
    if job.result.get("error_count"):
        raise ValueError(_("预览中有错误，不能导入。"))
    commit = ImportJob.objects.create(
        created_by=user,
        filename=job.filename,
        size=job.size,
        data=job.data,
        dry_run=False,
        previewed=job,
    )
    ImportJob.objects.filter(pk=job.pk).update(data=None)
    _enqueue(commit)
    return commit


def _enqueue(job: ImportJob) -> None:
    from .tasks import roster_import_run

    transaction.on_commit(lambda: roster_import_run.delay(job.pk))


def import_job_list(*, user) -> QuerySet[ImportJob]:
    qs = ImportJob.objects.defer("data", "result").select_related("created_by")
    return qs if user.is_superuser else qs.filter(created_by=user)


def import_job_get(*, user, job_id: int) -> ImportJob:
    """One of the user's jobs (any job for a superuser); raises ImportJob.DoesNotExist."""
    qs = ImportJob.objects.all() if user.is_superuser else ImportJob.objects.filter(created_by=user)
    return qs.get(pk=job_id)


def import_job_run(*, job_id: int, live_progress: bool = False) -> None:
    """Run a queued job once: a second delivery of the task finds it claimed.

    ``live_progress``: also publish the write pass's progress to Redis (see
    ``JobProgress``). Only a worker sets it; an eager run in a web process or a
    test has nobody polling meanwhile and must not reach for a Redis at all.
    """
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, started_at=timezone.now(), phase="check"
    )
    if not claimed:
        return
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    user = job.created_by
    progress = JobProgress(job_id, live=live_progress)
    try:
        report = roster_import(
            data=bytes(job.data or b""),
            filename=job.filename,
            user=user,
            dry_run=job.dry_run,
            reason=_("导入 %(name)s（任务 #%(id)d）") % {"name": job.filename, "id": job.pk},
            progress=progress,
        )
        result = report.as_dict()
        status = ImportJob.Status.DONE if report.ok else ImportJob.Status.FAILED
    except (RosterFileError, PermissionError) as exc:
        messages = exc.messages if isinstance(exc, RosterFileError) else [str(exc)]
        result = {
            "dry_run": job.dry_run,
            "committed": False,
            "sheets": [],
            "errors": [{"sheet": "", "row": None, "field": "", "message": m} for m in messages],
            "error_count": len(messages),
        }
        status = ImportJob.Status.FAILED
    done = sum(s["rows"] for s in result["sheets"])
    ImportJob.objects.filter(pk=job_id).update(
        status=status,
        result=result,
        phase="",
        progress_done=done,
        progress_total=done,
        finished_at=timezone.now(),
        # A committed (or failed) import lets go of the file; a preview keeps it for "confirm".
        data=job.data if job.dry_run and status == ImportJob.Status.DONE else None,
    )
    progress.clear()


class JobProgress:
    """Reports an import's progress where the admin page's poll can read it.

    While rows are checked (no transaction open) the job row itself is
    updated. The write pass runs inside one transaction, where an update of the
    job row would stay invisible until the end (and on SQLite would wait for
    the import's own write lock), so a job run by a worker (``live``) also
    sends its progress to Redis (best effort: no Redis, no live figure, only
    the phase). The row says "write" before that transaction opens, and only
    then does ``import_job_status`` look in Redis.
    """

    def __init__(self, job_id: int, *, live: bool = False) -> None:
        self.job_id = job_id
        self.key = progress_key(job_id)
        self.last = 0.0
        self.phase = ""
        self.redis = _redis() if live else None

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        # Throttled, but a new phase is always recorded (the status poll keys on it).
        if now - self.last < 0.5 and done < total and phase == self.phase:
            return
        self.last, self.phase = now, phase
        if self.redis is not None:
            try:
                self.redis.set(self.key, f"{phase} {done} {total}", ex=3600)
            except Exception:  # noqa: BLE001 - progress is optional; the import is not
                self.redis = None
        if not transaction.get_connection().in_atomic_block:
            ImportJob.objects.filter(pk=self.job_id).update(
                phase=phase, progress_done=done, progress_total=total
            )

    def clear(self) -> None:
        if self.redis is not None:
            with contextlib.suppress(Exception):  # the key expires anyway
                self.redis.delete(self.key)


def progress_key(job_id: int) -> str:
    return f"roster-import:{job_id}:progress"


def _redis():
    try:
        import redis

        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.3, socket_timeout=0.5
        )
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - no Redis: progress lives in the job row only
        return None


def import_job_status(*, job: ImportJob) -> dict[str, Any]:
    """What the admin page's progress bar polls."""
    phase, done, total = job.phase, job.progress_done, job.progress_total
    if job.status == ImportJob.Status.RUNNING and job.phase == "write":
        # Only a worker's write pass is there (JobProgress); no other state asks Redis.
        client = _redis()
        raw = client.get(progress_key(job.pk)) if client is not None else None
        if raw:
            phase, done_text, total_text = raw.decode().split()
            done, total = int(done_text), int(total_text)
    return {
        "id": job.pk,
        "status": job.status,
        "status_display": str(job.get_status_display()),
        "phase": phase,
        "done": done,
        "total": total,
        "percent": round(100 * done / total) if total else 0,
        "finished": job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED),
    }
