"""With little history the index and the warning map say so, instead of ranking
and colouring areas as if their scores meant something (issue 13)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from .conftest import past_incident

pytestmark = pytest.mark.django_db

NOTE = "样本不足"


def test_index_and_warning_map_say_when_the_period_has_too_few_incidents(
    client, city_reviewer, tianhe_street, tianhe_unit
):
    client.force_login(city_reviewer)
    past_incident(region=tianhe_street, at=timezone.now() - dt.timedelta(days=3))
    assert NOTE in client.get("/review/index/").content.decode()
    assert NOTE in client.get("/review/warning/").content.decode()


def test_no_note_once_the_period_holds_enough_incidents(
    client, city_reviewer, tianhe_street, tianhe_unit, settings
):
    settings.REVIEW_INDEX_MIN_INCIDENTS = 3
    client.force_login(city_reviewer)
    for day in range(3):
        past_incident(region=tianhe_street, at=timezone.now() - dt.timedelta(days=day + 1))
    assert NOTE not in client.get("/review/index/").content.decode()
    assert NOTE not in client.get("/review/warning/").content.decode()
