"""`./dev run` on an empty database: a demo city with a past, not blank pages."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone

from config.management.commands.run_system import first_start_seed
from dispatch.models import Incident
from review.models import CoverageSnapshot, IncidentFact
from units.models import Unit

pytestmark = pytest.mark.django_db(transaction=True)


def test_first_start_seeds_weeks_of_history_and_computes_coverage_before_serving():
    first_start_seed(units=40, password="demo-pass-1", out=io.StringIO())
    assert Unit.objects.count() == 40
    now = timezone.now()
    past = Incident.objects.filter(discovered_at__lt=now - dt.timedelta(days=1))
    # A few weeks of history: the index, warning map and reports have something to show.
    assert past.count() >= 25
    first = past.order_by("discovered_at").first().discovered_at
    assert first < now - dt.timedelta(days=30)
    assert first > now - dt.timedelta(days=91)
    assert IncidentFact.objects.count() == Incident.objects.count()
    # Coverage gaps are ready for the first page, not 15 minutes later.
    assert CoverageSnapshot.objects.exists()
