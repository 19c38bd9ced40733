"""The provider gateways end to end: the real SDKs against a local fake cloud
(tests/fakes/cloud.py) that checks their request signatures, and the provider
callbacks posted to /hooks/ as the providers document them."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
from django.core.checks import Error, Warning

from config.embedded_redis import free_port, redis_start
from dispatch import notify
from dispatch.gateways import checks, ratelimit
from dispatch.gateways.aliyun import AliyunVoiceBackend
from dispatch.models import Incident, IncidentEvent, NotificationAttempt
from dispatch.services import incident_create
from tests.factories import MemberFactory
from tests.fakes.cloud import (
    ALIYUN_AK,
    ALIYUN_SECRET,
    GOV_APP,
    GOV_SECRET,
    TENCENT_ID,
    TENCENT_KEY,
    FakeCloud,
)

ALIYUN_TOKEN = "aliyun-callback-secret"
TENCENT_TOKEN = "tencent-callback-secret"


@pytest.fixture
def cloud(settings):
    server = FakeCloud().start()
    common = {"protocol": "http", "timeout_s": 1.0, "retries": 2, "backoff_s": 0.05, "qps": 1000}
    aliyun = {**common, "access_key_id": ALIYUN_AK, "access_key_secret": ALIYUN_SECRET}
    tencent = {**common, "secret_id": TENCENT_ID, "secret_key": TENCENT_KEY}
    settings.NOTIFY_GATEWAYS = {
        "aliyun_sms": {
            **aliyun,
            "endpoint": server.endpoint,
            "sign": "应急",
            "template": "SMS_1",
            "text_template": "SMS_2",
        },
        "aliyun_voice": {**aliyun, "endpoint": server.endpoint, "tts_code": "TTS_1"},
        "tencent_sms": {
            **tencent,
            "endpoint": server.endpoint,
            "app_id": "1400000000",
            "sign": "应急",
            "template": "100",
            "text_template": "101",
        },
        "tencent_voice": {
            **tencent,
            "endpoint": server.endpoint,
            "app_id": "1400",
            "template": "9",
        },
        "govsms": {
            **common,
            "url": f"http://{server.endpoint}",
            "app_id": GOV_APP,
            "secret": GOV_SECRET,
        },
    }
    settings.ALIYUN_CALLBACK_TOKEN = ALIYUN_TOKEN
    settings.TENCENT_CALLBACK_TOKEN = TENCENT_TOKEN
    ratelimit.reset()
    yield server
    server.stop()
    ratelimit.reset()


def _backends(settings, *, sms: str = "aliyun.AliyunSmsBackend", voice: str = "", chain=None):
    settings.NOTIFY_BACKENDS = {
        "push": "dispatch.notify.LocMemBackend",
        "sms": f"dispatch.gateways.{sms}",
        "voice": f"dispatch.gateways.{voice}" if voice else "dispatch.notify.LocMemBackend",
    }
    settings.NOTIFY_CHAIN = chain or [{"channel": "sms", "after_s": 0, "while": "unanswered"}]


@pytest.fixture
def unit_pair(near_member):
    return near_member, MemberFactory(unit=near_member.unit, on_duty=True)


@pytest.fixture
def no_timers(monkeypatch):
    """Chain steps run only when a test calls them: no step timer stands in."""
    monkeypatch.setattr(notify, "_step_schedule", lambda *, wave_id, step: None)


def _raise() -> Incident:
    result = incident_create(kind=Incident.Kind.KNIFE, lat=23.1303, lon=113.3203, source="console")
    assert result.wave is not None
    return result.incident


def _post(client, url: str, body) -> int:
    data = json.dumps(body, ensure_ascii=False)
    return client.post(url, data, content_type="application/json").status_code


def _events(incident: Incident, type_: str) -> list[IncidentEvent]:
    return list(IncidentEvent.objects.filter(incident=incident, type=type_))


def test_a_member_reached_only_by_sms_replies_1_and_responded_at_is_set(
    settings, cloud, unit_pair, client, no_timers, django_capture_on_commit_callbacks
):
    member, mate = unit_pair
    _backends(settings)
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0)
    (call,) = cloud.calls("aliyun", "SendBatchSms")  # both members in one signed call
    assert sorted(call.phones) == sorted([member.phone, mate.phone])
    assert cloud.rejected == []
    # The delivery receipt marks the member reached; the timeline and feed say so.
    url = f"/hooks/aliyun/{ALIYUN_TOKEN}/sms-report/"
    report = cloud.aliyun_sms_report(phone=member.phone, biz_id=call.ref, success=True)
    assert _post(client, url, report) == 200
    attempt = NotificationAttempt.objects.get(delivery__member=member, channel="sms")
    assert attempt.reached_at is not None and attempt.provider_ref == call.ref
    (reached,) = _events(incident, "reached")
    assert reached.member_id == member.pk and reached.data["channel"] == "sms"
    # The reply "1" acts exactly as a tap would.
    with django_capture_on_commit_callbacks(execute=True):
        up = cloud.aliyun_sms_up(phone=member.phone, content="1")
        assert _post(client, f"/hooks/aliyun/{ALIYUN_TOKEN}/sms-up/", up) == 200
    incident.refresh_from_db()
    assert incident.responded_at is not None
    assert _events(incident, "accepted")[0].member_id == member.pk
    # The answer went back by SMS, through the text template.
    answers = cloud.calls("aliyun", "SendSms")
    assert [a.phones for a in answers] == [[member.phone]]


def test_a_voice_key_press_1_accepts_like_a_tap(
    settings, cloud, unit_pair, client, no_timers, django_capture_on_commit_callbacks
):
    member, _mate = unit_pair
    _backends(
        settings,
        sms="tencent.TencentSmsBackend",
        voice="tencent.TencentVoiceBackend",
        chain=[{"channel": "voice", "after_s": 0, "while": "unanswered"}],
    )
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0)
    calls = {a.phones[0].removeprefix("+86"): a for a in cloud.calls("tencent", "SendTtsVoice")}
    assert member.phone in calls and cloud.rejected == []
    url = f"/hooks/tencent/{TENCENT_TOKEN}/voice/"
    answered = cloud.tencent_voice_prompt(
        phone=member.phone, callid=calls[member.phone].ref, status="0"
    )
    assert _post(client, url, answered) == 200
    assert NotificationAttempt.objects.get(delivery__member=member, channel="voice").answered
    with django_capture_on_commit_callbacks(execute=True):
        key = cloud.tencent_voice_key(phone=member.phone, callid=calls[member.phone].ref, key="1")
        assert _post(client, url, key) == 200
    incident.refresh_from_db()
    assert incident.responded_at is not None
    assert _events(incident, "accepted")[0].member_id == member.pk


def test_forged_or_unknown_callbacks_change_nothing(settings, cloud, unit_pair, client, no_timers):
    member, _mate = unit_pair
    _backends(settings)
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0)
    ref = cloud.calls("aliyun", "SendBatchSms")[0].ref
    report = cloud.aliyun_sms_report(phone=member.phone, biz_id=ref, success=True)
    up = cloud.aliyun_sms_up(phone=member.phone, content="1")
    assert _post(client, "/hooks/aliyun/wrong-token/sms-report/", report) == 403
    assert _post(client, "/hooks/aliyun/wrong-token/sms-up/", up) == 403
    assert _post(client, "/hooks/tencent/wrong/sms-reply/", {"mobile": member.phone}) == 403
    # A receipt naming a message we never sent, or another number, is not applied.
    other = cloud.aliyun_sms_report(phone=member.phone, biz_id="biz-forged", success=True)
    assert _post(client, f"/hooks/aliyun/{ALIYUN_TOKEN}/sms-report/", other) == 200
    # The government platform: a wrong key, and a replay of a good request.
    body, headers = cloud.gov_signed({"type": "reply", "phone": member.phone, "text": "1"}, "nope")
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    assert (
        client.post("/hooks/govsms/", body, content_type="application/json", **extra).status_code
        == 403
    )
    body, headers = cloud.gov_signed({"type": "report", "reports": []})
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    assert (
        client.post("/hooks/govsms/", body, content_type="application/json", **extra).status_code
        == 400
    )
    assert (
        client.post("/hooks/govsms/", body, content_type="application/json", **extra).status_code
        == 403
    )
    assert _post(client, f"/hooks/aliyun/{ALIYUN_TOKEN}/sms-report/", {"x": 1}) == 200
    assert (
        client.post(
            f"/hooks/aliyun/{ALIYUN_TOKEN}/sms-up/", "{", content_type="application/json"
        ).status_code
        == 400
    )
    incident.refresh_from_db()
    assert incident.responded_at is None
    assert not NotificationAttempt.objects.exclude(reached_at=None).exists()
    assert _events(incident, "reached") == []


def test_a_failed_sms_receipt_moves_the_member_to_voice_within_a_second(
    settings, cloud, unit_pair, client, no_timers, django_capture_on_commit_callbacks
):
    member, mate = unit_pair
    _backends(
        settings,
        sms="tencent.TencentSmsBackend",
        voice="aliyun.AliyunVoiceBackend",
        chain=[
            {"channel": "sms", "after_s": 0, "while": "unanswered"},
            {"channel": "voice", "after_s": 600, "while": "unanswered"},
        ],
    )
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0, schedule_next=False)
    assert len(cloud.calls("tencent", "SendSms")) == 1 and cloud.calls("aliyun") == []
    sid = {
        a.delivery.member_id: a.provider_ref
        for a in NotificationAttempt.objects.filter(channel="sms").select_related("delivery")
    }
    url = f"/hooks/tencent/{TENCENT_TOKEN}/sms-report/"

    def fail(who) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            body = cloud.tencent_sms_report(
                phone=who.phone, sid=sid[who.pk], success=False, errmsg="MK:0001"
            )
            assert _post(client, url, body) == 200

    # The mate's receipt first: this process then runs as a worker that has loaded
    # its URLs, tasks and SDK clients (the first request of a process pays seconds
    # of imports, which is not the chain's latency).
    fail(mate)
    started = time.monotonic()
    fail(member)
    calls = {a.phones[0]: a for a in cloud.calls("aliyun", "SingleCallByTts")}
    assert set(calls) == {member.phone, mate.phone}
    assert calls[member.phone].at - started < 1.0
    attempt = NotificationAttempt.objects.get(delivery__member=member, channel="sms")
    assert attempt.status == "failed" and attempt.error_code == "MK:0001"


def test_a_member_no_channel_reaches_is_flagged_for_the_radio(
    settings, cloud, unit_pair, client, no_timers, django_capture_on_commit_callbacks
):
    member, _mate = unit_pair
    _backends(
        settings,
        voice="tencent.TencentVoiceBackend",
        chain=[
            {"channel": "sms", "after_s": 0, "while": "unanswered"},
            {"channel": "voice", "after_s": 600, "while": "unanswered"},
        ],
    )
    cloud.behaviour.refuse_phones = {member.phone}  # SMS refused: straight on to voice
    incident = _raise()
    with django_capture_on_commit_callbacks(execute=True):
        notify.chain_step(wave_id=incident.waves.get().pk, step=0, schedule_next=False)
    calls = {a.phones[0].removeprefix("+86"): a for a in cloud.calls("tencent", "SendTtsVoice")}
    with django_capture_on_commit_callbacks(execute=True):
        body = cloud.tencent_voice_prompt(
            phone=member.phone, callid=calls[member.phone].ref, status="1"
        )
        assert _post(client, f"/hooks/tencent/{TENCENT_TOKEN}/voice/", body) == 200
    (flag,) = _events(incident, "unreachable")
    assert flag.member_id == member.pk
    assert NotificationAttempt.objects.filter(delivery__member=member, channel="radio").count() == 1


def test_a_provider_5xx_or_timeout_is_retried_and_the_timeline_says_so(
    settings, cloud, unit_pair, no_timers
):
    _backends(settings, sms="govsms.GovSmsBackend")
    settings.NOTIFY_GATEWAYS["govsms"]["timeout_s"] = 0.3
    cloud.behaviour.fail_5xx = 1
    cloud.behaviour.timeout = 1
    cloud.behaviour.hang_s = 0.6
    incident = _raise()
    assert notify.chain_step(wave_id=incident.waves.get().pk, step=0) == 2
    assert len(cloud.calls("govsms")) == 1  # accepted once, on the third try
    retries = _events(incident, "notify_retry")
    assert [e.data["attempt"] for e in retries] == [1, 2]
    assert {"HTTP 503"} & {e.data["detail"] for e in retries}
    assert set(NotificationAttempt.objects.values_list("status", flat=True)) == {"sent"}


def test_an_unknown_reply_gets_the_help_text_once_per_number(
    settings, cloud, unit_pair, client, django_capture_on_commit_callbacks
):
    member, _mate = unit_pair
    _backends(settings, sms="tencent.TencentSmsBackend")
    url = f"/hooks/tencent/{TENCENT_TOKEN}/sms-reply/"
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert (
                _post(client, url, cloud.tencent_sms_reply(phone=member.phone, text="ok?")) == 200
            )
    assert len(cloud.calls("tencent", "SendSms")) == 1


@pytest.fixture
def redis_url(settings, tmp_path: Path):
    port = free_port()
    proc = redis_start(port=port, data_dir=tmp_path / "redis", persist=False)
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    ratelimit.reset()
    yield settings.REDIS_URL
    proc.kill()
    proc.wait()
    ratelimit.reset()


def test_two_workers_sharing_a_provider_at_100_qps_never_exceed_it(settings, cloud, redis_url):
    settings.NOTIFY_GATEWAYS["aliyun_voice"]["qps"] = 100
    notes = [
        notify.Notification(
            channel="voice",
            member_id=i,
            member_name="",
            phone=f"139{i:08d}",
            text="t",
            incident_id=1,
        )
        for i in range(240)
    ]
    # Two backends in two threads stand for two workers: only Redis is shared.
    workers = [
        threading.Thread(target=AliyunVoiceBackend().send_many, args=(notes[i::2],))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    times = sorted(a.at for a in cloud.calls("aliyun", "SingleCallByTts"))
    assert len(times) == 240
    busiest = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert busiest <= 100


def test_check_warns_of_missing_keys_and_errs_on_malformed_ones(settings, cloud):
    settings.NOTIFY_BACKENDS = {"sms": "dispatch.gateways.tencent.TencentSmsBackend"}
    settings.NOTIFY_GATEWAYS["tencent_sms"]["secret_id"] = ""
    (warning,) = checks.gateway_keys_present()
    assert isinstance(warning, Warning) and "TENCENT_SECRET_ID" in warning.msg
    settings.NOTIFY_GATEWAYS["tencent_sms"]["secret_id"] = "'AKID-pasted-with-quotes'"
    (error,) = checks.gateway_keys_well_formed()
    assert isinstance(error, Error)
    settings.NOTIFY_BACKENDS = {"sms": "dispatch.notify.ConsoleBackend"}
    assert checks.gateway_keys_present() == [] and checks.gateway_keys_well_formed() == []


def test_a_channel_that_reaches_a_member_is_on_the_timeline_and_the_supervisors_feed(
    settings, unit_pair, no_timers, django_capture_on_commit_callbacks
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    member, mate = unit_pair
    settings.NOTIFY_BACKENDS = {"push": "dispatch.notify.LocMemBackend"}
    settings.NOTIFY_CHAIN = [{"channel": "push", "after_s": 0, "while": "undelivered"}]
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("supervisors", channel)
    incident = _raise()
    with django_capture_on_commit_callbacks(execute=True):
        notify.chain_step(wave_id=incident.waves.get().pk, step=0)
    events = _events(incident, "reached")
    assert sorted(e.member_id for e in events) == sorted([member.pk, mate.pk])
    assert {e.data["channel"] for e in events} == {"push"}
    frames = async_to_sync(_drain)(layer, channel)
    reached = [f for f in frames if f.get("event") == "reached"]
    assert sorted(f["member_id"] for f in reached) == sorted([member.pk, mate.pk])
    assert all(f["data"]["channel"] == "push" and f["at"] for f in reached)


async def _drain(layer, channel: str) -> list[dict]:
    frames = []
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(channel), timeout=0.2)
        except TimeoutError:
            return frames
        frames.append(message["payload"])


def test_a_late_reply_or_one_from_a_stranger_is_answered_and_changes_nothing(
    settings, cloud, unit_pair, client, no_timers, django_capture_on_commit_callbacks
):
    member, _mate = unit_pair
    _backends(settings, sms="tencent.TencentSmsBackend")
    incident = _raise()
    Incident.objects.filter(pk=incident.pk).update(status=Incident.Status.CANCELLED)
    url = f"/hooks/tencent/{TENCENT_TOKEN}/sms-reply/"
    with django_capture_on_commit_callbacks(execute=True):
        assert _post(client, url, cloud.tencent_sms_reply(phone=member.phone, text="1")) == 200
        assert _post(client, url, cloud.tencent_sms_reply(phone="13700000001", text="1")) == 200
    incident.refresh_from_db()
    assert incident.responded_at is None
    assert _events(incident, "accepted") == []
    answered = sorted(
        p.removeprefix("+86") for a in cloud.calls("tencent", "SendSms") for p in a.phones
    )
    assert answered == sorted([member.phone, "13700000001"])  # each told why, once


def test_a_reply_after_the_window_is_too_late(settings, unit_pair):
    from datetime import timedelta

    from django.utils import timezone

    from dispatch import replies

    member, _mate = unit_pair
    settings.NOTIFY_CHAIN = []
    incident = _raise()
    Incident.objects.filter(pk=incident.pk).update(
        received_at=timezone.now() - timedelta(seconds=settings.NOTIFY_REPLY_WINDOW_S + 60)
    )
    reply = replies.sms_reply_handle(phone=member.phone, text="1")
    assert not reply.ok and reply.reason == "too_late"
    incident.refresh_from_db()
    assert incident.responded_at is None
