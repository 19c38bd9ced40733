from __future__ import annotations

import base64
import json
import re

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from django.test import Client

from dispatch.models import MemberLocation
from mobile.auth import member_activate, member_login_code_issue
from mobile.models import PushSubscription, SignInThrottle

PASSWORD = "Resp0nd-now"


@pytest.fixture
def phone_client(near_member) -> Client:
    issued = member_login_code_issue(member=near_member)
    member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    near_member.refresh_from_db()
    client = Client()
    response = client.post(
        "/m/login/", {"form": "password", "phone": near_member.phone, "password": PASSWORD}
    )
    assert response.status_code == 302 and response.url == "/m/"
    return client


def test_sign_in_page_renders_in_chinese_by_default(client, db):
    response = client.get("/m/login/")
    assert response.status_code == 200
    assert "队员登录" in response.content.decode()


def test_the_app_needs_a_signed_in_member(client, db):
    assert client.get("/m/").url == "/m/login/"
    assert client.get("/m/api/me/").status_code == 401


def test_staff_without_a_member_record_is_told_so(client, tianhe_admin):
    client.force_login(tianhe_admin)
    response = client.get("/m/")
    assert response.status_code == 403
    assert "不是在册队员" in response.content.decode()


def test_wrong_password_shows_a_clear_message_and_is_throttled_after_repeats(client, near_member):
    issued = member_login_code_issue(member=near_member)
    member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    form = {"form": "password", "phone": near_member.phone, "password": "nope-nope"}
    for _ in range(3):
        wrong = client.post("/m/login/", form)
        assert wrong.status_code == 400
        assert "手机号或密码错误" in wrong.content.decode()
    # Too fast: slowed down, told when to come back, the password not even checked.
    throttled = client.post("/m/login/", {**form, "password": PASSWORD})
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) >= 1
    assert "稍后再试" in throttled.content.decode()
    assert client.get("/m/api/me/").status_code == 401
    # Never locked: once the wait is over, the right password signs in.
    SignInThrottle.objects.update(next_try_at=None)
    assert client.post("/m/login/", {**form, "password": PASSWORD}).status_code == 302
    assert client.get("/m/api/me/").status_code == 200


def test_first_sign_in_through_the_page_sets_the_password(client, near_member):
    issued = member_login_code_issue(member=near_member)
    response = client.post(
        "/m/login/",
        {"form": "activate", "phone": near_member.phone, "code": issued.code, "password": PASSWORD},
    )
    assert response.status_code == 302
    assert client.get("/m/api/me/").json()["member"]["id"] == near_member.pk


def test_the_shell_page_carries_config_strings_and_the_vapid_key(phone_client, settings, tmp_path):
    settings.VAPID_PRIVATE_KEY_FILE = tmp_path / "vapid.pem"
    from mobile import webpush

    webpush.vapid_reset()
    try:
        html = phone_client.get("/m/").content.decode()
    finally:
        webpush.vapid_reset()
    assert "member-config" in html and "一键报警" in html
    assert '"tileUrl": ""' in html
    # The page carries the public half of the key the server signs pushes with.
    config = json.loads(
        re.search(r'<script id="member-config" type="application/json">(.*?)</script>', html)[1]
    )
    key = load_pem_private_key((tmp_path / "vapid.pem").read_bytes(), password=None)
    public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert config["vapidKey"] == base64.urlsafe_b64encode(public).rstrip(b"=").decode()


def test_me_shows_own_unit_and_kit(phone_client, near_member):
    from tests.factories import EquipmentFactory

    EquipmentFactory(unit=near_member.unit, kind="shield", quantity=1)
    body = phone_client.get("/m/api/me/").json()
    assert body["unit"]["id"] == near_member.unit_id
    shield = next(k for k in body["kit"] if k["kind"] == "shield")
    assert (shield["quantity"], shield["required"], shield["ok"]) == (1, 2, False)
    assert body["kit_complete"] is False


def test_clock_out_and_in_with_location(phone_client, near_member):
    out = phone_client.post(
        "/m/api/duty/",
        json.dumps({"on_duty": False, "lat": 23.13, "lon": 113.32, "accuracy": 12}),
        content_type="application/json",
    )
    assert out.status_code == 200 and out.json()["member"]["on_duty"] is False
    back = phone_client.post(
        "/m/api/duty/",
        json.dumps({"on_duty": True, "lat": 23.131, "lon": 113.321}),
        content_type="application/json",
    )
    assert back.json()["member"]["on_duty"] is True
    assert MemberLocation.objects.filter(member=near_member).count() == 2


