"""Provider callbacks over real HTTP: the fake cloud (tests/fakes/cloud.py) plays
the providers' side and POSTs the documented receipts, SMS uplinks and key
presses to a live server of the app (pytest-django's ``live_server``), to the
URLs registered with each provider: Alibaba and Tencent document no signature
on these pushes, so they go to the URL carrying our token; the government
platform signs each one. The sending side is the real SDKs against the same
fake, which checks every request's signature.

The app's side runs as in production within one process: the view's commit
runs its on-commit work, and Celery is eager, so when a POST has been answered,
what the callback set off (the answer SMS, the next channel's call) has reached
the fake cloud.
"""

from __future__ import annotations

import time

import pytest

from dispatch import notify
from dispatch.models import NotificationAttempt
from tests.dispatch.gateways.conftest import (
    ALIYUN_TOKEN,
    TENCENT_TOKEN,
    _backends,
    _events,
    _raise,
)
from tests.fakes.cloud import AppHooks, FakeCloud


@pytest.fixture
def hooks(live_server, cloud) -> AppHooks:
    return AppHooks(
        cloud=cloud,
        base_url=live_server.url,
        aliyun_token=ALIYUN_TOKEN,
        tencent_token=TENCENT_TOKEN,
    )


def test_a_member_reached_only_by_sms_replies_1_and_responded_at_is_set(
    settings, cloud, hooks, unit_pair, no_timers
):
    member, mate = unit_pair
    _backends(settings)
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0)
    (call,) = cloud.calls("aliyun", "SendBatchSms")  # both members in one signed call
    assert sorted(call.phones) == sorted([member.phone, mate.phone])
    assert cloud.rejected == []
    # The delivery receipt marks the member reached; the timeline says so.
    assert hooks.sms_report("aliyun", phone=member.phone, ref=call.ref, delivered=True) == 200
    attempt = NotificationAttempt.objects.get(delivery__member=member, channel="sms")
    assert attempt.reached_at is not None and attempt.provider_ref == call.ref
    (reached,) = _events(incident, "reached")
    assert reached.member_id == member.pk and reached.data["channel"] == "sms"
    # The member texts back "1": it acts exactly as a tap would.
    assert hooks.sms_reply("aliyun", phone=member.phone, text="1") == 200
    incident.refresh_from_db()
    assert incident.responded_at is not None
    assert _events(incident, "accepted")[0].member_id == member.pk
    # The answer went back by SMS, through the text template, signed.
    answers = cloud.calls("aliyun", "SendSms")
    assert [a.phones for a in answers] == [[member.phone]]
    assert answers[0].params["TemplateCode"] == "SMS_2" and cloud.rejected == []


def test_a_tencent_voice_key_press_1_accepts_like_a_tap(
    settings, cloud, hooks, unit_pair, no_timers
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
    call_id = calls[member.phone].ref
    assert hooks.voice_report("tencent", phone=member.phone, call_id=call_id, answered=True) == 200
    assert NotificationAttempt.objects.get(delivery__member=member, channel="voice").answered
    assert hooks.voice_key("tencent", phone=member.phone, call_id=call_id, key="1") == 200
    incident.refresh_from_db()
    assert incident.responded_at is not None
    assert _events(incident, "accepted")[0].member_id == member.pk


def test_an_alibaba_ivr_call_key_press_1_accepts_like_a_tap(
    settings, cloud, hooks, unit_pair, no_timers
):
    member, _mate = unit_pair
    _backends(
        settings,
        voice="aliyun.AliyunIvrBackend",
        chain=[{"channel": "voice", "after_s": 0, "while": "unanswered"}],
    )
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0)
    calls = {a.phones[0]: a for a in cloud.calls("aliyun", "IvrCall")}
    assert member.phone in calls and cloud.rejected == []
    call = calls[member.phone]
    # The documented menu: the alert with "按1接受，按2拒绝", keys 1 and 2 mapped.
    assert call.params["StartCode"] == "TTS_2"
    assert [call.params[f"MenuKeyMap.{n}.Key"] for n in (1, 2)] == ["1", "2"]
    assert call.params["MenuKeyMap.1.Code"] == "TTS_3"
    assert call.out_id == str(member.pk)
    # The press arrives in real time (VoiceCallReport, status 300000 with dtmf).
    assert hooks.voice_key("aliyun", phone=member.phone, call_id=call.ref, key="1") == 200
    incident.refresh_from_db()
    assert incident.responded_at is not None
    (accepted,) = _events(incident, "accepted")
    assert accepted.member_id == member.pk
    assert [a.phones for a in cloud.calls("aliyun", "SendSms")] == [[member.phone]]
    # The call record repeats the keys: it marks the call answered, acts no
    # second time and texts nothing more.
    report = hooks.voice_report(
        "aliyun", phone=member.phone, call_id=call.ref, answered=True, dtmf="1"
    )
    assert report == 200
    assert len(_events(incident, "accepted")) == 1
    assert len(cloud.calls("aliyun", "SendSms")) == 1
    assert NotificationAttempt.objects.get(delivery__member=member, channel="voice").answered


