"""The escalating chain, the notification backends and the SMS reply path.

The chain's rule (who still needs which step) is exercised through
``notify.chain_step`` with the next-step scheduling recorded instead of run, so
each step can be checked against the state it sees; one test runs the whole
chain through eager Celery tasks.
"""

from __future__ import annotations

import pytest
from django.test import Client

from dispatch import notify, replies
from dispatch.actions import next_actions
from dispatch.models import Delivery, Dispatch, Incident, NotificationAttempt
from dispatch.services import delivery_ack, dispatch_act, incident_create
from mobile.models import PushSubscription
from mobile.services import member_clock
from tests.factories import MemberFactory

CHAIN = [
    {"channel": "push", "after_s": 0, "while": "undelivered"},
    {"channel": "sms", "after_s": 0, "while": "unanswered"},
    {"channel": "voice", "after_s": 0, "while": "unanswered"},
]


@pytest.fixture(autouse=True)
def _locmem_backends(settings):
    settings.NOTIFY_BACKENDS = {
        "push": "dispatch.notify.LocMemBackend",
        "sms": "dispatch.notify.LocMemBackend",
        "voice": "dispatch.notify.LocMemBackend",
    }
    settings.NOTIFY_CHAIN = CHAIN
    notify.outbox.clear()
    yield
    notify.outbox.clear()


@pytest.fixture
def unit_pair(near_member):
    """Two members on duty at the near unit, so the unit can be sent (post_min 1)."""
    mate = MemberFactory(unit=near_member.unit, on_duty=True)
    return near_member, mate


@pytest.fixture
def scheduled(monkeypatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(
        notify, "_step_schedule", lambda *, wave_id, step: calls.append((wave_id, step))
    )
    return calls


def _raise(**extra) -> Incident:
    result = incident_create(
        kind=Incident.Kind.KNIFE, lat=23.1303, lon=113.3203, source="console", **extra
    )
    assert result.wave is not None and result.candidates
    return result.incident


def _sent(channel: str) -> list[str]:
    return [n.phone for n in notify.outbox if n.channel == channel]


def test_wave_starts_the_chain_and_every_step_reaches_an_unanswered_member(
    unit_pair, django_capture_on_commit_callbacks
):
    member, mate = unit_pair
    with django_capture_on_commit_callbacks(execute=True):
        incident = _raise()
    # Eager Celery: push, then SMS, then voice, each once per member.
    for channel in ("push", "sms", "voice"):
        assert sorted(_sent(channel)) == sorted([member.phone, mate.phone])
    sms = next(n for n in notify.outbox if n.channel == "sms")
    assert "回复 1 接受" in sms.text and sms.incident_id == incident.pk
    assert NotificationAttempt.objects.filter(status="sent").count() == 6


def test_push_step_skips_a_member_whose_page_got_the_alert(unit_pair, scheduled):
    member, mate = unit_pair
    incident = _raise()
    delivery_ack(incident_id=incident.pk, member=member)
    wave_id = incident.waves.get().pk
    assert notify.chain_step(wave_id=wave_id, step=0) == 1
    assert _sent("push") == [mate.phone]
    assert scheduled == [(wave_id, 1)]
    # Delivered is not answered: SMS still goes to both.
    notify.chain_step(wave_id=wave_id, step=1)
    assert sorted(_sent("sms")) == sorted([member.phone, mate.phone])


def test_an_answer_stops_the_chain_for_the_whole_unit(unit_pair, scheduled):
    member, mate = unit_pair
    incident = _raise()
    wave_id = incident.waves.get().pk
    notify.chain_step(wave_id=wave_id, step=0)
    dispatch_act(incident_id=incident.pk, member=member, action="accept")
    scheduled.clear()
    assert notify.chain_step(wave_id=wave_id, step=1) == 0
    assert _sent("sms") == []
    assert scheduled == []  # nobody left who needs the voice call


def test_a_declined_or_closed_alert_is_not_chased(unit_pair, scheduled):
    member, _mate = unit_pair
    incident = _raise()
    dispatch_act(incident_id=incident.pk, member=member, action="decline")
    assert notify.chain_step(wave_id=incident.waves.get().pk, step=1) == 0
    other = _raise()
    Incident.objects.filter(pk=other.pk).update(status=Incident.Status.CANCELLED)
    assert notify.chain_step(wave_id=other.waves.get().pk, step=1) == 0
    assert notify.outbox == []


def test_a_member_who_clocked_out_gets_no_more_reminders(unit_pair, scheduled):
    member, mate = unit_pair
    incident = _raise()
    member_clock(member=mate, on_duty=False)
    notify.chain_step(wave_id=incident.waves.get().pk, step=1)
    assert _sent("sms") == [member.phone]


def test_a_step_never_reaches_a_member_twice(unit_pair, scheduled):
    incident = _raise()
    wave_id = incident.waves.get().pk
    assert notify.chain_step(wave_id=wave_id, step=1) == 2
    assert notify.chain_step(wave_id=wave_id, step=1) == 0
    assert len(_sent("sms")) == 2


class _Broken(notify.BaseBackend):
    def send(self, notification):
        raise ConnectionError("gateway down")


def test_a_failing_backend_is_recorded_and_the_chain_goes_on(unit_pair, scheduled, settings):
    settings.NOTIFY_BACKENDS = {**settings.NOTIFY_BACKENDS, "sms": f"{__name__}._Broken"}
    incident = _raise()
    wave_id = incident.waves.get().pk
    assert notify.chain_step(wave_id=wave_id, step=1) == 0
    attempts = NotificationAttempt.objects.filter(channel="sms")
    assert {a.status for a in attempts} == {"failed"} and attempts.count() == 2
    assert "gateway down" in attempts.first().detail
    assert scheduled == [(wave_id, 2)]
    notify.chain_step(wave_id=wave_id, step=2)
    assert len(_sent("voice")) == 2


def test_web_push_without_a_subscription_is_skipped(unit_pair, scheduled, settings):
    settings.NOTIFY_BACKENDS = {
        **settings.NOTIFY_BACKENDS,
        "push": "mobile.webpush.WebPushBackend",
    }
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0)
    assert set(NotificationAttempt.objects.values_list("status", flat=True)) == {"skipped"}


