"""Escalation: a deadline row fires once (conditional claim), sends the next
ring and enqueues the timer of the incident's next deadline; the beat sweep
fires what a dead worker missed. A command board may send
the next ring before its deadline (``incident_ring_next``): that ring's row is
claimed for its wave, so the wave goes out once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..events import (
    Message,
    events_record,
    push_on_commit,
)
from ..models import Deadline, Dispatch, Incident, IncidentEvent
from ..policy import tier_get
from .dispatches import updates_for
from .members import ActionRefused
from .waves import deadlines_schedule, wave_ranked_send

# A deadline whose ring a board sent before it came due (``incident_ring_next``):
# when due, it still notifies and flags, but sends no wave.
RING_SENT = "ring_sent"
# "The next ring now" once the policy has no ring left: one more, wider.
RING_AFTER_LAST = {"radius_m": 5000, "units": 10}


def deadline_fire(*, deadline_id: int) -> str:
    """Fire one escalation deadline if due and not yet fired; returns the outcome.

    Claimed with a conditional update inside the transaction: a retried task, a
    second worker or the sweep can never fire it twice; a worker that dies before
    commit leaves it pending for the sweep.
    """
    now = timezone.now()
    with transaction.atomic():
        # The claim keeps ``outcome``: RING_SENT there means a board sent this ring.
        claimed = Deadline.objects.filter(pk=deadline_id, fired_at=None, due_at__lte=now).update(
            fired_at=now
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
            outcome = _escalate(
                incident=incident, tier=tier, wave_sent=deadline.outcome == RING_SENT
            )
        Deadline.objects.filter(pk=deadline_id).update(outcome=outcome)
        # The incident's next deadline gets its timer (see deadlines_schedule); a
        # closed incident's are the sweep's, which records them as met.
        if incident.status == Incident.Status.OPEN:
            following = list(
                Deadline.objects.filter(incident_id=incident.pk, fired_at=None).order_by(
                    "due_at", "pk"
                )[:1]
            )
            if following:
                transaction.on_commit(lambda: deadlines_schedule(following))
    return outcome


def _escalate(*, incident: Incident, tier: dict[str, Any], wave_sent: bool = False) -> str:
    data: dict[str, Any] = {"tier": tier["name"], "notify": tier.get("notify", [])}
    if wave_sent:
        data["ring_sent_early"] = True
    messages: list[Message] = []
    events: list[IncidentEvent] = []
    if tier.get("flag") and Incident.objects.filter(pk=incident.pk, flagged=False).update(
        flagged=True
    ):
        incident.flagged = True
        events.append(IncidentEvent(type=IncidentEvent.Type.FLAGGED, data={"tier": tier["name"]}))
    if tier.get("wave") and not wave_sent:
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


def incident_ring_next(*, incident_id: int, actor) -> list[Dispatch]:
    """Send the incident's next ring now (一点呼叫、多点响应, from a command board).

    The ring is the first tier of the incident's policy with a wave whose deadline
    has neither fired nor had its ring sent. Its row is claimed for the wave with
    a conditional update (the same row ``deadline_fire`` claims), so that wave
    goes out once: now, not again when the deadline comes due (which still
    notifies and flags, without a wave). The next ring's deadline is brought
    forward to keep its interval from this wave. With no ring left: one wider
    ring (RING_AFTER_LAST), with no deadline.

    Raises ActionRefused (``closed``, ``no_units``), and then nothing is written:
    the deadline stays as it was.
    """
    now = timezone.now()
    with transaction.atomic():
        # Deadline row first, then the incident row: the order deadline_fire takes.
        incident = Incident.objects.get(pk=incident_id)
        tiers = [t for t in incident.policy.get("tiers", []) if t.get("wave")]
        pending = dict(
            incident.deadlines.filter(fired_at=None, outcome="").values_list("tier", "pk")
        )
        tier = None
        for candidate in tiers:
            if candidate["name"] in pending and Deadline.objects.filter(
                pk=pending[candidate["name"]], fired_at=None, outcome=""
            ).update(outcome=RING_SENT):
                tier = candidate
                break
        if tier is not None:
            # Before the incident lock too: a deadline firing holds its own row,
            # then waits for the incident's (no lock cycle with it).
            _next_ring_bring_forward(incident=incident, tiers=tiers, sent=tier, now=now)
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        if incident.status != Incident.Status.OPEN:
            raise ActionRefused("closed", _("该警情已结束。"))
        number = (
            incident.waves.order_by("-number").values_list("number", flat=True).first() or 0
        ) + 1
        wave, candidates = wave_ranked_send(
            incident=incident,
            number=number,
            spec=tier["wave"] if tier else RING_AFTER_LAST,
            reason="board_ring",
            actor=actor,
        )
        if not candidates:
            # Rolls the claim (and the next ring's move) back: the deadline still
            # sends this ring when due.
            raise ActionRefused("no_units", _("范围内没有更多可调派的单元。"))
        return list(wave.dispatches.order_by("rank"))


def _next_ring_bring_forward(
    *, incident: Incident, tiers: list[dict[str, Any]], sent: dict[str, Any], now: dt.datetime
) -> None:
    """The ring after ``sent`` comes its policy interval after the wave just sent,
    if that is sooner than its own deadline."""
    later = tiers[tiers.index(sent) + 1 :]
    if not later:
        return
    after = later[0]
    due = now + dt.timedelta(seconds=after["after_s"] - sent["after_s"])
    moved = Deadline.objects.filter(
        incident=incident, tier=after["name"], fired_at=None, due_at__gt=due
    ).update(due_at=due)
    if moved:
        deadline = list(Deadline.objects.filter(incident=incident, tier=after["name"]))
        transaction.on_commit(lambda: deadlines_schedule(deadline))


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
