"""Issue 10, hole 2: the review exports never write a live formula."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from tests.factories import MemberFactory

from .conftest import dispatch_to, past_incident

pytestmark = pytest.mark.django_db

RANGE = "since=2024-05-01&until=2024-05-31"
EVIL_ADDRESS = "=cmd|' /C calc'!A0"
EVIL_NAME = '=HYPERLINK("http://evil.example","x")'


@pytest.fixture
def evil(tianhe_street, tianhe_unit):
    member = MemberFactory(unit=tianhe_unit, phone="13812345678", name=EVIL_NAME)
    incident = past_incident(region=tianhe_street, response_s=30)
    incident.address = EVIL_ADDRESS
    incident.save(update_fields=["address"])
    dispatch_to(incident, tianhe_unit, accepted_s=30, on_site_s=120, member=member)
    return incident


def test_incident_csv_export_quotes_formula_text(client, tianhe_reviewer, evil):
    client.force_login(tianhe_reviewer)
    response = client.get(f"/review/export/incidents.csv?{RANGE}")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[1][4] == "'" + EVIL_ADDRESS
    assert rows[1][16] == "'" + EVIL_NAME
    assert rows[1][0] == str(evil.pk)


def test_incident_xlsx_export_has_no_formula_cells(client, tianhe_reviewer, evil):
    client.force_login(tianhe_reviewer)
    response = client.get(f"/review/export/incidents.xlsx?{RANGE}")
    sheet = load_workbook(io.BytesIO(response.content)).active  # formulas would show as such
    row = next(sheet.iter_rows(min_row=2))
    assert row[4].value == "'" + EVIL_ADDRESS and row[4].data_type == "s"
    assert row[16].value == "'" + EVIL_NAME and row[16].data_type == "s"
    assert row[0].value == evil.pk and row[0].data_type == "n"  # numbers stay numbers