def test_web_push_reads_the_subscriptions_of_a_whole_batch_in_one_query(
    near_member, django_assert_max_num_queries, monkeypatch
):
    """A city-wide wave's push step: thousands of members, most with no browser
    subscription (bench/city.py: one query each was a second of the worker's
    time while the next alert went out)."""
    from mobile import webpush

    members = [near_member, *MemberFactory.create_batch(30, unit=near_member.unit)]
    PushSubscription.objects.create(
        member=members[3], endpoint="https://push.invalid/x", p256dh="k", auth="a"
    )
    sent_to = []
    notes = [
        notify.Notification(
            channel="push", member_id=m.pk, member_name=m.name, phone=m.phone, text="t"
        )
        for m in members
    ]
    monkeypatch.setattr(
        webpush,
        "push_send",
        lambda **kw: sent_to.append(kw["endpoint"]) or webpush.PushResult(True, 201, False),
    )
    # Who has a subscription, the one member's read just before the send, its success.
    with django_assert_max_num_queries(3):
        results = webpush.WebPushBackend().send_many(notes)
    assert sent_to == ["https://push.invalid/x"]
    assert [r.ok for r in results] == [i == 3 for i in range(len(members))]
    assert all(r.skipped for i, r in enumerate(results) if i != 3)


def test_web_push_sends_nothing_to_a_phone_signed_out_while_the_batch_goes_out(
    near_member, monkeypatch
):
    """A chunk is a thousand members and a push up to seconds each: a
    subscription read once for the whole chunk outlived the phone's sign-out."""
    from mobile import webpush

    first, second = near_member, MemberFactory(unit=near_member.unit)
    for i, member in enumerate((first, second)):
        PushSubscription.objects.create(
            member=member, endpoint=f"https://push.invalid/{i}", p256dh="k", auth="a"
        )
    sent_to = []

    def send(**kw):
        sent_to.append(kw["endpoint"])
        # Meanwhile the second phone signs out (mobile.services.member_sign_out).
        PushSubscription.objects.filter(member=second).delete()
        return webpush.PushResult(True, 201, False)

    monkeypatch.setattr(webpush, "push_send", send)
    notes = [
        notify.Notification(
            channel="push", member_id=m.pk, member_name=m.name, phone=m.phone, text="t"
        )
        for m in (first, second)
    ]
    results = webpush.WebPushBackend().send_many(notes)
    assert sent_to == ["https://push.invalid/0"]
    assert results[0].ok and results[1].skipped


def test_web_push_drops_a_subscription_the_push_service_says_is_gone(
    unit_pair, scheduled, settings, monkeypatch
):
    from mobile import webpush

    member, _mate = unit_pair
    settings.NOTIFY_BACKENDS = {
        **settings.NOTIFY_BACKENDS,
        "push": "mobile.webpush.WebPushBackend",
    }
    PushSubscription.objects.create(
        member=member, endpoint="https://push.invalid/x", p256dh="k", auth="a"
    )
    monkeypatch.setattr(
        webpush, "push_send", lambda **kw: webpush.PushResult(False, 410, True, "gone")
    )
    incident = _raise()
    notify.chain_step(wave_id=incident.waves.get().pk, step=0)
    assert not PushSubscription.objects.exists()