def test_clock_in_with_a_bad_location_changes_nothing(phone_client, near_member):
    near_member.on_duty = False
    near_member.save()
    response = phone_client.post(
        "/m/api/duty/",
        json.dumps({"on_duty": True, "lat": 123.0, "lon": 113.3}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "lat" in response.json()["errors"]
    near_member.refresh_from_db()
    assert near_member.on_duty is False
    assert not MemberLocation.objects.exists()


def test_clock_in_refused_for_an_inactive_unit(phone_client, near_member):
    near_member.on_duty = False
    near_member.save()
    near_member.unit.is_active = False
    near_member.unit.save()
    response = phone_client.post(
        "/m/api/duty/", json.dumps({"on_duty": True}), content_type="application/json"
    )
    assert response.status_code == 400
    assert "停用" in json.dumps(response.json(), ensure_ascii=False)


def test_push_subscription_is_stored_and_validated(phone_client, near_member, monkeypatch):
    from mobile import push_endpoints

    # DNS stub for the one hostname (no network in tests); see test_push_ssrf.py.
    monkeypatch.setattr(push_endpoints, "resolve", lambda host, port: ["142.250.72.10"])
    bad = phone_client.post(
        "/m/api/push/", json.dumps({"endpoint": "ftp://x"}), content_type="application/json"
    )
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"endpoint", "p256dh", "auth"}
    ok = phone_client.post(
        "/m/api/push/",
        json.dumps(
            {
                "endpoint": "https://fcm.googleapis.com/fcm/send/abc",
                "keys": {"p256dh": "BBBB", "auth": "AAAA"},
            }
        ),
        content_type="application/json",
    )
    assert ok.status_code == 201
    assert PushSubscription.objects.get().member == near_member


def test_manifest_and_service_worker(client, db):
    manifest = client.get("/m/manifest.webmanifest").json()
    assert manifest["start_url"] == "/m/" and manifest["display"] == "standalone"
    assert {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
    sw = client.get("/m/sw.js")
    assert sw["Service-Worker-Allowed"] == "/m/"
    assert "/static/member/js/main.js" in sw.content.decode()
    assert "/static/member/js/socket.js" in sw.content.decode()


def test_history_lists_own_alerts(phone_client, near_member, far_member):
    from dispatch.models import Incident
    from dispatch.services import incident_create

    near_member.unit.post_min = 0
    near_member.unit.save()
    incident_create(kind=Incident.Kind.FIGHT, lat=23.1301, lon=113.3201, source="console")
    rows = phone_client.get("/m/api/alerts/").json()["results"]
    assert [r["incident"]["kind"] for r in rows] == ["fight"]


@pytest.mark.django_db(transaction=True)
def test_signing_out_closes_the_open_socket_and_ends_duty(near_member):
    from config.asgi import application

    client = _signed_in_client(near_member)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario() -> list[dict]:
        ws = WebsocketCommunicator(
            application,
            "/ws/member/",
            headers=[(b"cookie", cookie), (b"origin", b"http://testserver")],
        )
        connected, _ = await ws.connect()
        assert connected
        hello = await ws.receive_json_from()
        assert hello["type"] == "hello" and hello["on_duty"] is True
        response = await sync_to_async(client.post)("/m/logout/")
        assert response.status_code == 302
        frames = []
        while True:
            frame = await ws.receive_output(timeout=2)
            frames.append(frame)
            if frame["type"] == "websocket.close":
                break
        await ws.disconnect()
        return frames

    frames = async_to_sync(scenario)()
    texts = [json.loads(f["text"]) for f in frames if f["type"] == "websocket.send"]
    assert any(t.get("code") == "signed_out" for t in texts)
    assert frames[-1]["code"] == 4401
    near_member.refresh_from_db()
    assert near_member.on_duty is False


def _signed_in_client(member) -> Client:
    issued = member_login_code_issue(member=member)
    member_activate(phone=member.phone, code=issued.code, password=PASSWORD)
    client = Client()
    client.post("/m/login/", {"form": "password", "phone": member.phone, "password": PASSWORD})
    return client


@pytest.mark.django_db(transaction=True)
def test_clocking_out_on_the_page_stops_alerts_to_the_open_socket(near_member):
    from config.asgi import application
    from dispatch.models import Incident
    from dispatch.services import incident_create
    from tests.factories import MemberFactory

    MemberFactory(unit=near_member.unit, on_duty=True)
    MemberFactory(unit=near_member.unit, on_duty=True)  # the unit stays sendable
    client = _signed_in_client(near_member)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    def raise_one() -> int:
        return incident_create(
            kind=Incident.Kind.FIGHT, lat=23.1302, lon=113.3202, source="console"
        ).incident.pk

    async def scenario() -> tuple[list[dict], int, int]:
        ws = WebsocketCommunicator(
            application,
            "/ws/member/",
            headers=[(b"cookie", cookie), (b"origin", b"http://testserver")],
        )
        await ws.connect()
        await ws.receive_json_from()  # hello
        first = await sync_to_async(raise_one)()
        on_duty_alert = await ws.receive_json_from(timeout=2)
        response = await sync_to_async(client.post)(
            "/m/api/duty/", json.dumps({"on_duty": False}), content_type="application/json"
        )
        assert response.status_code == 200
        duty = await ws.receive_json_from(timeout=2)
        second = await sync_to_async(raise_one)()
        later = []
        while not await ws.receive_nothing(timeout=0.5):
            later.append(await ws.receive_json_from())
        await ws.disconnect()
        return [on_duty_alert, duty, *later], first, second

    frames, first, second = async_to_sync(scenario)()
    assert frames[0]["type"] == "incident.alert" and frames[0]["incident"]["id"] == first
    assert frames[1] == {"type": "duty", "id": None, "on_duty": False}
    assert not [f for f in frames[2:] if f.get("incident", {}).get("id") == second]


def test_the_member_pages_speak_english_when_asked(client, near_member, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    page = client.get("/m/login/").content.decode()
    assert "Member sign-in" in page and "队员登录" not in page
    wrong = client.post(
        "/m/login/", {"form": "password", "phone": near_member.phone, "password": "x"}
    ).content.decode()
    assert "Wrong phone number or password." in wrong


def test_admin_issues_a_one_time_code_that_the_member_can_use(client, near_member):
    import re

    from tests.factories import UserFactory

    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    response = client.post(
        "/admin/units/member/",
        {"action": "member_issue_login_code", "_selected_action": [near_member.pk]},
        follow=True,
    )
    shown = " ".join(str(m) for m in response.context["messages"])
    code = re.search(r"：(\d{6})", shown).group(1)
    phone = Client()
    signed_in = phone.post(
        "/m/login/",
        {"form": "activate", "phone": near_member.phone, "code": code, "password": PASSWORD},
    )
    assert signed_in.status_code == 302
