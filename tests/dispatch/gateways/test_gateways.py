"""The provider gateways: the real SDKs against a local fake cloud
(tests/fakes/cloud.py) that checks their request signatures, and provider
callbacks posted to /hooks/ through the test client. The four headline cases of
issue 11 (a reply, a key press, a forged callback, a failed receipt) are driven
by the fake over real HTTP in test_hooks_http.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
from django.core.checks import Error, Warning

from dispatch import notify
from dispatch.gateways import checks, ratelimit
from dispatch.gateways.aliyun import AliyunVoiceBackend
from dispatch.models import Incident, NotificationAttempt
from tests.dispatch.gateways.conftest import TENCENT_TOKEN, _backends, _events, _raise
from tests.e2e.harness import redis_start_owned
from tests.factories import MemberFactory


def _post(client, url: str, body) -> int:
    data = json.dumps(body, ensure_ascii=False)
    return client.post(url, data, content_type="application/json").status_code


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
    # Ours, checked by its process id: a port chosen free may be taken by
    # another test process's server before this one binds it.
    proc, port = redis_start_owned(data_dir=tmp_path / "redis")
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    ratelimit.reset()
    yield settings.REDIS_URL
    proc.kill()
    proc.wait()
    ratelimit.reset()


def test_two_workers_sharing_a_provider_at_100_qps_never_exceed_it(
    settings, cloud, redis_url, monkeypatch
):
    """Counted as the calls leave (the moment the shared bucket lets each one
    go), not as the fake provider stamps them: that server shares this
    process's interpreter with the two senders, and a thread starved for a
    moment stamped a burst it had not been sent (101 in a second, once in CI)."""
    settings.NOTIFY_GATEWAYS["aliyun_voice"]["qps"] = 100
    left: list[float] = []
    real_acquire = ratelimit.acquire

    def acquire(provider: str, *, qps: float) -> None:
        real_acquire(provider, qps=qps)
        left.append(time.monotonic())

    monkeypatch.setattr(ratelimit, "acquire", acquire)
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
    assert len(cloud.calls("aliyun", "SingleCallByTts")) == 240
    # Every attempt leaves through the bucket, a retry after a timeout included.
    times = sorted(left)
    assert len(times) >= 240
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
        frames.extend(message.get("payloads") or [message["payload"]])


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


def _step_queries(incident: Incident) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert notify.chain_step(wave_id=incident.waves.get().pk, step=0, schedule_next=False)
    return len(queries)


def test_an_sms_step_makes_as_many_queries_for_60_members_as_for_2(
    settings, cloud, unit_pair, no_timers
):
    member, _mate = unit_pair
    _backends(settings)
    few = _step_queries(_raise())
    MemberFactory.create_batch(58, unit=member.unit, on_duty=True)
    many = _raise()
    assert _step_queries(many) == few
    assert NotificationAttempt.objects.filter(delivery__dispatch__incident=many).count() == 60


def test_a_member_another_worker_claimed_is_not_texted_again(settings, cloud, unit_pair, no_timers):
    member, mate = unit_pair
    _backends(settings)
    incident = _raise()
    # This worker loaded the wave; another claimed the member in between.
    targets = notify.deliveries_load(notify._pending(wave_id=incident.waves.get().pk, condition=""))
    delivery = next(t for t in targets if t.member_id == member.pk)
    NotificationAttempt.objects.create(
        delivery_id=delivery.pk, channel="sms", status="sending", claim="other-worker"
    )
    assert notify.notify_deliveries(channel="sms", deliveries=targets) == 1
    assert [a.phones for a in cloud.calls("aliyun")] == [[mate.phone]]
    assert notify.notify_deliveries(channel="sms", deliveries=targets) == 0  # a rerun
    assert len(cloud.calls("aliyun")) == 1
    claims = dict(NotificationAttempt.objects.values_list("delivery__member_id", "claim"))
    assert claims[member.pk] == "other-worker" and claims[mate.pk] not in ("", "other-worker")


@pytest.mark.parametrize(
    ("backend", "gateway", "field", "env"),
    [
        ("aliyun.AliyunSmsBackend", "aliyun_sms", "template", "ALIYUN_SMS_TEMPLATE"),
        ("aliyun.AliyunVoiceBackend", "aliyun_voice", "tts_code", "ALIYUN_VOICE_TTS_CODE"),
        ("aliyun.AliyunIvrBackend", "aliyun_voice", "show_number", "ALIYUN_VOICE_SHOW_NUMBER"),
        ("aliyun.AliyunIvrBackend", "aliyun_voice", "access_key_id", "ALIYUN_ACCESS_KEY_ID"),
        ("tencent.TencentSmsBackend", "tencent_sms", "app_id", "TENCENT_SMS_APP_ID"),
        ("tencent.TencentVoiceBackend", "tencent_voice", "template", "TENCENT_VOICE_TEMPLATE"),
        ("tencent.TencentVoiceBackend", "tencent_voice", "secret_key", "TENCENT_SECRET_KEY"),
    ],
)
def test_a_missing_key_is_named_by_the_variable_to_set(
    settings, cloud, backend, gateway, field, env
):
    settings.NOTIFY_BACKENDS = {"voice": f"dispatch.gateways.{backend}"}
    settings.NOTIFY_GATEWAYS[gateway][field] = ""
    (warning,) = checks.gateway_keys_present()
    assert f"missing {env} " in warning.msg


def test_a_step_in_several_chunks_texts_each_member_once_and_records_every_outcome(
    settings, cloud, unit_pair, no_timers, monkeypatch
):
    member, _mate = unit_pair
    MemberFactory(unit=member.unit, on_duty=True)
    _backends(settings)
    monkeypatch.setattr(notify, "CLAIM_CHUNK", 1)  # three chunks, three claims
    cloud.behaviour.fail_5xx = 1
    incident = _raise()
    assert notify.chain_step(wave_id=incident.waves.get().pk, step=0) == 3
    sends = cloud.calls("aliyun", "SendSms")
    assert sorted(p for a in sends for p in a.phones) == sorted(
        NotificationAttempt.objects.values_list("delivery__member__phone", flat=True)
    )
    refs = dict(NotificationAttempt.objects.values_list("provider_ref", "status"))
    assert refs == {a.ref: "sent" for a in sends}
    (retry,) = _events(incident, "notify_retry")
    assert retry.data["attempt"] == 1
    assert notify.chain_step(wave_id=incident.waves.get().pk, step=0) == 0
