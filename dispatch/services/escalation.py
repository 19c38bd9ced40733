"""Escalation: a deadline row fires once (conditional claim) and sends the next
ring; the beat sweep fires what a dead worker missed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..events import (
    Message,
    events_record,
    push_on_commit,
)
from ..models import Deadline, Incident, IncidentEvent
from ..policy import tier_get
from .dispatches import updates_for
from .waves import wave_ranked_send


def deadline_fire(*, deadline_id: int) -> str:
    """Fire one escalation deadline if due and not yet fired; returns the outcome.

    Claimed with a conditional update inside the transaction: a retried task, a
    second worker or the sweep can never fire it twice; a worker that dies before
    commit leaves it pending for the sweep.
    """
    now = timezone.now()
    with transaction.atomic():
        claimed = Deadline.objects.filter(pk=deadline_id, fired_at=None, due_at__lte=now).update(
            fired_at=now, outcome="firing"
        )
        if not claimed:
            return "not_due_or_fired"
        deadline = Deadline.objects.get(pk=deadline_id)
        # Row lock: tiers of one incident firing at once take turns for wave numbers.
        incident = Incident.objects.select_for_update().get(pk=deadline.incident_id)
        tier = tier_get(incident.policy, deadline.tier)
        # A tier without "unless" always fires while the incident is open.
        unless = tier.get("unless") if tier is not None else None
        if tier is None:
            outcome = "unknown_tier"
        elif incident.status != Incident.Status.OPEN or (unless and getattr(incident, unless)):
            outcome = "met"
        else:
            outcome = _escalate(incident=incident, tier=tier)
        Deadline.objects.filter(pk=deadline_id).update(outcome=outcome)
    return outcome


def _escalate(*, incident: Incident, tier: dict[str, Any]) -> str:
    data: dict[str, Any] = {"tier": tier["name"], "notify": tier.get("notify", [])}
    messages: list[Message] = []
    events: list[IncidentEvent] = []
    if tier.get("flag") and Incident.objects.filter(pk=incident.pk, flagged=False).update(
        flagged=True
    ):
        incident.flagged = True
        events.append(IncidentEvent(type=IncidentEvent.Type.FLAGGED, data={"tier": tier["name"]}))
    if tier.get("wave"):
        number = (
            incident.waves.order_by("-number").values_list("number", flat=True).first() or 0
        ) + 1
        wave, candidates = wave_ranked_send(
            incident=incident, number=number, spec=tier["wave"], reason=tier["name"]
        )
        data.update(wave=number, units=len(candidates))
    events.append(IncidentEvent(type=IncidentEvent.Type.ESCALATED, data=data))
    recorded = events_record(incident_id=incident.pk, events=events)
    incident.refresh_from_db()
    messages += updates_for(incident=incident, events=recorded)
    push_on_commit(messages)
    return "escalated"


def deadlines_sweep(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Fire every overdue deadline (a dead worker's timers). Returns how many fired."""
    now = now or timezone.now()
    due = list(
        Deadline.objects.filter(fired_at=None, due_at__lte=now)
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )
    fired = 0
    for deadline_id in due:
        if deadline_fire(deadline_id=deadline_id) != "not_due_or_fired":
            fired += 1
    return fired
