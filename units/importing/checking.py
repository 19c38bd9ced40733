"""The check pass: every row parsed, validated, scoped and sorted into a plan.

``roster_import`` runs it and, when nothing is wrong, the write pass."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import Equipment, EquipmentKind, Member, Region, Unit
from ..scoping import user_may
from ..services import locations_in_service_area
from .cells import (
    CellError,
    FormulaWithoutValue,
    cell_text,
    parse_bool,
    parse_choice,
    parse_code,
    parse_coordinate,
    parse_date,
    parse_int,
    parse_required_text,
    phone_normalize,
)
from .columns import (
    EQUIPMENT,
    KEY_CHUNK,
    KINDS,
    MEMBER,
    MODELS,
    SAMPLE_SIZE,
    SHEET_TITLES,
    UNIT,
    ProgressCallback,
)
from .reading import Table, roster_file_read
from .reports import ImportReport, RowError, SheetReport
from .writing import Plan, Planned, plan_write

# --- import -----------------------------------------------------------------------------


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
        cell_text(cells[i])
        for t in tables
        for i, col in t.columns.items()
        if col.key in ("code", "unit")
        for _n, cells in t.rows
        if i < len(cells)
    }
    ctx.load_units(referenced)
    plan = Plan()
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
        plan_write(plan, user=user, reason=reason or filename, progress=report_progress)
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
            if isinstance(cell, FormulaWithoutValue):
                raise cell.error()  # neither "不能为空" nor silently dropped
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


def _check_units(table: Table, ctx: _Context, plan: Plan, sheet: SheetReport, errors) -> Iterator:
    parsers = {
        "code": parse_code,
        "name": lambda v: parse_required_text(v, 128),
        "kind": parse_choice(Unit.Kind.choices),
        "region": lambda v: parse_code(v, 16),
        "address": lambda v: cell_text(v)[:255],
        "lat": lambda v: parse_coordinate(v, 90),
        "lon": lambda v: parse_coordinate(v, 180),
        "post_min": lambda v: parse_int(v, low=0, high=100),
        "is_active": parse_bool,
    }
    region_header = table.header_of("region")
    located: list[tuple[int, float, float, Planned | None]] = []
    now = timezone.now()
    for i, (number, cells) in enumerate(table.rows):
        if i % 5000 == 0:
            yield i
        values = _parse_row(table, number, cells, parsers, errors)
        code = cell_text(table.values(cells).get("code"))
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
            planned = Planned(number, unit, {k: (None, v) for k, v in values.items()})
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
        planned = Planned(number, unit, changes)
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


def _check_members(table: Table, ctx: _Context, plan: Plan, sheet: SheetReport, errors) -> Iterator:
    parsers = {
        "phone": phone_normalize,
        "name": lambda v: parse_required_text(v, 64),
        "unit": parse_code,
        "role": parse_choice(Member.Role.choices),
        "trained": parse_bool,
        "is_active": parse_bool,
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
            planned = Planned(
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
        planned = Planned(number, Member(**{**row, **values}), changes, code)
        plan.updates[MEMBER].append(planned)
        sheet.updated += 1
        _sample(sheet, number, "update", phone, changes)
    yield len(table.rows)


def _check_equipment(
    table: Table, ctx: _Context, plan: Plan, sheet: SheetReport, errors
) -> Iterator:
    parsers = {
        "unit": parse_code,
        "kind": parse_choice(EquipmentKind.choices),
        "quantity": lambda v: parse_int(v, low=0, high=10_000),
        "condition": parse_choice(Equipment.Condition.choices),
        "last_inspected": parse_date,
        "expires": parse_date,
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
            planned = Planned(
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
        planned = Planned(number, Equipment(**{**current, **values}), changes, code)
        plan.updates[EQUIPMENT].append(planned)
        sheet.updated += 1
        _sample(sheet, number, "update", label, changes)
    yield len(table.rows)
