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
