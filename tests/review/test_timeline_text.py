"""The incident timeline speaks to reviewers: `wave=1 rank=1 distance_m=30` and
`closed=True` were shown as they are stored."""

from __future__ import annotations

import pytest
from django.utils import translation

from dispatch.models import IncidentEvent
from review.templatetags.review_events import event_text

from .conftest import past_incident

pytestmark = pytest.mark.django_db


def test_the_timeline_shows_sentences_not_stored_keys(
    client, tianhe_reviewer, tianhe_street, tianhe_unit
):
    mine = past_incident(region=tianhe_street)
    events = [
        (IncidentEvent.Type.CREATED, {"source": "cad", "seeded": True}),
        (IncidentEvent.Type.ALERTED, {"wave": 1, "rank": 1, "distance_m": 30, "eta_s": 29}),
        (IncidentEvent.Type.STOOD_DOWN, {"closed": True}),
    ]
    for seq, (kind, data) in enumerate(events, start=1):
        IncidentEvent.objects.create(incident=mine, seq=seq, type=kind, unit=tianhe_unit, data=data)
    client.force_login(tianhe_reviewer)
    page = client.get(f"/review/incidents/{mine.pk}/").content.decode()

    assert "wave=" not in page and "closed=True" not in page and "seeded" not in page
    assert "第 1 轮 · 距离排第 1 · 距离 30 米 · 预计 29 秒到达" in page
    assert "警情已结案" in page and "110/接处警系统" in page


def test_the_timeline_text_is_translated():
    with translation.override("en"):
        assert event_text({"wave": 2, "radius_m": 3000}) == "Wave 2 · Radius 3000 m"
        assert event_text({"closed": False}) == "Enough units have responded"
        assert event_text({"tier": "respond_1min", "units": 1}) == (
            "Nobody responded within 1 minute · 1 unit"
        )


def test_channel_events_read_as_sentences():
    """Receipts, retries and radio follow-ups (issues 11, 12) carry channels and
    codes: none of their keys reaches the page raw."""
    failed = event_text({"channel": "sms", "error_code": "isv.MOBILE_NUMBER_ILLEGAL", "at": "x"})
    assert failed == "渠道：短信 · 错误码 isv.MOBILE_NUMBER_ILLEGAL"
    retry = event_text(
        {"channel": "voice", "provider": "aliyun", "attempt": 2, "delay_s": 4, "detail": "503"}
    )
    assert retry == "渠道：语音电话 · 服务商：aliyun · 第 2 次重试 · 4 秒后 · 503"
    unreachable = event_text({"channels": ["app", "sms"], "phone_tail": "1234"})
    assert unreachable == "已试：应用页面、短信 · 手机尾号 1234"
    skew = event_text({"source": "cad", "clock_skew_s": 12.5, "discovered_at_reported": "x"})
    assert "12.5" in skew and "discovered_at" not in skew
    for text in (failed, retry, unreachable, skew):
        assert ": " not in text and "_" not in text.split("isv.")[0]
