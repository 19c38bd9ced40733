"""Celery edges of escalation: deadline timers enqueued after commit, the tasks
idempotent, the beat sweep as the safety net. Eager Celery (tests/conftest.py);
the real worker and broker are exercised in tests/e2e."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch import services, tasks
from dispatch.models import Deadline, Incident, Wave
from tests.dispatch.conftest import SPOT

pytestmark = pytest.mark.django_db


def raise_incident(**overrides) -> Incident:
    args = {"kind": "fire", "lat": SPOT[0], "lon": SPOT[1], "source": Incident.Source.CAD}
    args.update(overrides)
    return services.incident_create(**args).incident


def make_due(incident: Incident, tier: str) -> Deadline:
    deadline = Deadline.objects.get(incident=incident, tier=tier)
    deadline.due_at = timezone.now() - dt.timedelta(seconds=1)
    deadline.save(update_fields=["due_at"])
    return deadline


@pytest.fixture
def enqueued(monkeypatch) -> list[dict]:
    """fire_deadline.apply_async calls, recorded instead of run."""
    calls: list[dict] = []

    def apply_async(args=None, kwargs=None, **options):
        calls.append({"args": args, **options})

    monkeypatch.setattr(tasks.fire_deadline, "apply_async", apply_async)
    return calls


def test_intake_enqueues_one_timer_after_commit_for_the_first_tier(
    near_responder, enqueued, django_capture_on_commit_callbacks
):
    """One Celery message per incident, not one per tier: the intake's commit
    is on the path to the phones, and the worker holds each ETA message."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        incident = raise_incident()
    assert enqueued == []  # not before commit
    for callback in callbacks:
        callback()
    first = incident.deadlines.order_by("due_at").first()
    assert first.tier == "respond_1min"
    assert incident.deadlines.count() == 5
    assert [call["args"] for call in enqueued] == [(first.pk,)]  # ids, never instances
    json.dumps(enqueued[0]["args"])
    assert enqueued[0]["eta"] == first.due_at
    assert enqueued[0]["expires"] > enqueued[0]["eta"]


def test_a_fired_deadline_enqueues_the_timer_of_the_incidents_next_one(
    near_responder, mid_responder, enqueued, django_capture_on_commit_callbacks
):
    incident = raise_incident()
    deadline = make_due(incident, "respond_1min")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.deadline_fire(deadline_id=deadline.pk) == "escalated"
    assert enqueued == []  # not before commit
    for callback in callbacks:
        callback()
    following = incident.deadlines.get(tier="control_3min")
    assert [call["args"] for call in enqueued] == [(following.pk,)]
    assert enqueued[0]["eta"] == following.due_at

    # A repeat (a redelivered message, the sweep) claims nothing and enqueues nothing.
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deadline_fire(deadline_id=deadline.pk) == "not_due_or_fired"
    assert enqueued == []


def test_the_timers_chain_through_every_tier_in_order(
    near_responder, mid_responder, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        incident = raise_incident()
    tiers = list(incident.deadlines.order_by("due_at").values_list("tier", flat=True))
    for tier in tiers:
        (deadline_id,) = enqueued.pop()["args"]
        assert Deadline.objects.get(pk=deadline_id).tier == tier
        make_due(incident, tier)
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.fire_deadline.run(deadline_id) != "not_due_or_fired"
    assert enqueued == []  # the last tier leaves no timer behind
    assert not incident.deadlines.filter(fired_at=None).exists()


def test_a_closed_incident_leaves_its_later_deadlines_to_the_sweep(
    near_responder, enqueued, django_capture_on_commit_callbacks
):
    incident = raise_incident()
    Incident.objects.filter(pk=incident.pk).update(status=Incident.Status.CLOSED)
    deadline = make_due(incident, "respond_1min")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deadline_fire(deadline_id=deadline.pk) == "met"
    assert enqueued == []


@pytest.mark.django_db(transaction=True)
def test_nothing_is_enqueued_when_intake_rolls_back(near_responder, enqueued):
    with pytest.raises(RuntimeError), transaction.atomic():
        raise_incident()
        raise RuntimeError
    assert enqueued == []
    assert not Deadline.objects.exists()


def test_no_timer_is_longer_than_half_the_visibility_timeout(
    settings, near_responder, enqueued, django_capture_on_commit_callbacks
):
    # Half of 100 s: the first tier (60 s) is too far off for a timer.
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 100}
    with django_capture_on_commit_callbacks(execute=True):
        incident = raise_incident()
    assert enqueued == []
    # The sweep fires it when due, and that enqueues the next tier's timer.
    make_due(incident, "respond_1min")
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_deadlines.delay().get() == 1
    control = incident.deadlines.get(tier="control_3min")
    assert [call["args"] for call in enqueued] == [(control.pk,)]


def test_an_unreachable_broker_does_not_fail_intake(
    near_responder, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.fire_deadline, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        incident = raise_incident()
    assert incident.pk is not None
    # The rows stay pending; the sweep fires the first once it is due.
    make_due(incident, "respond_1min")
    assert tasks.sweep_deadlines.delay().get() == 1
    assert incident.waves.count() == 2


def test_the_fire_deadline_task_escalates_once(near_responder, mid_responder):
    incident = raise_incident()
    deadline = make_due(incident, "respond_1min")
    assert tasks.fire_deadline.delay(deadline.pk).get() == "escalated"
    assert tasks.fire_deadline.delay(deadline.pk).get() == "not_due_or_fired"
    assert Wave.objects.filter(incident=incident).count() == 2


def test_the_fire_deadline_task_ignores_an_unknown_deadline(db):
    assert tasks.fire_deadline.delay(987654).get() == "not_due_or_fired"


def test_a_deadline_fired_early_by_its_timer_waits_for_the_sweep(near_responder):
    """A timer that runs early (clock skew between hosts) changes nothing."""
    incident = raise_incident()
    deadline = incident.deadlines.get(tier="respond_1min")
    assert tasks.fire_deadline.delay(deadline.pk).get() == "not_due_or_fired"
    deadline.refresh_from_db()
    assert deadline.fired_at is None
    make_due(incident, "respond_1min")
    assert tasks.sweep_deadlines.delay().get() == 1


def test_the_sweep_task_fires_overdue_deadlines_of_every_incident_once(near_responder):
    first = raise_incident()
    second = raise_incident(lat=SPOT[0] + 0.001)
    make_due(first, "respond_1min")
    make_due(second, "respond_1min")
    make_due(second, "control_3min")
    assert tasks.sweep_deadlines.delay().get() == 3
    assert tasks.sweep_deadlines.delay().get() == 0
    assert Deadline.objects.filter(fired_at__isnull=False).count() == 3


def test_an_unknown_tier_in_the_snapshot_is_recorded_not_retried(near_responder):
    incident = raise_incident()
    deadline = make_due(incident, "respond_1min")
    Deadline.objects.filter(pk=deadline.pk).update(tier="renamed_tier")
    assert tasks.fire_deadline.delay(deadline.pk).get() == "unknown_tier"
    deadline.refresh_from_db()
    assert deadline.fired_at is not None and deadline.outcome == "unknown_tier"


def test_tasks_are_late_acked_and_the_sweep_runs_every_few_seconds():
    assert tasks.fire_deadline.acks_late and tasks.sweep_deadlines.acks_late
    assert settings.CELERY_TASK_SERIALIZER == "json"
    schedule = settings.CELERY_BEAT_SCHEDULE["sweep-deadlines"]
    assert schedule["task"] == "dispatch.tasks.sweep_deadlines"
    assert schedule["schedule"] <= 10
