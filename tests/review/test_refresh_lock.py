"""The minutely facts refresh never holds the write lock for long (issue 10, fault 5).

On SQLite every transaction takes the one write lock at BEGIN (IMMEDIATE), so a
member's accept waits for whatever transaction is open. The refresh must write
in short transactions, and only what changed.

Each outermost ``atomic`` block is timed (instrumentation only: the real code
and the real database run unchanged) in CPU time of this thread: the work done
while the lock is held, which is what the code controls. Wall-clock time adds
whatever the machine's scheduler does (on the shared 2-core CI box, preemptions
of 0.1-0.5 s at a load of 9); bench/review_refresh.py measures the wall-clock
effect on a concurrent accept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time

import pytest
from django.db import transaction
from django.db.transaction import Atomic
from django.utils import timezone

from review import selectors, services
from review.models import DispatchFact, IncidentFact, UnitWeekly, WeeklyRollup
from review.seeding import incidents_seed
from review.services import rollups
from tests.factories import MemberFactory, UnitFactory

pytestmark = pytest.mark.django_db(transaction=True)

# The refresh's longest write transaction, CPU seconds. Measured: median 5-15 ms,
# longest ~20 ms per batch (before: one transaction of ~2 s for these incidents).
LONGEST_S = 0.1
INCIDENTS = 1500


@contextlib.contextmanager
def write_transactions():
    """Yield a list that receives the duration (s) of every outermost atomic block."""
    spans: list[float] = []
    starts: list[float] = []
    enter, exit_ = Atomic.__enter__, Atomic.__exit__

    def timed_enter(self):
        outermost = not transaction.get_connection(self.using).in_atomic_block
        enter(self)
        if outermost:
            starts.append(time.thread_time())

    def timed_exit(self, exc_type, exc_value, traceback):
        try:
            return exit_(self, exc_type, exc_value, traceback)
        finally:
            if starts and not transaction.get_connection(self.using).in_atomic_block:
                spans.append(time.thread_time() - starts.pop())

    Atomic.__enter__, Atomic.__exit__ = timed_enter, timed_exit
    try:
        yield spans
    finally:
        Atomic.__enter__, Atomic.__exit__ = enter, exit_


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    # The pause between batches lets waiting writers in (bench/review_refresh.py
    # measures that); here it would only add seconds.
    monkeypatch.setattr(rollups, "WRITE_PAUSE_S", 0.0)


@pytest.fixture
def recent_history(tianhe_street, haizhu_street):
    """Incidents of the last day (inside the resync window) with dispatches."""
    units = [
        UnitFactory(region=region, lat=lat + i * 0.002, lon=lon)
        for region, lat, lon in ((tianhe_street, 23.13, 113.32), (haizhu_street, 23.09, 113.33))
        for i in range(8)
    ]
    for u in units:
        MemberFactory(unit=u)
    incidents_seed(count=INCIDENTS, seed=7, until=timezone.now(), days=1)
    return units


def _stats(user):
    filters = selectors.IncidentFilter(
        since=timezone.now() - dt.timedelta(days=30), until=timezone.now()
    )
    return [r.as_dict() for r in selectors.area_stats(user=user, filters=filters, by="district")]


def test_refresh_writes_in_short_transactions(recent_history, city_reviewer):
    expected = _stats(city_reviewer)  # the seeded facts, equal to the live answer
    # As if the facts were never written: the refresh must write them all.
    for model in (IncidentFact, DispatchFact, WeeklyRollup, UnitWeekly):
        model.objects.all().delete()

    with write_transactions() as spans:
        assert services.facts_sync() == INCIDENTS
    assert IncidentFact.objects.count() == INCIDENTS
    assert DispatchFact.objects.exists()
    assert WeeklyRollup.objects.exists() and UnitWeekly.objects.exists()
    assert _stats(city_reviewer) == expected
    assert len(spans) > 10, spans  # many short batches, not one
    assert max(spans) < LONGEST_S, sorted(spans)[-5:]


def test_refresh_with_nothing_changed_writes_nothing(recent_history, city_reviewer):
    services.facts_sync()
    expected = _stats(city_reviewer)
    # Every incident is inside the resync window, yet none changed: no write at all.
    with write_transactions() as spans:
        assert services.facts_sync() == INCIDENTS
    assert spans == []
    assert _stats(city_reviewer) == expected
