"""`./dev run` on an empty database: a demo city with a past, not blank pages."""

from __future__ import annotations

import datetime as dt
import io
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.utils import timezone

from config.management.commands.run_system import first_start_seed
from dispatch.models import Dispatch, Incident
from review import readiness
from review.models import CoverageSnapshot, Drill, IncidentFact, IndicatorNode
from units.models import Region, Unit

pytestmark = pytest.mark.django_db(transaction=True)


def test_first_start_seeds_weeks_of_history_and_computes_coverage_before_serving():
    first_start_seed(units=40, password="demo-pass-1", out=io.StringIO())
    assert Unit.objects.count() == 40
    now = timezone.now()
    past = Incident.objects.filter(discovered_at__lt=now - dt.timedelta(days=1), is_drill=False)
    # A few weeks of history: the index, warning map and reports have something to show.
    assert past.count() >= 25
    first = past.order_by("discovered_at").first().discovered_at
    assert first < now - dt.timedelta(days=30)
    assert first > now - dt.timedelta(days=91)
    assert IncidentFact.objects.count() == Incident.objects.filter(is_drill=False).count()
    # Coverage gaps are ready for the first page, not 15 minutes later.
    assert CoverageSnapshot.objects.exists()


def test_first_start_seeds_weeks_of_drills_that_the_review_pages_show(client):
    # The index tree is a data migration's: a transactional test before this one
    # flushed it.
    if not IndicatorNode.objects.exists():
        import_module("review.migrations.0002_default_indicators").create(django_apps, None)
    first_start_seed(units=60, password="demo-pass-1", out=io.StringIO())
    now = timezone.now()
    drills = Drill.objects.select_related("incident")
    districts = set(Region.objects.filter(level="district", children__units__isnull=False)
                    .values_list("pk", flat=True))  # fmt: skip
    # A handful per district over a few weeks, each to a street's or a district's units.
    assert {d.region_id for d in drills if d.scope == "district"} == districts
    assert {d.scope for d in drills} == {"district", "street"}
    assert all(now - dt.timedelta(days=43) < d.incident.discovered_at < now for d in drills)
    answered = Dispatch.objects.filter(incident__is_drill=True, accepted_at__isnull=False)
    assert answered.count() > 0.5 * Dispatch.objects.filter(incident__is_drill=True).count()

    reviewer = get_user_model().objects.get(username="reviewer")
    client.force_login(reviewer)
    drill = drills.filter(scope="street").first()
    page = client.get(f"/review/drills/{drill.pk}/")
    assert page.status_code == 200 and page.context["total"].acknowledged > 0
    # The index and the warning map rank and colour on the drill record: not a
    # blank index, not a grey (or all-amber) map.
    rows = readiness.index_scores(user=reviewer, level="district")
    assert rows[0].rank == 1 and rows[0].sample.drills > 0
    _level, areas = readiness.warning_areas(user=reviewer)
    assert {a.colour for a in areas} - {"grey"}