def test_forged_callbacks_are_refused_and_change_nothing(
    settings, cloud, hooks, unit_pair, no_timers
):
    member, mate = unit_pair
    _backends(
        settings,
        voice="aliyun.AliyunIvrBackend",
        chain=[
            {"channel": "sms", "after_s": 0, "while": "unanswered"},
            {"channel": "voice", "after_s": 0, "while": "unanswered"},
        ],
    )
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0, schedule_next=False)
    notify.chain_step(wave_id=incident.waves.get().pk, step=1, schedule_next=False)
    ref = cloud.calls("aliyun", "SendBatchSms")[0].ref
    call = {a.phones[0]: a for a in cloud.calls("aliyun", "IvrCall")}[mate.phone]
    # Someone who found the URLs but not our tokens, or the platform's key.
    guess = hooks.forged(aliyun_token="guessed", tencent_token="guessed", gov_secret="guessed")
    assert guess.sms_report("aliyun", phone=member.phone, ref=ref, delivered=True) == 403
    assert guess.sms_reply("aliyun", phone=member.phone, text="1") == 403
    assert guess.sms_reply("tencent", phone=member.phone, text="1") == 403
    assert guess.voice_key("aliyun", phone=mate.phone, call_id=call.ref, key="1") == 403
    assert guess.sms_reply("govsms", phone=member.phone, text="1") == 403
    assert hooks.forged(gov_app="other").sms_reply("govsms", phone=member.phone, text="1") == 403
    # With the token, a receipt or key press must still name a message or call
    # of ours to that number: a made-up id, or our call with another member's id.
    assert hooks.sms_report("aliyun", phone=member.phone, ref="biz-forged", delivered=True) == 200
    assert hooks.voice_key("aliyun", phone=mate.phone, call_id="call-forged", key="1") == 200
    press = {"call_id": call.ref, "status_code": "300000", "dtmf": "1", "out_id": str(member.pk)}
    assert hooks._json(f"/hooks/aliyun/{ALIYUN_TOKEN}/voice-call-report/", [press]) == 200
    # A signed government request, replayed byte for byte, is refused.
    body, headers = FakeCloud.gov_signed(
        {"type": "report", "reports": [{"msg_id": "gov-x", "phone": member.phone}]}
    )
    url = f"{hooks.base_url}/hooks/govsms/"
    headers = {**headers, "Content-Type": "application/json"}
    assert cloud.post(url, body, headers)[0] == 200
    assert cloud.post(url, body, headers)[0] == 403
    incident.refresh_from_db()
    assert incident.responded_at is None
    assert _events(incident, "accepted") == []
    assert not NotificationAttempt.objects.exclude(reached_at=None).exists()
    assert _events(incident, "reached") == []


def test_a_failed_sms_receipt_moves_the_member_to_voice_within_a_second(
    settings, cloud, hooks, unit_pair, no_timers
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
    sid = dict(
        NotificationAttempt.objects.filter(channel="sms").values_list(
            "delivery__member_id", "provider_ref"
        )
    )

    def fail(who) -> None:
        status = hooks.sms_report(
            "tencent", phone=who.phone, ref=sid[who.pk], delivered=False, code="MK:0001"
        )
        assert status == 200

    # The mate's receipt first: the server then runs as a worker that has loaded
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


def test_a_failed_receipt_that_outruns_its_send_still_moves_the_member_on(
    settings, cloud, hooks, unit_pair, no_timers
):
    """The ids of a chunk of calls are written when the calls return; a "failed"
    report that arrives first is held and applied then, not dropped."""
    member, mate = unit_pair
    _backends(
        settings,
        voice="aliyun.AliyunVoiceBackend",
        chain=[
            {"channel": "sms", "after_s": 0, "while": "unanswered"},
            {"channel": "voice", "after_s": 600, "while": "unanswered"},
        ],
    )
    statuses = []

    def receipt_first(ref: str, phones: list[str]) -> None:
        if ref.startswith("biz-"):  # the SMS, not the voice call it leads to
            statuses.append(
                hooks.sms_report(
                    "aliyun", phone=member.phone, ref=ref, delivered=False, code="MK:0005"
                )
            )

    cloud.behaviour.before_answer = receipt_first
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0, schedule_next=False)
    cloud.behaviour.before_answer = None

    assert statuses == [200]  # the receipt was in before the send was answered
    attempt = NotificationAttempt.objects.get(delivery__member=member, channel="sms")
    assert attempt.status == "failed" and attempt.error_code == "MK:0005"
    assert [c.phones for c in cloud.calls("aliyun", "SingleCallByTts")] == [[member.phone]]
    assert [e.member_id for e in _events(incident, "notify_failed")] == [member.pk]
    assert not NotificationAttempt.objects.filter(delivery__member=mate, status="failed").exists()