def test_off_duty_means_no_alert_and_no_reminder(unit_pair, scheduled):
    member, mate = unit_pair
    third = MemberFactory(unit=member.unit, on_duty=True)
    member_clock(member=member, on_duty=False, lat=23.13, lon=113.32)
    incident = _raise()
    alerted = set(
        Delivery.objects.filter(dispatch__incident=incident).values_list("member_id", flat=True)
    )
    assert alerted == {mate.pk, third.pk}
    notify.chain_step(wave_id=incident.waves.get().pk, step=1)
    assert member.phone not in _sent("sms")


# --- SMS replies -------------------------------------------------------------------------


def test_sms_1_accepts_the_newest_alert_and_a_repeat_changes_nothing(unit_pair):
    member, _mate = unit_pair
    incident = _raise()
    reply = replies.sms_reply_handle(phone=member.phone, text=" 1 ")
    assert reply.ok and reply.incident_id == incident.pk and reply.action == "accept"
    incident.refresh_from_db()
    responded = incident.responded_at
    assert responded is not None
    again = replies.sms_reply_handle(phone=member.phone, text="1")
    assert not again.ok
    incident.refresh_from_db()
    assert incident.responded_at == responded
    assert incident.events.filter(type="accepted").count() == 1


def test_sms_2_declines_and_3_4_follow_the_order(unit_pair):
    member, mate = unit_pair
    incident = _raise()
    assert not replies.sms_reply_handle(phone=member.phone, text="3").ok  # not accepted yet
    assert replies.sms_reply_handle(phone=member.phone, text=f"2 {incident.pk}").ok
    assert Dispatch.objects.get(incident=incident).status == Dispatch.Status.DECLINED
    assert replies.sms_reply_handle(phone=mate.phone, text="1").ok  # a change of mind
    assert replies.sms_reply_handle(phone=mate.phone, text="3").ok
    assert replies.sms_reply_handle(phone=mate.phone, text="4").ok
    incident.refresh_from_db()
    assert incident.status == Incident.Status.CLOSED


def test_sms_reply_from_a_stranger_or_gibberish_is_refused(unit_pair):
    member, _mate = unit_pair
    _raise()
    assert "在册" in replies.sms_reply_handle(phone="13800000009", text="1").text
    assert not replies.sms_reply_handle(phone=member.phone, text="yes please").ok
    assert not replies.sms_reply_handle(phone=member.phone, text="1 999999").ok
    assert Incident.objects.get().responded_at is None


def test_sms_webhook_needs_the_token(unit_pair, settings):
    member, _mate = unit_pair
    _raise()
    client = Client()
    settings.SMS_WEBHOOK_TOKEN = ""
    body = {"phone": member.phone, "text": "1"}
    assert client.post("/m/sms/reply/", body).status_code == 403
    settings.SMS_WEBHOOK_TOKEN = "s3cret-token"
    assert (
        client.post("/m/sms/reply/", body, headers={"Authorization": "Bearer wrong"}).status_code
        == 403
    )
    ok = client.post(
        "/m/sms/reply/",
        body,
        content_type="application/json",
        headers={"Authorization": "Bearer s3cret-token"},
    )
    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert Incident.objects.get().responded_at is not None
    bad = client.post(
        "/m/sms/reply/", {"phone": member.phone}, headers={"Authorization": "Bearer s3cret-token"}
    )
    assert bad.status_code == 400


def test_the_sweep_runs_overdue_steps_a_dead_worker_missed_once(unit_pair, settings):
    import datetime as dt

    settings.NOTIFY_CHAIN = [
        {"channel": "push", "after_s": 5, "while": "undelivered"},
        {"channel": "sms", "after_s": 60, "while": "unanswered"},
    ]
    incident = _raise()  # after-commit hooks never run here: no chain was started
    wave = incident.waves.get()
    assert notify.chain_sweep(now=wave.created_at + dt.timedelta(seconds=3)) == 0
    at = wave.created_at + dt.timedelta(seconds=20)
    assert notify.chain_sweep(now=at) == 2
    assert len(_sent("push")) == 2 and _sent("sms") == []
    assert notify.chain_sweep(now=at) == 0  # claimed: never twice
    assert notify.chain_sweep(now=wave.created_at + dt.timedelta(seconds=70)) == 2
    assert len(_sent("sms")) == 2


def test_next_actions_follow_the_one_state_machine():
    assert next_actions("alerted") == ["accept", "decline"]
    assert next_actions("declined") == ["accept"]
    assert next_actions("accepted") == ["on_site"]
    assert next_actions("on_site") == ["handled"]
    assert next_actions("handled") == next_actions("stood_down") == []
