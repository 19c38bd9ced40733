"""The board's commands over HTTP: each goes through dispatch's public write API,
lands in the timeline with the officer's name, and is refused (403 / 409 with a
message) outside the officer's area, for a watching role, or on a closed incident."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client

from dispatch import services
from dispatch.models import Dispatch, Incident, IncidentEvent
from tests.dispatch.conftest import MID, SPOT

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(user, path: str, body: dict | None = None):
    response = _client(user).post(
        f"/board/api/{path}", json.dumps(body or {}), content_type="application/json"
    )
    return response.status_code, response.json()


def _open_incident() -> Incident:
    return services.incident_create(
        kind="knife", severity=3, lat=SPOT[0], lon=SPOT[1], source=Incident.Source.CAD
    ).incident


def test_an_officer_raises_from_the_board_and_wave_1_goes_out(
    service_area, near_responder, neighbour_responder, officer
):
    status, body = post(
        officer, "incidents/", {"kind": "knife", "severity": 3, "lat": SPOT[0], "lon": SPOT[1]}
    )
    assert status == 201, body
    incident = Incident.objects.get(pk=body["incident_id"])
    assert incident.source == Incident.Source.CONSOLE
    assert incident.created_by == officer
    assert set(body["alerted"]) == {near_responder.unit_id, neighbour_responder.unit_id}
    assert set(incident.dispatches.values_list("unit_id", flat=True)) == set(body["alerted"])


def test_candidates_are_shown_before_sending_with_distance_eta_duty_and_kit(
    service_area, near_responder, neighbour_responder, officer
):
    response = _client(officer).get(
        "/board/api/candidates/", {"lat": SPOT[0], "lon": SPOT[1], "kind": "knife", "severity": 3}
    )
    assert response.status_code == 200
    rows = response.json()["candidates"]
    assert [r["unit_id"] for r in rows][0] == near_responder.unit_id
    first = rows[0]
    assert first["code"] == near_responder.unit.code
    assert 150 < first["distance_m"] < 250
    assert first["eta_s"] > 0 and first["on_duty"] == 2 and "kit_fit" in first
    assert not Incident.objects.exists()  # a preview writes nothing


def test_raising_outside_the_officers_area_is_refused_with_a_message(
    service_area, near_responder, other_officer
):
    status, body = post(
        other_officer, "incidents/", {"kind": "knife", "lat": SPOT[0], "lon": SPOT[1]}
    )
    assert status == 403
    assert body["code"] == "outside_scope" and body["message"]
    assert not Incident.objects.exists()


def test_bad_input_gets_a_400_with_the_field(service_area, officer):
    status, body = post(officer, "incidents/", {"kind": "nope", "lat": SPOT[0], "lon": SPOT[1]})
    assert status == 400 and "kind" in body["errors"]
    status, body = post(officer, "incidents/", {"kind": "knife", "lat": "NaN", "lon": 1e400})
    assert status == 400
    response = _client(officer).post(
        "/board/api/incidents/", "[[[", content_type="application/json"
    )
    assert response.status_code == 400


def test_the_gathering_point_lands_in_the_timeline_with_the_officers_name_and_every_frame(
    service_area, near_responder, officer, layer_spy, django_capture_on_commit_callbacks
):
    incident = _open_incident()
    layer_spy.clear()
    with django_capture_on_commit_callbacks(execute=True):
        status, body = post(
            officer,
            f"incidents/{incident.pk}/gather/",
            {"lat": 23.133, "lon": 113.321, "note": "东门广场"},
        )
    assert status == 200, body
    incident.refresh_from_db()
    assert (incident.gather_lat, incident.gather_lon, incident.gather_note) == (
        23.133,
        113.321,
        "东门广场",
    )
    event = incident.events.get(type=IncidentEvent.Type.GATHERING)
    assert event.user == officer and event.seq == body["seq"]
    frames = layer_spy.to(f"unit.{near_responder.unit_id}")
    assert frames[-1]["event"] == "gathering"
    assert frames[-1]["by"] == "王警官"
    assert frames[-1]["gathering"]["lat"] == 23.133
    # Later frames carry it too: a phone that missed the event still learns it.
    with django_capture_on_commit_callbacks(execute=True):
        services.dispatch_act(incident_id=incident.pk, member=near_responder, action="accept")
    later = layer_spy.to(f"unit.{near_responder.unit_id}")[-1]
    assert later["event"] == "accepted" and later["gathering"]["note"] == "东门广场"


def test_another_stations_officer_is_refused_every_command(
    service_area, near_responder, other_officer
):
    incident = _open_incident()
    for path, body in [
        ("gather/", {"lat": 23.133, "lon": 113.321}),
        ("next-ring/", {}),
        ("call/", {"unit_ids": [near_responder.unit_id]}),
        ("stand-down/", {"unit_ids": [near_responder.unit_id]}),
        ("close/", {"outcome": "false_alarm"}),
    ]:
        status, answer = post(other_officer, f"incidents/{incident.pk}/{path}", body)
        assert status == 403, path
        assert answer["code"] == "outside_scope" and answer["message"]
    response = _client(other_officer).get(f"/board/api/incidents/{incident.pk}/candidates/")
    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.status == Incident.Status.OPEN and incident.gather_lat is None
    assert not incident.events.filter(user=other_officer).exists()


def test_a_reviewer_watches_but_may_not_command(service_area, near_responder, reviewer):
    incident = _open_incident()
    assert _client(reviewer).get("/board/").status_code == 200
    status, body = post(
        reviewer, f"incidents/{incident.pk}/gather/", {"lat": 23.133, "lon": 113.321}
    )
    assert status == 403 and body["code"] == "forbidden"


def test_commands_on_a_closed_incident_get_409(service_area, near_responder, officer):
    incident = _open_incident()
    status, _ = post(officer, f"incidents/{incident.pk}/close/", {"outcome": "false_alarm"})
    assert status == 200
    closed = incident.events.get(type=IncidentEvent.Type.CLOSED)
    assert closed.user == officer and closed.data["outcome"] == "false_alarm"
    for path, body in [
        ("gather/", {"lat": 23.133, "lon": 113.321}),
        ("next-ring/", {}),
        ("close/", {"outcome": "false_alarm"}),
    ]:
        status, answer = post(officer, f"incidents/{incident.pk}/{path}", body)
        assert status == 409, path
        assert answer["code"] == "closed" and answer["message"]


def test_next_ring_now_sends_the_next_ranked_units_as_a_wave_by_the_officer(
    service_area, near_responder, mid_responder, officer, settings
):
    incident = _open_incident()
    assert set(incident.dispatches.values_list("unit_id", flat=True)) == {near_responder.unit_id}
    status, body = post(officer, f"incidents/{incident.pk}/next-ring/")
    assert status == 200, body
    assert body["alerted"] == [mid_responder.unit_id]
    d = Dispatch.objects.get(incident=incident, unit_id=mid_responder.unit_id)
    assert d.wave.number == 2 and d.wave.reason == "board_ring"
    alerted = incident.events.get(type=IncidentEvent.Type.ALERTED, unit_id=mid_responder.unit_id)
    assert alerted.user == officer
    # Nothing further in range: a clear 409, not an empty wave.
    status, body = post(officer, f"incidents/{incident.pk}/next-ring/")
    assert status == 409 and body["code"] == "no_units"


def test_calling_named_units_and_standing_them_down(
    service_area, near_responder, mid_responder, officer
):
    incident = _open_incident()
    status, body = post(
        officer, f"incidents/{incident.pk}/call/", {"unit_ids": [mid_responder.unit_id]}
    )
    assert status == 200 and body["alerted"] == [mid_responder.unit_id]
    assert (
        Dispatch.objects.get(incident=incident, unit_id=mid_responder.unit_id).wave.reason
        == "board_call"
    )
    status, body = post(
        officer, f"incidents/{incident.pk}/stand-down/", {"unit_ids": [mid_responder.unit_id]}
    )
    assert status == 200 and body["stood_down"] == 1
    stood = incident.events.get(type=IncidentEvent.Type.STOOD_DOWN, unit_id=mid_responder.unit_id)
    assert stood.user == officer
    status, body = post(officer, f"incidents/{incident.pk}/call/", {"unit_ids": "all"})
    assert status == 400


def test_the_gathering_service_refuses_a_closed_incident_and_a_bad_point(
    service_area, near_responder, officer
):
    from django.core.exceptions import ValidationError

    incident = _open_incident()
    with pytest.raises(ValidationError):
        services.incident_gather_set(incident=incident, lat=91.0, lon=113.3, actor=officer)
    services.incident_close(incident=incident, actor=officer)
    with pytest.raises(services.ActionRefused):
        services.incident_gather_set(incident=incident, lat=23.1, lon=113.3, actor=officer)
    assert not incident.events.filter(type=IncidentEvent.Type.GATHERING).exists()


def test_mid_spot_is_out_of_wave_1():
    # Guards the cast the next-ring test relies on.
    assert MID[0] < SPOT[0]


def test_the_leaders_phone_for_a_radio_follow_up_is_masked_for_a_reviewer(
    service_area, near_responder, officer, reviewer
):
    from dispatch.supervision import incident_state
    from tests.factories import MemberFactory
    from units.models import Member

    leader = MemberFactory(unit=near_responder.unit, role=Member.Role.LEADER, phone="13812345678")
    incident = _open_incident()
    (unit,) = incident_state(user=officer, incident=incident)["units"]
    assert unit["leader"] == {"name": leader.name, "phone": "13812345678"}
    (unit,) = incident_state(user=reviewer, incident=incident)["units"]
    assert unit["leader"]["phone"] == "138****5678"


def test_next_ring_now_takes_that_rings_deadline_so_its_wave_goes_out_once(
    service_area, near_responder, mid_responder, officer
):
    """The officer sends the 1-minute ring early: when its deadline comes due, the
    same ring must not go out a second time (an empty wave or units alerted twice)."""
    incident = _open_incident()
    status, body = post(officer, f"incidents/{incident.pk}/next-ring/")
    assert status == 200, body
    assert body["alerted"] == [mid_responder.unit_id]

    deadline = incident.deadlines.get(tier="respond_1min")
    deadline.due_at = deadline.due_at - dt.timedelta(hours=1)
    deadline.save(update_fields=["due_at"])
    services.deadline_fire(deadline_id=deadline.pk)
    services.deadlines_sweep()

    assert list(incident.waves.values_list("number", flat=True)) == [1, 2]
    assert incident.dispatches.filter(unit_id=mid_responder.unit_id).count() == 1
