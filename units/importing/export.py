"""Export of the roster as CSV or XLSX, in the columns import reads."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import openpyxl
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from ..exporting import csv_row, xlsx_row
from ..models import Equipment, EquipmentKind, Member, Unit, phone_mask
from ..scoping import scope_filter, user_may, user_sees_phones
from .columns import COLUMNS, MEMBER, MODELS, SHEET_TITLES, UNIT

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

    writer.writerow(csv_row(headers))
    yield codecs.BOM_UTF8 + take()
    for i, row in enumerate(rows, start=1):
        writer.writerow(csv_row(row))
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
        sheet.append(xlsx_row(sheet, headers))
        for row in rows:
            sheet.append(xlsx_row(sheet, row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def import_errors_csv(*, errors: list[dict[str, Any]]) -> bytes:
    """Every bad row of a report as a CSV (UTF-8 with BOM, for Excel)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_row([_("工作表"), _("行号"), _("列"), _("问题")]))
    for e in errors:
        # The sheet of a CSV upload is its file name, which the uploader chose.
        writer.writerow(csv_row([e["sheet"], e["row"], e["field"], e["message"]]))
    return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")
