"""The minutely facts refresh finds an incident's dispatch facts through an
index. ``DispatchFact.incident_id`` has none (a million incidents seeded make
five million facts, each index entry costing the seed), and the refresh read
and deleted them by it: a scan of every fact, several times a minute."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from review import services
from review.models import DispatchFact
from tests.review.conftest import seeded_city

pytestmark = pytest.mark.django_db


def _plan(sql: str) -> str:
    with connection.cursor() as cur:
        cur.execute(f"EXPLAIN QUERY PLAN {sql}")
        return " ".join(str(row[-1]) for row in cur.fetchall())


def test_the_facts_refresh_reads_and_rewrites_dispatch_facts_through_an_index(
    tianhe_street, haizhu_street
):
    if connection.vendor != "sqlite":
        pytest.skip("the plan is read from SQLite's EXPLAIN QUERY PLAN")
    seeded_city(tianhe_street, haizhu_street, count=80, seed=4, until=timezone.now())
    services.facts_sync(full=True)
    # One incident's facts out of date: the refresh rewrites them.
    fact = DispatchFact.objects.order_by("-discovered_at").first()
    DispatchFact.objects.filter(pk=fact.pk).update(to_response_s=987_654)

    with CaptureQueriesContext(connection) as queries:
        services.facts_sync(recent_hours=24 * 90)

    assert DispatchFact.objects.get(pk=fact.pk).to_response_s != 987_654
    touching = [
        q["sql"]
        for q in queries.captured_queries
        if "review_dispatchfact" in q["sql"]
        and q["sql"].lstrip().upper().startswith(("SELECT", "DELETE"))
    ]
    assert len(touching) >= 2  # the read, and the rewrite's delete
    for sql in touching:
        assert "SCAN review_dispatchfact" not in _plan(sql), sql[:300]
