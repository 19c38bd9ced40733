"""The units on an incident: update frames to every unit still on it, and
standing units down."""

from __future__ import annotations

from django.db import transaction

from .. import payloads
from ..events import (
    Message,
    events_record,
    incident_group,
    push_on_commit,
    to_supervisors,
    unit_group,
)
from ..models import Dispatch, Incident, IncidentEvent
from ..policy import enough_accepts


def updates_for(*, incident: Incident, events: list[IncidentEvent]) -> list[Message]:
    """Each event goes to every unit still on the incident and to its watchers."""
    unit_ids = (
        Dispatch.objects.filter(incident=incident)
        .exclude(status=Dispatch.Status.STOOD_DOWN)
        .values_list("unit_id", flat=True)
    )
    messages: list[Message] = []
    for event in events:
        payload = payloads.update(event=event, incident=incident)
        messages += [(unit_group(u), payload) for u in unit_ids]
        messages.append((incident_group(incident.pk), payload))
        messages += to_supervisors(incident, payload)
    return messages


def stand_down_if_enough(*, incident: Incident) -> list[Message]:
    accepted = Dispatch.objects.filter(
        incident=incident,
        status__in=[Dispatch.Status.ACCEPTED, Dispatch.Status.ON_SITE, Dispatch.Status.HANDLED],
    ).count()
    if accepted < enough_accepts(incident.policy):
        return []
    return stand_down_rest(incident=incident, closed=False)


def stand_down_rest(*, incident: Incident, closed: bool) -> list[Message]:
    """Release units that were alerted but are not needed, so no post empties for nothing."""
    statuses = [Dispatch.Status.ALERTED, Dispatch.Status.DECLINED]
    if closed:
        statuses.append(Dispatch.Status.ACCEPTED)
    return dispatches_stand_down(incident=incident, statuses=statuses, closed=closed)


def dispatches_stand_down(
    *,
    incident: Incident,
    statuses: list[str],
    closed: bool,
    unit_ids: list[int] | None = None,
    actor=None,
) -> list[Message]:
    """Move the incident's dispatches in ``statuses`` (of ``unit_ids``, if given)
    to stood down, with one event each; returns the messages to push."""
    rows = Dispatch.objects.select_for_update().filter(incident=incident, status__in=statuses)
    if unit_ids is not None:
        rows = rows.filter(unit_id__in=unit_ids)
    rows = list(rows.values_list("pk", "unit_id"))
    if not rows:
        return []
    Dispatch.objects.filter(pk__in=[pk for pk, _u in rows], status__in=statuses).update(
        status=Dispatch.Status.STOOD_DOWN
    )
    events = events_record(
        incident_id=incident.pk,
        events=[
            IncidentEvent(
                type=IncidentEvent.Type.STOOD_DOWN,
                unit_id=unit_id,
                user=actor,
                data={"closed": closed},
            )
            for _pk, unit_id in rows
        ],
    )
    messages: list[Message] = []
    for event in events:
        payload = payloads.update(event=event, incident=incident)
        messages.append((unit_group(event.unit_id), payload))
        messages.append((incident_group(incident.pk), payload))
    return messages


# A unit on site stays until it reports handled: standing it down would empty a
# scene someone is holding.
STANDABLE = [Dispatch.Status.ALERTED, Dispatch.Status.DECLINED, Dispatch.Status.ACCEPTED]


def units_stand_down(*, incident: Incident, unit_ids: list[int], actor=None) -> int:
    """Release these units from the incident (a command board's "not needed").

    Only units alerted, declined or accepted are stood down (not one on site);
    each gets a ``stood_down`` event recording ``actor``, pushed to its phones
    and the incident's watchers after commit. Runs its own transaction (a
    savepoint inside the caller's) and takes the incident row lock, like
    every writer of the incident. Returns how many units were stood down.
    """
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        messages = dispatches_stand_down(
            incident=incident, statuses=STANDABLE, closed=False, unit_ids=unit_ids, actor=actor
        )
        push_on_commit(messages)
    return len(messages) // 2
