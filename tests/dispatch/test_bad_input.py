"""Bad input gets a 400 (or an ``error`` frame on a socket that stays up), never a
server error (issue 10, hole 5)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.test import Client

from dispatch import services
from dispatch.models import Incident, MemberLocation
from tests.asgi_http import asgi_request
from tests.dispatch.conftest import client_for
from tests.dispatch.factories import incident_payload
from tests.dispatch.test_consumers import phone, run
from tests.dispatch.test_supervisor_consumer import feed
from tests.factories import StaffFactory
from units.models import StaffProfile

HUGE = 2**70


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def member_client(member) -> Client:
    client = Client()
    client.force_login(member.user)
    return client


# --- JSON nested deep -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
def test_deep_json_is_a_400_on_the_intake(cad_client, near_responder, depth):
    response = cad_client.post("/api/v1/incidents/", nested(depth), content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert "detail" in response.json()
    assert not Incident.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_json_is_a_400_on_the_report_button(near_responder, depth):
    body = '{"kind": "knife", "lat": ' + nested(depth) + "}"
    response = client_for(near_responder.user).post(
        "/api/v1/incidents/report/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:200]


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_json_is_a_400_on_the_token_endpoint_without_signing_in(depth):
    body = '{"username": "a", "password": ' + nested(depth) + "}"
    response = Client().post("/api/v1/auth/token/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_json_is_a_400_on_the_phones_duty_switch(near_responder, depth):
    response = member_client(near_responder).post(
        "/m/api/duty/", '{"on_duty": ' + nested(depth) + "}", content_type="application/json"
    )
    assert response.status_code == 400, response.content[:200]
    assert "body" in response.json()["errors"]


@pytest.mark.django_db
def test_nan_and_infinity_are_not_json(cad_client, near_responder):
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = json.dumps(incident_payload()).replace("23.1318", literal)
        response = cad_client.post("/api/v1/incidents/", body, content_type="application/json")
        assert response.status_code == 400, (literal, response.content[:200])
    assert not Incident.objects.exists()


# --- huge ids ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_huge_incident_id_on_the_phone_is_a_404(near_responder):
    response = member_client(near_responder).get(f"/m/api/incidents/{HUGE}/")
    assert response.status_code == 404, response.content[:200]


@pytest.mark.django_db
def test_a_huge_incident_id_on_the_api_is_a_404(cad_client, near_responder):
    assert cad_client.get(f"/api/v1/incidents/{HUGE}/").status_code == 404
    response = client_for(near_responder.user).post(
        f"/api/v1/incidents/{HUGE}/actions/", {"action": "accept"}, format="json"
    )
    assert response.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_huge_incident_id_on_the_member_socket_is_an_error_frame(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            for n, message in enumerate(
                [
                    {"type": "ack", "incident_id": HUGE},
                    {"type": "seen", "incident_id": HUGE},
                    {"type": "accept", "incident_id": HUGE},
                    {"type": "resume", "last_event_id": HUGE},
                ]
            ):
                await p.send(id=n, **message)
                error = await p.receive_type("error")
                assert (error["id"], error["code"]) == (n, "bad_field"), error
            await p.send(type="ping", id="after")
            assert (await p.receive_type("pong"))["id"] == "after"

    run(scenario)


def test_the_services_answer_a_huge_id_as_unknown(db, near_responder):
    with pytest.raises(services.ActionRefused):
        services.dispatch_act(incident_id=HUGE, member=near_responder, action="accept")
    assert services.delivery_ack(incident_id=HUGE, member=near_responder) is False


# --- the supervisor socket --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_supervisor_socket_answers_bad_frames_and_stays_up(city):
    user = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=city).user

    async def scenario():
        async with feed(user) as ws:
            assert (await ws.receive_json_from())["type"] == "hello"
            for frame in [
                {"text_data": "{not json"},
                {"bytes_data": b"\x00\x01"},
                {"text_data": nested(5_000)},
                {"text_data": json.dumps({"type": "ping", "pad": "x" * 20_000})},
                {"text_data": json.dumps({"type": "watch", "incident_id": HUGE})},
            ]:
                await ws.send_to(**frame)
                error = await ws.receive_json_from()
                assert error["type"] == "error", (frame, error)
            await ws.send_json_to({"type": "ping", "id": "after"})
            assert await ws.receive_json_from() == {"type": "pong", "id": "after"}

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_member_socket_answers_deep_json_and_a_megabyte_frame(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            await p.ws.send_to(text_data=nested(5_000))
            assert (await p.receive_type("error"))["code"] == "bad_json"
            await p.ws.send_to(text_data="x" * 1_000_000)
            assert (await p.receive_type("error"))["code"] == "bad_frame"
            await p.send(type="ping", id="after")
            assert (await p.receive_type("pong"))["id"] == "after"

    run(scenario)


def test_the_frame_limit_is_under_the_servers(settings):
    """Frames between the two limits get an error frame; only above daphne's own
    limit does the protocol close the socket."""
    assert settings.WS_MAX_FRAME_BYTES < settings.WS_SERVER_MAX_MESSAGE_BYTES


# --- chunked bodies ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_chunked_post_is_refused_with_411_not_read_as_empty(dispatcher, near_responder):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=dispatcher)
    body = json.dumps(incident_payload()).encode()
    headers = [
        (b"authorization", f"Token {token.key}".encode()),
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
    ]
    response = async_to_sync(asgi_request)("POST", "/api/v1/incidents/", body=body, headers=headers)

    assert response["status"] == 411, response
    assert json.loads(response["body"])["code"] == "length_required"
    assert not Incident.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_post_with_a_length_still_works_through_asgi(dispatcher, near_responder):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=dispatcher)
    body = json.dumps(incident_payload()).encode()
    headers = [
        (b"authorization", f"Token {token.key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    response = async_to_sync(asgi_request)("POST", "/api/v1/incidents/", body=body, headers=headers)
    assert response["status"] == 201, response


# --- location accuracy ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("accuracy", ["-5", "Infinity", "1e400", "1e9"])
def test_a_bad_accuracy_is_refused_by_the_duty_switch(near_responder, accuracy):
    body = '{"on_duty": true, "lat": 23.13, "lon": 113.32, "accuracy": ' + accuracy + "}"
    response = member_client(near_responder).post(
        "/m/api/duty/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:200]
    assert not MemberLocation.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("accuracy", ["-5", "1e400", "1e9", '"8"'])
def test_a_bad_accuracy_is_refused_on_the_socket(near_responder, accuracy):
    async def scenario():
        async with phone(near_responder.user) as p:
            raw = '{"type": "location", "id": 1, "lat": 23.13, "lon": 113.32, "accuracy": '
            await p.ws.send_to(text_data=raw + accuracy + "}")
            error = await p.receive_type("error")
            assert error["code"] in {"bad_field", "bad_json"}, error
            await p.send(type="ping", id="after")
            assert (await p.receive_type("pong"))["id"] == "after"

    run(scenario)
    assert not MemberLocation.objects.exists()


@pytest.mark.parametrize("accuracy", [-5, float("inf"), float("nan"), 10**9])
def test_the_location_service_refuses_a_bad_accuracy(db, near_responder, accuracy):
    with pytest.raises(ValidationError) as exc:
        services.member_location_record(
            member=near_responder, lat=23.13, lon=113.32, accuracy_m=accuracy
        )
    assert "accuracy" in exc.value.message_dict
    assert not MemberLocation.objects.exists()
