"""Hole 8 (roster import): XLSX formula cells.

The importer reads cached values (openpyxl ``data_only=True``). A formula cell
that has none (a file written by a program rather than saved by Excel) reads as
blank today: a required column then gets a misleading "不能为空", an optional one
is silently dropped. Such a cell must be refused, naming its row and the formula.
"""

from __future__ import annotations

import io
import re
import zipfile

import openpyxl
import pytest

from tests.factories import UserFactory
from units.importing import roster_import
from units.models import Region, Unit

pytestmark = pytest.mark.django_db

UNIT_HEADER = ["单元编码", "单元名称", "类型", "街镇代码", "地址", "纬度", "经度"]
FORMULA = '="天河"&"路1号"'


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True)


def _book(street: Region, *, name="单元F1", address="天河路1号") -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "单元"
    sheet.append(UNIT_HEADER)
    sheet.append(["F1", name, "商场", street.code, address, 23.13, 113.32])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _with_cached_value(data: bytes, value: str) -> bytes:
    """Add the cached result Excel stores beside each formula (openpyxl writes none)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                text = body.decode()
                text = re.sub(
                    r'<c r="([A-Z]+\d+)"([^>]*)><f>(.*?)</f><v\s*/?>(?:</v>)?</c>',
                    rf'<c r="\1" t="str"><f>\3</f><v>{value}</v></c>',
                    text,
                )
                body = text.encode()
            dst.writestr(item, body)
    return out.getvalue()


def test_a_formula_with_a_cached_value_imports_that_value(tianhe_street, superuser):
    data = _with_cached_value(_book(tianhe_street, address=FORMULA), "天河路1号")

    report = roster_import(data=data, filename="f.xlsx", user=superuser, dry_run=False)

    assert report.ok, report.errors
    assert Unit.objects.get(code="F1").address == "天河路1号"


def test_a_required_formula_cell_without_a_value_is_refused_naming_the_formula(
    tianhe_street, superuser
):
    data = _book(tianhe_street, name='="单元"&"F1"')

    report = roster_import(data=data, filename="f.xlsx", user=superuser, dry_run=True)

    assert not report.ok
    [error] = report.errors
    assert error.row == 2
    assert "公式" in error.message
    assert "不能为空" not in error.message


def test_an_optional_formula_cell_without_a_value_is_refused_not_dropped(tianhe_street, superuser):
    data = _book(tianhe_street, address=FORMULA)

    report = roster_import(data=data, filename="f.xlsx", user=superuser, dry_run=False)

    assert not report.ok
    assert [(e.row, "公式" in e.message) for e in report.errors] == [(2, True)]
    assert not Unit.objects.filter(code="F1").exists()
