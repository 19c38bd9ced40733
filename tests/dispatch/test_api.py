"""Incidents REST API: intake, one-button report, detail, actions, nearby units."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from dispatch import payloads
from dispatch.events import unit_group
from dispatch.models import Delivery, Dispatch, Incident
from tests.dispatch.conftest import SPOT, client_for
from tests.dispatch.factories import give_full_kit, incident_payload
from tests.factories import StaffFactory, UnitFactory, UserFactory
from units.models import StaffProfile

pytestmark = pytest.mark.django_db

INCIDENTS = "/api/v1/incidents/"
REPORT = "/api/v1/incidents/report/"
NEARBY = "/api/v1/units/nearby/"


def detail_url(incident_id) -> str:
    return f"{INCIDENTS}{incident_id}/"


def actions_url(incident_id) -> str:
    return f"{INCIDENTS}{incident_id}/actions/"


@pytest.fixture
def post_incident(cad_client, django_capture_on_commit_callbacks):
    """POST an incident as the 110 integration; after-commit pushes run."""

    def post(**overrides):
        with django_capture_on_commit_callbacks(execute=True):
            return cad_client.post(INCIDENTS, incident_payload(**overrides), format="json")

    return post


# --- intake ------------------------------------------------------------------------------


def test_intake_returns_the_incident_wave_one_and_ranked_candidates(
    post_incident, near_responder, neighbour_responder, far_responder, layer_spy
):
    response = post_incident(external_id="110-0001")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True
    incident = Incident.objects.get()
    assert body["incident"]["id"] == incident.pk
    assert body["incident"]["kind"] == "knife"
    assert body["incident"]["external_id"] == "110-0001"
    assert body["incident"]["responded_at"] is None
    assert body["wave"] == {"number": 1, "radius_m": 1500}
    candidates = body["candidates"]
    assert [c["unit"] for c in candidates] == [near_responder.unit_id, neighbour_responder.unit_id]
    assert candidates[0]["distance_m"] < candidates[1]["distance_m"] <= 1500
    assert candidates[0]["eta_s"] < candidates[1]["eta_s"]
    assert candidates[0]["distance_m"] == pytest.approx(200.15, abs=0.1)
    assert set(candidates[0]) >= {"unit", "distance_m", "eta_s"}

    assert layer_spy.types(unit_group(near_responder.unit_id)) == ["incident.alert"]
    assert layer_spy.types(unit_group(neighbour_responder.unit_id)) == ["incident.alert"]
    assert layer_spy.to(unit_group(far_responder.unit_id)) == []
    assert not Dispatch.objects.filter(unit=far_responder.unit).exists()
    assert incident.created_by.staff.role == "police_station"


def test_repeated_intake_with_the_same_external_id_returns_the_same_incident(
    post_incident, near_responder, layer_spy
):
    first = post_incident(external_id="110-0002")
    layer_spy.clear()
    # The same report again (a retry); another report with this id is a 409
    # (tests/dispatch/test_intake_scope.py).
    again = post_incident(external_id="110-0002")

    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["incident"]["id"] == first.json()["incident"]["id"]
    assert again.json()["incident"]["description"] == "商场门口有人持刀"
    assert layer_spy.sent == []
    assert Incident.objects.count() == 1
    assert Dispatch.objects.count() == 1


def test_intake_keeps_the_discovery_time_the_integration_gives(post_incident, near_responder):
    called = (timezone.now() - dt.timedelta(seconds=30)).replace(microsecond=0)
    response = post_incident(discovered_at=called.isoformat())
    assert response.status_code == 201
    incident = Incident.objects.get()
    assert incident.discovered_at == called
    assert incident.received_at >= called


def field_errors(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    return response.json()


@pytest.mark.parametrize("ahead_s", [5.5, 60, 600])
def test_a_discovery_time_in_the_future_is_clamped_and_its_skew_recorded(
    post_incident, near_responder, layer_spy, ahead_s
):
    """A fast CAD clock must never drop the emergency (issue 10, fault 2)."""
    before = timezone.now()
    future = before + dt.timedelta(seconds=ahead_s)
    response = post_incident(discovered_at=future.isoformat())

    assert response.status_code == 201, response.content
    incident = Incident.objects.get()
    assert before <= incident.discovered_at <= timezone.now()
    # Clamped to the receipt time (taken a moment before the row is written).
    lag = incident.received_at - incident.discovered_at
    assert dt.timedelta(0) <= lag < dt.timedelta(seconds=1)
    created = incident.events.get(type="created")
    assert created.data["clock_skew_s"] == pytest.approx(ahead_s, abs=2)
    assert dt.datetime.fromisoformat(created.data["discovered_at_reported"]) == future
    assert layer_spy.types(unit_group(near_responder.unit_id)) == ["incident.alert"]


def test_a_repeat_with_a_clamped_discovery_time_is_the_same_report(post_incident, near_responder):
    future = (timezone.now() + dt.timedelta(seconds=30)).isoformat()
    first = post_incident(external_id="110-fast", discovered_at=future)
    again = post_incident(external_id="110-fast", discovered_at=future)
    assert again.status_code == 200, again.content
    assert again.json()["incident"]["id"] == first.json()["incident"]["id"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+00:00", "days:2"])
def test_a_discovery_time_before_the_window_is_refused(post_incident, near_responder, when):
    if when.startswith("days:"):
        when = (timezone.now() - dt.timedelta(days=int(when[5:]))).isoformat()
    errors = field_errors(post_incident(discovered_at=when))
    assert "discovered_at" in errors
    assert not Incident.objects.exists()


def test_the_discovery_window_is_a_setting(post_incident, near_responder, settings):
    settings.DISCOVERY_WINDOW_S = 60
    two_minutes_ago = (timezone.now() - dt.timedelta(minutes=2)).isoformat()
    assert "discovered_at" in field_errors(post_incident(discovered_at=two_minutes_ago))


def test_a_naive_discovery_time_is_refused(post_incident, near_responder):
    errors = field_errors(post_incident(discovered_at="2024-05-01T12:00:00"))
    assert "discovered_at" in errors
    assert not Incident.objects.exists()


def test_missing_fields_are_named(cad_client, near_responder):
    errors = field_errors(cad_client.post(INCIDENTS, {}, format="json"))
    assert set(errors) >= {"kind", "lat", "lon"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "alien"}, "kind"),
        ({"severity": 9}, "severity"),
        ({"lat": 91}, "lat"),
        ({"lat": -90.5}, "lat"),
        ({"lon": 180.1}, "lon"),
        ({"lat": "north"}, "lat"),
        ({"lat": "NaN"}, "lat"),
        ({"lon": "Infinity"}, "lon"),
        ({"lat": None}, "lat"),
        ({"external_id": "x" * 65}, "external_id"),
        ({"description": "长" * 2001}, "description"),
        ({"source": "member"}, "source"),
        ({"discovered_at": "yesterday"}, "discovered_at"),
    ],
)
def test_bad_fields_are_refused_with_field_errors(cad_client, near_responder, overrides, field):
    response = cad_client.post(INCIDENTS, incident_payload(**overrides), format="json")
    assert field in field_errors(response)
    assert not Incident.objects.exists()


def test_a_point_outside_the_service_area_is_refused(cad_client, service_area, near_responder):
    response = cad_client.post(INCIDENTS, incident_payload(lat=22.5, lon=113.9), format="json")
    errors = field_errors(response)
    assert {"lat", "lon"} <= set(errors)
    assert not Incident.objects.exists()


def test_a_point_inside_the_service_area_gets_its_street(cad_client, service_area, near_responder):
    response = cad_client.post(INCIDENTS, incident_payload(), format="json")
    assert response.status_code == 201
    assert response.json()["incident"]["region"] == "440106001"


def test_malformed_json_is_a_400(cad_client, near_responder):
    response = cad_client.post(INCIDENTS, '{"kind": "knife",', content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()


def test_a_json_array_is_a_400(cad_client, near_responder):
    response = cad_client.post(INCIDENTS, "[1, 2]", content_type="application/json")
    assert response.status_code == 400


def test_a_huge_body_is_refused_with_a_clear_error(cad_client, settings, near_responder):
    body = json.dumps(incident_payload(description="x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE)))
    response = cad_client.post(INCIDENTS, body, content_type="application/json")
    assert response.status_code in (400, 413)
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()
    assert not Incident.objects.exists()


def test_intake_needs_authentication(near_responder):
    response = APIClient().post(INCIDENTS, incident_payload(), format="json")
    assert response.status_code in (401, 403)
    assert not Incident.objects.exists()


def test_a_member_cannot_post_incidents(near_responder):
    response = client_for(near_responder.user).post(INCIDENTS, incident_payload(), format="json")
    assert response.status_code == 403
    assert not Incident.objects.exists()


def test_a_police_reviewer_cannot_post_incidents(city):
    reviewer = StaffFactory(role=StaffProfile.Role.POLICE_REVIEWER, region=city).user
    response = client_for(reviewer).post(INCIDENTS, incident_payload(), format="json")
    assert response.status_code == 403
    assert not Incident.objects.exists()


def test_a_district_admin_can_post_incidents_from_the_console(
    tianhe_admin, service_area, near_responder
):
    # With district outlines (service_area) the point is known to lie in 天河区.
    response = client_for(tianhe_admin).post(
        INCIDENTS, incident_payload(source="console"), format="json"
    )
    assert response.status_code == 201
    assert Incident.objects.get().source == "console"


def test_a_user_without_a_role_cannot_post_incidents(db):
    response = client_for(UserFactory()).post(INCIDENTS, incident_payload(), format="json")
    assert response.status_code == 403


# --- one-button report -----------------------------------------------------------------


def test_a_member_reports_an_incident_with_one_button(
    near_responder, neighbour_responder, layer_spy, django_capture_on_commit_callbacks
):
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(near_responder.user).post(
            REPORT, {"kind": "fight", "lat": SPOT[0], "lon": SPOT[1]}, format="json"
        )
    assert response.status_code == 201, response.content
    incident = Incident.objects.get()
    assert incident.source == Incident.Source.MEMBER
    assert incident.reported_by == near_responder
    assert before <= incident.discovered_at <= timezone.now()
    assert incident.events.get(type="created").member == near_responder
    # The reporter's own unit is called too: it is the nearest.
    assert response.json()["candidates"][0]["unit"] == near_responder.unit_id
    assert layer_spy.types(unit_group(neighbour_responder.unit_id)) == ["incident.alert"]


def test_a_report_cannot_backdate_or_choose_its_source(near_responder):
    response = client_for(near_responder.user).post(
        REPORT,
        {
            "kind": "fight",
            "lat": SPOT[0],
            "lon": SPOT[1],
            "discovered_at": "2020-01-01T00:00:00+08:00",
            "source": "cad",
            "severity": 4,
        },
        format="json",
    )
    assert response.status_code == 201
    incident = Incident.objects.get()
    assert incident.source == "member"
    assert incident.discovered_at.year == timezone.now().year
    assert incident.severity == Incident.Severity.MEDIUM


def test_a_report_with_bad_coordinates_is_refused(near_responder):
    response = client_for(near_responder.user).post(
        REPORT, {"kind": "fight", "lat": 95, "lon": SPOT[1]}, format="json"
    )
    assert "lat" in field_errors(response)


def test_a_deactivated_member_cannot_report(near_responder):
    near_responder.is_active = False
    near_responder.save()
    response = client_for(near_responder.user).post(
        REPORT, {"kind": "fight", "lat": SPOT[0], "lon": SPOT[1]}, format="json"
    )
    assert response.status_code == 403
    assert not Incident.objects.exists()


def test_staff_without_a_member_record_cannot_use_the_report_button(dispatcher):
    response = client_for(dispatcher).post(
        REPORT, {"kind": "fight", "lat": SPOT[0], "lon": SPOT[1]}, format="json"
    )
    assert response.status_code == 403


# --- detail --------------------------------------------------------------------------------


@pytest.fixture
def handled_incident(post_incident, service_area, near_responder, neighbour_responder):
    """An incident accepted, controlled and handled by the near unit."""
    incident_id = post_incident().json()["incident"]["id"]
    member_api = client_for(near_responder.user)
    for action in ("accept", "on_site", "handled"):
        response = member_api.post(actions_url(incident_id), {"action": action}, format="json")
        assert response.status_code == 200, response.content
    return Incident.objects.get(pk=incident_id)


def test_detail_shows_the_four_firsts_durations_compliance_and_timeline(
    cad_client, handled_incident, near_responder
):
    response = cad_client.get(detail_url(handled_incident.pk))
    assert response.status_code == 200
    body = response.json()
    for name in ("discovered_at", "responded_at", "controlled_at", "handled_at", "received_at"):
        assert body[name] is not None, name
    assert body["status"] == "closed"
    durations = body["durations"]
    assert (
        0 <= durations["to_response_s"] <= durations["to_control_s"] <= durations["to_handling_s"]
    )
    assert body["compliance"] == {
        "responded": True,
        "controlled": True,
        "handled": True,
        "all": True,
    }
    timeline = body["timeline"]
    assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1))
    assert [e["type"] for e in timeline] == [
        "created",
        "alerted",
        "alerted",
        "accepted",
        "on_site",
        "handled",
        "closed",
        "stood_down",
    ]
    accepted = timeline[3]
    assert (accepted["unit"], accepted["unit_code"]) == (
        near_responder.unit_id,
        near_responder.unit.code,
    )
    assert accepted["member_name"] == near_responder.name
    assert accepted["type_display"]


def test_compliance_is_false_for_a_late_response_and_open_while_pending(
    cad_client, post_incident, near_responder
):
    late = timezone.now() - dt.timedelta(seconds=200)
    incident_id = post_incident(discovered_at=late.isoformat()).json()["incident"]["id"]
    client_for(near_responder.user).post(
        actions_url(incident_id), {"action": "accept"}, format="json"
    )
    compliance = cad_client.get(detail_url(incident_id)).json()["compliance"]
    assert compliance["responded"] is False
    assert compliance["controlled"] is False  # 3 minutes have passed without control
    assert compliance["handled"] is None  # 5 minutes have not
    assert compliance["all"] is False


def test_a_district_admin_of_another_district_gets_404(haizhu_admin, handled_incident):
    assert client_for(haizhu_admin).get(detail_url(handled_incident.pk)).status_code == 404


def test_the_district_admin_of_the_incident_can_read_it(tianhe_admin, handled_incident):
    assert client_for(tianhe_admin).get(detail_url(handled_incident.pk)).status_code == 200


def test_an_alerted_member_can_read_the_incident(
    near_responder, neighbour_responder, handled_incident
):
    for member in (near_responder, neighbour_responder):
        response = client_for(member.user).get(detail_url(handled_incident.pk))
        assert response.status_code == 200
        assert response.json()["id"] == handled_incident.pk


def test_a_member_who_was_not_alerted_gets_404(far_responder, handled_incident):
    assert client_for(far_responder.user).get(detail_url(handled_incident.pk)).status_code == 404


@pytest.mark.parametrize("pk", ["999999", "abc", "1.5"])
def test_an_unknown_or_malformed_incident_id_is_a_404(near_responder, cad_client, pk):
    assert cad_client.get(detail_url(pk)).status_code == 404
    assert client_for(near_responder.user).get(detail_url(pk)).status_code == 404


def test_the_incident_list_is_scoped(cad_client, tianhe_admin, haizhu_admin, handled_incident):
    assert [i["id"] for i in cad_client.get(INCIDENTS).json()["results"]] == [handled_incident.pk]
    assert client_for(tianhe_admin).get(INCIDENTS).json()["count"] == 1
    assert client_for(haizhu_admin).get(INCIDENTS).json()["count"] == 0


# --- actions -------------------------------------------------------------------------------


@pytest.fixture
def open_incident(post_incident, near_responder, neighbour_responder) -> Incident:
    return Incident.objects.get(pk=post_incident(severity=3).json()["incident"]["id"])


def test_accept_through_the_api_sets_responded_at(open_incident, near_responder):
    response = client_for(near_responder.user).post(
        actions_url(open_incident.pk), {"action": "accept", "lat": 23.131, "lon": 113.32}
    )
    assert response.status_code == 200
    assert response.json() == {"incident_id": open_incident.pk, "dispatch_status": "accepted"}
    open_incident.refresh_from_db()
    assert open_incident.responded_at is not None
    event = open_incident.events.get(type="accepted")
    assert event.data["lat"] == 23.131


def test_an_action_by_a_member_whose_unit_was_not_alerted_is_a_404(open_incident, far_responder):
    response = client_for(far_responder.user).post(
        actions_url(open_incident.pk), {"action": "accept"}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_alerted"
    open_incident.refresh_from_db()
    assert open_incident.responded_at is None


def test_an_action_out_of_order_is_a_409_and_changes_nothing(open_incident, near_responder):
    response = client_for(near_responder.user).post(
        actions_url(open_incident.pk), {"action": "on_site"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "out_of_order"
    open_incident.refresh_from_db()
    assert open_incident.controlled_at is None
    assert not open_incident.events.filter(type="on_site").exists()


def test_an_action_on_a_closed_incident_is_a_409(handled_incident, neighbour_responder):
    response = client_for(neighbour_responder.user).post(
        actions_url(handled_incident.pk), {"action": "accept"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "closed"


@pytest.mark.parametrize(
    "body",
    [{}, {"action": "fly"}, {"action": "accept", "lat": 91, "lon": 113}],
)
def test_a_bad_action_body_is_a_400(open_incident, near_responder, body):
    response = client_for(near_responder.user).post(
        actions_url(open_incident.pk), body, format="json"
    )
    assert response.status_code == 400


def test_an_action_with_half_a_location_is_a_400(open_incident, near_responder):
    response = client_for(near_responder.user).post(
        actions_url(open_incident.pk), {"action": "accept", "lat": 23.13}, format="json"
    )
    assert response.status_code == 400
    open_incident.refresh_from_db()
    assert open_incident.responded_at is None


def test_staff_cannot_act_for_a_unit(open_incident, dispatcher):
    response = client_for(dispatcher).post(actions_url(open_incident.pk), {"action": "accept"})
    assert response.status_code == 403


# --- nearby units --------------------------------------------------------------------------


def test_nearby_units_are_ranked_with_distance_eta_duty_and_kit(
    cad_client, near_responder, neighbour_responder, far_responder
):
    give_full_kit(near_responder.unit)
    response = cad_client.get(NEARBY, {"lat": SPOT[0], "lon": SPOT[1], "limit": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    first, second = body["results"]
    assert [first["id"], second["id"]] == [near_responder.unit_id, neighbour_responder.unit_id]
    unit = near_responder.unit
    assert (first["code"], first["name"], first["lat"], first["lon"]) == (
        unit.code,
        unit.name,
        unit.lat,
        unit.lon,
    )
    assert first["distance_m"] == pytest.approx(200.2, abs=0.1)
    assert first["eta_s"] < second["eta_s"]
    assert first["on_duty_count"] == 2
    assert {k["kind"] for k in first["kit"]} >= {"steel_fork", "shield", "stab_vest"}
    assert second["kit"] == []


def test_nearby_units_within_a_radius(
    cad_client, near_responder, neighbour_responder, far_responder
):
    response = cad_client.get(NEARBY, {"lat": SPOT[0], "lon": SPOT[1], "radius_m": 300})
    assert [u["id"] for u in response.json()["results"]] == [near_responder.unit_id]
    response = cad_client.get(NEARBY, {"lat": SPOT[0], "lon": SPOT[1], "radius_m": 10_000})
    assert [u["id"] for u in response.json()["results"]] == [
        near_responder.unit_id,
        neighbour_responder.unit_id,
        far_responder.unit_id,
    ]


def test_nearby_lists_units_with_nobody_on_duty_too(cad_client, near_unit):
    response = cad_client.get(NEARBY, {"lat": SPOT[0], "lon": SPOT[1]})
    assert [(u["id"], u["on_duty_count"]) for u in response.json()["results"]] == [
        (near_unit.pk, 0)
    ]


def test_nearby_units_are_limited_to_the_users_scope(haizhu_admin, near_unit, far_unit):
    response = client_for(haizhu_admin).get(NEARBY, {"lat": SPOT[0], "lon": SPOT[1]})
    assert [u["id"] for u in response.json()["results"]] == [far_unit.pk]


def test_nearby_query_count_does_not_grow_with_the_limit(
    cad_client, tianhe_street, django_assert_max_num_queries
):
    for i in range(10):
        give_full_kit(UnitFactory(region=tianhe_street, lat=SPOT[0] + 0.001 * i, lon=SPOT[1]))
    cad_client.get(NEARBY, {"lat": SPOT[0], "lon": SPOT[1], "limit": 1})
    with django_assert_max_num_queries(8):
        response = cad_client.get(NEARBY, {"lat": SPOT[0], "lon": SPOT[1], "limit": 10})
    assert response.json()["count"] == 10


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lon": SPOT[1]}, "lat"),
        ({"lat": "x", "lon": SPOT[1]}, "lat"),
        ({"lat": 95, "lon": SPOT[1]}, "lat"),
        ({"lat": "nan", "lon": SPOT[1]}, "lat"),
        ({"lat": SPOT[0], "lon": SPOT[1], "limit": 0}, "limit"),
        ({"lat": SPOT[0], "lon": SPOT[1], "limit": "ten"}, "limit"),
        ({"lat": SPOT[0], "lon": SPOT[1], "limit": 1000}, "limit"),
        ({"lat": SPOT[0], "lon": SPOT[1], "radius_m": -5}, "radius_m"),
        ({"lat": SPOT[0], "lon": SPOT[1], "kind": "alien"}, "kind"),
    ],
)
def test_nearby_refuses_bad_parameters(cad_client, near_unit, params, field):
    response = cad_client.get(NEARBY, params)
    assert field in field_errors(response)


def test_nearby_needs_authentication(near_unit):
    response = APIClient().get(NEARBY, {"lat": SPOT[0], "lon": SPOT[1]})
    assert response.status_code in (401, 403)


def test_delivery_rows_follow_the_api_intake(post_incident, near_responder):
    post_incident()
    members = set(near_responder.unit.members.values_list("pk", flat=True))
    assert set(Delivery.objects.values_list("member_id", flat=True)) == members


def test_a_one_button_report_alerts_colleagues_not_the_reporter(
    near_responder, neighbour_responder, django_capture_on_commit_callbacks
):
    # Issue 13: the reporter is on site by definition. Their colleagues and the
    # nearby units are alerted; the reporter gets no alert, no push, SMS or call
    # (no delivery row), and the frame names the reporter so their own phone
    # shows the report's confirmation instead of an alert of its own incident.
    colleague = near_responder.unit.members.exclude(pk=near_responder.pk).get(on_duty=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(near_responder.user).post(
            REPORT, {"kind": "fight", "lat": SPOT[0], "lon": SPOT[1]}, format="json"
        )
    assert response.status_code == 201, response.content
    incident = Incident.objects.get()
    alerted = set(
        Delivery.objects.filter(dispatch__incident=incident).values_list("member_id", flat=True)
    )
    assert near_responder.pk not in alerted
    assert {colleague.pk, neighbour_responder.pk} <= alerted
    assert payloads.incident_summary(incident)["reported_by"] == near_responder.pk


def test_a_report_without_an_address_is_placed_by_street_and_nearest_unit(near_responder):
    # Never raw coordinates: the street, and the nearest unit's name.
    response = client_for(near_responder.user).post(
        REPORT, {"kind": "fight", "lat": SPOT[0], "lon": SPOT[1]}, format="json"
    )
    assert response.status_code == 201
    incident = Incident.objects.get()
    if incident.region is not None:
        assert incident.address.startswith(incident.region.name)
    assert f"{near_responder.unit.name}附近" in incident.address
    assert str(SPOT[0])[:6] not in incident.address
