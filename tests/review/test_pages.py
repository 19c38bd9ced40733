from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from dispatch.models import IncidentEvent, MemberLocation
from tests.factories import MemberFactory, StaffFactory
from units.models import StaffProfile

from .conftest import dispatch_to, past_incident

pytestmark = pytest.mark.django_db

RANGE = "since=2024-05-01&until=2024-05-31"


@pytest.fixture
def two_districts(tianhe_street, haizhu_street, tianhe_unit):
    member = MemberFactory(unit=tianhe_unit, phone="13812345678", name="张三")
    mine = past_incident(region=tianhe_street, response_s=30)
    dispatch_to(mine, tianhe_unit, accepted_s=30, on_site_s=120, member=member)
    theirs = past_incident(region=haizhu_street, response_s=90)
    return mine, theirs


def test_review_pages_need_a_staff_role_that_may_view_incidents(client, tianhe_unit):
    leader = StaffFactory(role=StaffProfile.Role.UNIT_LEADER, unit=tianhe_unit).user
    assert client.get("/review/report/").status_code == 302  # to the login page
    client.force_login(leader)
    assert client.get("/review/report/").status_code == 403


def test_incident_list_shows_only_the_reviewers_district_in_chinese(
    client, tianhe_reviewer, two_districts
):
    mine, theirs = two_districts
    client.force_login(tianhe_reviewer)
    page = client.get(f"/review/incidents/?{RANGE}").content.decode()
    assert "警情列表" in page
    assert f"#{mine.pk}<" in page
    assert f"#{theirs.pk}<" not in page


def test_a_reviewer_asking_for_another_district_gets_404_not_its_data(
    client, tianhe_reviewer, haizhu, two_districts
):
    client.force_login(tianhe_reviewer)
    assert client.get(f"/review/report/?district={haizhu.code}").status_code == 404
    _mine, theirs = two_districts
    assert client.get(f"/review/incidents/{theirs.pk}/").status_code == 404


def test_bad_dates_get_a_400_page_that_names_the_field(client, tianhe_reviewer):
    client.force_login(tianhe_reviewer)
    response = client.get("/review/report/?since=2024-06-01&until=2024-05-01")
    assert response.status_code == 400
    assert "开始时间必须早于结束时间" in response.content.decode()


def test_incident_detail_shows_timeline_durations_and_the_responders_trail(
    client, tianhe_reviewer, two_districts, tianhe_unit
):
    mine, _theirs = two_districts
    member = tianhe_unit.members.get()
    MemberLocation.objects.create(member=member, incident=mine, lat=23.131, lon=113.321)
    IncidentEvent.objects.create(
        incident=mine,
        seq=1,
        type=IncidentEvent.Type.ON_SITE,
        unit=tianhe_unit,
        member=member,
        data={"lat": 23.1301, "lon": 113.3201},
    )
    client.force_login(tianhe_reviewer)
    response = client.get(f"/review/incidents/{mine.pk}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "第一时间响应" in page and "到场管控" in page
    trail = response.context["map_data"]["trails"][0]
    assert [p[:2] for p in trail["points"]] == [(23.131, 113.321), (23.1301, 113.3201)]


def test_report_page_has_charts_and_tables_of_the_streets(client, tianhe_reviewer, two_districts):
    client.force_login(tianhe_reviewer)
    response = client.get(f"/review/report/?{RANGE}")
    assert response.status_code == 200
    page = response.content.decode()
    assert "chart.umd.min.js" in page and "五山街道" in page
    assert response.context["report"].total.incidents == 1


def test_csv_export_is_scoped_and_masks_phone_numbers(client, tianhe_reviewer, two_districts):
    mine, _theirs = two_districts
    client.force_login(tianhe_reviewer)
    response = client.get(f"/review/export/incidents.csv?{RANGE}")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][0] == "编号"
    assert [r[0] for r in rows[1:]] == [str(mine.pk)]
    assert "138****5678" in body and "13812345678" not in body


def test_xlsx_export_of_units_opens_as_a_workbook(client, tianhe_reviewer, two_districts):
    client.force_login(tianhe_reviewer)
    response = client.get(f"/review/export/units.xlsx?{RANGE}")
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.values)
    assert rows[0][0] == "单元编码" and len(rows) == 2


def test_api_report_returns_district_breakdown_for_a_city_reviewer(
    client, city_reviewer, two_districts, tianhe
):
    client.force_login(city_reviewer)
    body = client.get(f"/api/v1/reports/response-times/?{RANGE}").json()
    assert body["grouped_by"] == "district"
    assert {a["label"]: a["incidents"] for a in body["areas"]} == {"天河区": 1, "海珠区": 1}
    body = client.get(f"/api/v1/reports/response-times/?district={tianhe.code}&{RANGE}").json()
    assert body["total"]["incidents"] == 1 and body["total"]["to_response_s_median"] == 30


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("district=440105", 403, None),  # Haizhu, outside a Tianhe reviewer's scope
        ("district=000000", 400, "district"),
        ("since=2024-06-01&until=2024-05-01", 400, "since"),
        ("since=yesterday", 400, "since"),
        ("kind=alien", 400, "kind"),
    ],
)
def test_api_refuses_bad_input_and_other_districts_clearly(
    client, tianhe_reviewer, two_districts, query, status, field
):
    client.force_login(tianhe_reviewer)
    response = client.get(f"/api/v1/reports/response-times/?{query}")
    assert response.status_code == status
    if field:
        assert field in response.json()


def test_api_report_is_described_in_the_openapi_schema(client, city_reviewer):
    client.force_login(city_reviewer)
    schema = client.get("/api/v1/schema/?format=json").json()
    assert "/api/v1/reports/response-times/" in schema["paths"]


def test_an_unknown_export_format_or_table_is_not_found(client, tianhe_reviewer):
    client.force_login(tianhe_reviewer)
    assert client.get("/review/export/incidents.pdf").status_code == 404
    assert client.get("/review/export/members.csv").status_code == 404
