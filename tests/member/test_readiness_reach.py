"""The readiness overview counts units whose on-duty members no channel reaches
when their page is closed (units.readiness, mobile.selectors.members_unreachable)."""

from __future__ import annotations

import pytest

from dispatch.models import Delivery, NotificationAttempt
from mobile.models import PushSubscription
from tests.factories import MemberFactory, UnitFactory
from tests.review.conftest import dispatch_to, past_incident
from units.selectors import readiness_overview

pytestmark = pytest.mark.django_db


def _unit(street, code, *phones):
    unit = UnitFactory(region=street, code=code)
    return unit, [MemberFactory(unit=unit, on_duty=True, phone=p) for p in phones]


def test_units_whose_on_duty_members_no_channel_reaches_are_counted(
    client, tianhe_admin, tianhe_street
):
    # A landline-like number takes neither SMS nor calls (older rosters hold some).
    _ok, _ = _unit(tianhe_street, "PHONES", "13800000001", "13800000002")
    _none, _ = _unit(tianhe_street, "NO-PHONE", "02088886666")
    _push, (pushed,) = _unit(tianhe_street, "PUSH-ONLY", "02088887777")
    PushSubscription.objects.create(
        member=pushed, endpoint="https://fcm.googleapis.com/x", p256dh="k", auth="a"
    )
    _half, _ = _unit(tianhe_street, "HALF", "13800000003", "02088889999")
    # Every channel of the last alert failed: counted, whatever the number says.
    failed_unit, (failed,) = _unit(tianhe_street, "ALL-FAILED", "13800000004")
    incident = past_incident(region=tianhe_street, response_s=60)
    delivery = Delivery.objects.create(dispatch=dispatch_to(incident, failed_unit), member=failed)
    for channel in ("sms", "voice"):
        NotificationAttempt.objects.create(delivery=delivery, channel=channel, status="failed")
    # One SMS got through last time: reachable.
    later_unit, (later,) = _unit(tianhe_street, "SMS-SENT", "13800000005")
    sent = Delivery.objects.create(dispatch=dispatch_to(incident, later_unit), member=later)
    NotificationAttempt.objects.create(delivery=sent, channel="voice", status="failed")
    NotificationAttempt.objects.create(delivery=sent, channel="sms", status="sent")

    overview = readiness_overview(user=tianhe_admin)
    assert overview.total.no_channel == 2  # NO-PHONE and ALL-FAILED

    client.force_login(tianhe_admin)
    page = client.get("/admin/units/unit/readiness/").content.decode()
    assert "无可用提醒渠道" in page
