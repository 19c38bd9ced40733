""" "Test my alert" (测试提醒): the member's own chain, marked as a test, to nobody
else, counted nowhere, rate-limited; and the channels that reached a member last."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dispatch import notify
from dispatch.events import member_group, unit_group
from dispatch.models import Delivery, Dispatch, Incident, IncidentEvent, NotificationAttempt
from dispatch.services import delivery_ack, incident_create
from mobile import selectors as mobile_selectors
from mobile.auth import member_activate, member_login_code_issue
from mobile.models import AlertTest
from review.models import Drill
from tests.factories import MemberFactory, UnitFactory

pytestmark = pytest.mark.django_db

PASSWORD = "Resp0nd-now"
CHAIN = [
    {"channel": "push", "after_s": 5, "while": "undelivered"},
    {"channel": "sms", "after_s": 25, "while": "unanswered"},
    {"channel": "voice", "after_s": 45, "while": "unanswered"},
]


@pytest.fixture(autouse=True)
def _locmem_backends(settings):
    settings.NOTIFY_BACKENDS = {c["channel"]: "dispatch.notify.LocMemBackend" for c in CHAIN}
    settings.NOTIFY_CHAIN = CHAIN
    settings.ALERT_TEST_MIN_INTERVAL_S = 300
    settings.ALERT_TEST_PER_DAY = 3
    notify.outbox.clear()
    yield
    notify.outbox.clear()


@pytest.fixture
def phone_client(near_member) -> Client:
    issued = member_login_code_issue(member=near_member)
    member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    client = Client()
    response = client.post(
        "/m/login/", {"form": "password", "phone": near_member.phone, "password": PASSWORD}
    )
    assert response.status_code == 302
    return client


def _listen(group: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def _frames(channel: str) -> list[dict]:
    layer = get_channel_layer()
    frames = []
    while True:
        try:
            message = async_to_sync(layer.receive_nowait)(channel)  # type: ignore[attr-defined]
        except Exception:
            message = None
        if message is None:
            return frames
        frames.append(message.get("payload", message))


def test_the_test_runs_the_members_own_chain_marked_as_a_test_to_nobody_else(
    phone_client, near_member, django_capture_on_commit_callbacks
):
    mate = MemberFactory(unit=near_member.unit, on_duty=True)
    mine, unit, theirs = (
        _listen(member_group(near_member.pk)),
        _listen(unit_group(near_member.unit_id)),
        _listen(member_group(mate.pk)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = phone_client.post("/m/api/alert-test/", "{}", content_type="application/json")
    assert response.status_code == 201, response.content

    # The app frame: to this member's sockets only, its own type, marked as a test.
    layer = get_channel_layer()
    frame = async_to_sync(layer.receive)(mine)["payload"]
    assert frame["type"] == "alert.test" and "测试" in frame["test"]["title"]
    assert [s["channel"] for s in frame["test"]["steps"]] == ["push", "sms", "voice"]
    assert not layer.channels.get(unit) and not layer.channels.get(theirs)

    # Each channel of the chain, in order, to this member's number, marked 测试.
    assert [n.channel for n in notify.outbox] == ["push", "sms", "voice"]
    assert {n.phone for n in notify.outbox} == {near_member.phone}
    assert all(
        n.text.startswith("【测试提醒】") and "不是真实警情" in n.text for n in notify.outbox
    )
    push = notify.outbox[0]
    assert push.payload["tag"].startswith("alert-test-") and push.payload["type"] == "alert.test"
    assert push.incident_id is None

    # Nothing an incident statistic could count: no incident, dispatch, receipt,
    # chain attempt, timeline event or drill.
    for model in (Incident, Dispatch, Delivery, NotificationAttempt, IncidentEvent, Drill):
        assert not model.objects.exists(), model
    test = AlertTest.objects.get(member=near_member)
    assert sorted(test.attempts.values_list("channel", "status")) == [
        ("push", "sent"),
        ("sms", "sent"),
        ("voice", "sent"),
    ]
    status = phone_client.get(f"/m/api/alert-test/{test.pk}/").json()
    assert [(c["channel"], c["status"]) for c in status["channels"]] == [
        ("app", "pending"),
        ("push", "sent"),
        ("sms", "sent"),
        ("voice", "sent"),
    ]


def test_the_page_reports_the_frame_and_a_stopped_test_sends_nothing_more(
    phone_client, near_member, far_member, monkeypatch
):
    from mobile import alert_test

    # Steps recorded, not run, so the test can stop between them.
    steps: list[tuple[int, int]] = []
    monkeypatch.setattr(
        alert_test, "_step_schedule", lambda *, test_id, step: steps.append((test_id, step))
    )
    test = alert_test.alert_test_start(member=near_member)
    url = f"/m/api/alert-test/{test.pk}/"
    got = phone_client.post(url, {"event": "received"}, content_type="application/json").json()
    assert got["channels"][0]["channel"] == "app" and got["channels"][0]["status"] == "sent"
    assert alert_test.alert_test_step(test_id=test.pk, step=0) is True
    phone_client.post(url, {"event": "stop"}, content_type="application/json")
    assert alert_test.alert_test_step(test_id=test.pk, step=1) is False
    assert [n.channel for n in notify.outbox] == ["push"]
    assert (
        phone_client.post(url, {"event": "x"}, content_type="application/json").status_code == 400
    )

    # Another member's test is not this member's to read or stop.
    other = alert_test.alert_test_start(member=far_member)
    assert phone_client.get(f"/m/api/alert-test/{other.pk}/").status_code == 404
    stop = {"event": "stop"}
    response = phone_client.post(
        f"/m/api/alert-test/{other.pk}/", stop, content_type="application/json"
    )
    assert response.status_code == 404
    assert AlertTest.objects.get(pk=other.pk).stopped_at is None


def test_tests_are_rate_limited_per_member(phone_client, near_member, far_member, monkeypatch):
    from mobile import alert_test

    monkeypatch.setattr(alert_test, "_step_schedule", lambda **kw: None)
    assert phone_client.post("/m/api/alert-test/").status_code == 201
    again = phone_client.post("/m/api/alert-test/")
    assert again.status_code == 429 and 0 < int(again["Retry-After"]) <= 300
    assert "秒后再试" in again.json()["detail"]
    # Another member is not held back by this one.
    alert_test.alert_test_start(member=far_member)
    # A day allows ALERT_TEST_PER_DAY, however far apart.
    now = dt.datetime.now(dt.UTC)
    AlertTest.objects.filter(member=near_member).update(created_at=now - dt.timedelta(hours=5))
    for hours in (4, 3):
        aged = AlertTest.objects.create(member=near_member)
        AlertTest.objects.filter(pk=aged.pk).update(created_at=now - dt.timedelta(hours=hours))
    full = phone_client.post("/m/api/alert-test/")
    assert full.status_code == 429 and "次数已用完" in full.json()["detail"]
    assert AlertTest.objects.filter(member=near_member).count() == 3


def test_the_page_shows_which_channels_reached_the_member_last(
    phone_client, near_member, monkeypatch
):
    from mobile import alert_test

    MemberFactory(unit=near_member.unit, on_duty=True)
    incident = incident_create(
        kind=Incident.Kind.KNIFE, lat=23.1303, lon=113.3203, source="console"
    ).incident
    delivery = Delivery.objects.get(member=near_member, dispatch__incident=incident)
    assert delivery_ack(incident_id=incident.pk, member=near_member)
    wave = incident.waves.get()
    notify.chain_step(wave_id=wave.pk, step=1, schedule_next=False)  # SMS
    NotificationAttempt.objects.create(delivery=delivery, channel="voice", status="failed")
    monkeypatch.setattr(alert_test, "_step_schedule", lambda **kw: None)
    test = alert_test.alert_test_start(member=near_member)
    alert_test.alert_test_step(test_id=test.pk, step=0)  # push, a test

    reach = phone_client.get("/m/api/me/").json()["reach"]
    by_channel = {r["channel"]: r for r in reach}
    assert set(by_channel) == {"app", "sms", "push"}  # the failed call reached nobody
    assert by_channel["push"]["test"] is True and by_channel["sms"]["test"] is False
    assert reach[0]["channel"] == "push"  # newest first


def test_the_admin_member_list_shows_last_channels_in_flat_queries(
    client, near_member, tianhe_admin
):
    def page() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/admin/units/member/")
        assert response.status_code == 200
        return len(queries), response.content.decode()

    client.force_login(tianhe_admin)
    MemberFactory(unit=near_member.unit, on_duty=True)  # so the unit can be sent
    incident = incident_create(
        kind=Incident.Kind.KNIFE, lat=23.1303, lon=113.3203, source="console"
    ).incident
    assert delivery_ack(incident_id=incident.pk, member=near_member)
    few, html = page()
    assert "最近送达" in html and "应用页面" in html
    for _ in range(15):
        MemberFactory(unit=UnitFactory(region=near_member.unit.region), on_duty=True)
    many, _html = page()
    assert many == few


def test_reach_rows_prefer_the_newer_of_real_and_test():
    t1 = dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)
    t2 = t1 + dt.timedelta(minutes=1)
    rows = mobile_selectors.reach_rows({"reach_sms": t1, "reach_test_sms": t2, "reach_app": t1})
    assert [(r["channel"], r["test"]) for r in rows] == [("sms", True), ("app", False)]
