"""The review's incident page shows, per alerted member, which channel reached
them and when: the page's receipt, and each step of the chain with its result."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from dispatch.models import Delivery, NotificationAttempt
from review.selectors import incident_reach
from tests.factories import MemberFactory

from .conftest import dispatch_to, past_incident

pytestmark = pytest.mark.django_db


def test_each_member_shows_the_channel_that_reached_them_first(
    client, tianhe_reviewer, tianhe_street, tianhe_unit
):
    incident = past_incident(region=tianhe_street, response_s=90)
    d = dispatch_to(incident, tianhe_unit)
    at = incident.discovered_at
    app = MemberFactory(unit=tianhe_unit, name="页面收到")
    sms = MemberFactory(unit=tianhe_unit, name="短信收到")
    lost = MemberFactory(unit=tianhe_unit, name="全部失败")
    Delivery.objects.create(dispatch=d, member=app, delivered_at=at + dt.timedelta(seconds=2))
    by_sms = Delivery.objects.create(dispatch=d, member=sms)
    nowhere = Delivery.objects.create(dispatch=d, member=lost)
    for delivery, channel, status in (
        (by_sms, "push", "skipped"),
        (by_sms, "sms", "sent"),
        (nowhere, "push", "failed"),
        (nowhere, "sms", "failed"),
        (nowhere, "voice", "failed"),
    ):
        NotificationAttempt.objects.create(delivery=delivery, channel=channel, status=status)

    rows = {r.member_name: r for r in incident_reach(incident=incident)}
    assert rows["页面收到"].first_channel == "app"
    assert (
        rows["短信收到"].first_channel == "sms"
        and rows["短信收到"].tries["push"].status == "skipped"
    )
    assert rows["全部失败"].first_channel is None

    client.force_login(tianhe_reviewer)
    page = client.get(f"/review/incidents/{incident.pk}/").content.decode()
    table = page[page.index('id="reach"') :]
    table = table[: table.index("</table>")]
    lines = {
        name: re.sub(r"<[^>]+>", " ", line)
        for line in table.split("<tr>")
        for name in rows
        if name in line
    }
    assert "应用页面" in lines["页面收到"].split("页面收到", 1)[1]
    assert "短信" in lines["短信收到"] and "无可用渠道" in lines["短信收到"]
    assert "未送达" in lines["全部失败"] and lines["全部失败"].count("失败") >= 3
