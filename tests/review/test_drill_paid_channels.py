"""Drills stay on the free channels (app, Web Push) unless the officer ticks
"use SMS/voice" on the drill form, after seeing how many SMS and calls that may
send and what they cost."""

from __future__ import annotations

import pytest

from dispatch import notify
from dispatch.models import Incident
from dispatch.services import incident_create
from review.models import Drill
from tests.factories import MemberFactory, StaffFactory, UnitFactory
from units.models import StaffProfile

pytestmark = pytest.mark.django_db

CHAIN = [
    {"channel": "push", "after_s": 0, "while": "undelivered"},
    {"channel": "sms", "after_s": 0, "while": "unanswered"},
    {"channel": "voice", "after_s": 0, "while": "unanswered"},
]


@pytest.fixture(autouse=True)
def _locmem_backends(settings):
    settings.NOTIFY_BACKENDS = {c["channel"]: "dispatch.notify.LocMemBackend" for c in CHAIN}
    settings.NOTIFY_CHAIN = CHAIN
    settings.NOTIFY_COST_CNY = {"sms": 0.05, "voice": 0.1}
    notify.outbox.clear()
    yield
    notify.outbox.clear()


@pytest.fixture
def station(tianhe):
    return StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe).user


@pytest.fixture
def street_members(tianhe_street):
    units = UnitFactory.create_batch(3, region=tianhe_street)
    return [MemberFactory(unit=unit, on_duty=True) for unit in units]


def _channels() -> dict[str, int]:
    sent: dict[str, int] = {}
    for note in notify.outbox:
        sent[note.channel] = sent.get(note.channel, 0) + 1
    return sent


def test_an_unticked_drill_sends_no_sms_and_no_call(
    client, station, tianhe_street, street_members, django_capture_on_commit_callbacks
):
    client.force_login(station)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/review/drills/", {"scope": "street", "code": tianhe_street.code})
    assert response.status_code == 302
    incident = Drill.objects.get().incident
    assert incident.paid_channels is False
    assert _channels() == {"push": 3}
    rows = set(
        incident.dispatches.values_list("deliveries__notification_attempts__channel", flat=True)
    )
    assert rows == {"push"}


def test_ticking_sms_voice_shows_the_count_and_cost_first_then_sends_them(
    client, station, tianhe_street, street_members, django_capture_on_commit_callbacks
):
    client.force_login(station)
    form = {"scope": "street", "code": tianhe_street.code, "paid_channels": "1"}
    # Ticked but not yet confirmed: the page shows the estimate and sends nothing.
    page = client.post("/review/drills/", form)
    assert page.status_code == 200 and not Drill.objects.exists()
    text = page.content.decode()
    assert "最多发送短信 3 条、语音电话 3 通，预估费用 ¥0.45" in text
    assert 'name="confirm" value="1"' in text

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/review/drills/", {**form, "confirm": "1"})
    assert response.status_code == 302
    incident = Drill.objects.get().incident
    assert incident.paid_channels is True and incident.is_drill
    assert _channels() == {"push": 3, "sms": 3, "voice": 3}


def test_the_estimate_counts_only_on_duty_members_of_active_units_in_the_area(
    client, station, tianhe_street, street_members, haizhu_street
):
    MemberFactory(unit=street_members[0].unit, on_duty=False)
    MemberFactory(unit=UnitFactory(region=tianhe_street, is_active=False), on_duty=True)
    MemberFactory(unit=UnitFactory(region=haizhu_street), on_duty=True)
    client.force_login(station)
    page = client.post(
        "/review/drills/", {"scope": "street", "code": tianhe_street.code, "estimate": "1"}
    )
    assert "当前在岗队员 3 人" in page.content.decode()
    assert not Drill.objects.exists()


def test_a_real_incident_still_goes_through_sms_and_voice(near_member):
    """The switch is the drill's: an ordinary incident keeps every channel."""

    MemberFactory(unit=near_member.unit, on_duty=True)
    incident = incident_create(
        kind=Incident.Kind.KNIFE, lat=23.1303, lon=113.3203, source="console"
    ).incident
    assert incident.paid_channels is True
    for step in range(len(CHAIN)):
        notify.chain_step(wave_id=incident.waves.get().pk, step=step, schedule_next=False)
    assert _channels() == {"push": 2, "sms": 2, "voice": 2}
