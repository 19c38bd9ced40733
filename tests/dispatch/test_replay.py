"""``selectors.member_replay`` on a big incident: a phone's resume reads the
events it sends, not the whole timeline.

A city-wide alert writes a delivery, a receipt and a channel event for every
member it reaches; a phone resuming after a proxy restart must not load them all
(a reconnect storm of 1,000 phones took 90 s on this, one database thread per
daphne decoding every other member's receipts).
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models.signals import post_init

from dispatch import selectors, services
from dispatch.events import events_record
from dispatch.models import Incident, IncidentEvent
from tests.dispatch.conftest import SPOT

pytestmark = pytest.mark.django_db


def _loaded(fn):
    """``fn()`` and how many IncidentEvent rows it loaded."""
    count = 0

    def seen(sender, **kwargs):
        nonlocal count
        count += 1

    post_init.connect(seen, sender=IncidentEvent)
    try:
        return fn(), count
    finally:
        post_init.disconnect(seen, sender=IncidentEvent)


def test_a_resume_loads_only_the_events_it_sends(near_responder, neighbour_responder):
    incident = services.incident_create(
        kind=Incident.Kind.KNIFE, lat=SPOT[0], lon=SPOT[1], source=Incident.Source.CAD
    ).incident
    partner = near_responder.unit.members.exclude(pk=near_responder.pk).get()
    services.dispatch_act(incident_id=incident.pk, member=partner, action="accept")
    # Every other phone's receipts and channel events, as a city-wide alert leaves.
    with transaction.atomic():
        events_record(
            incident_id=incident.pk,
            events=[
                IncidentEvent(type=kind, unit=neighbour_responder.unit, member=neighbour_responder)
                for _ in range(40)
                for kind in (
                    IncidentEvent.Type.DELIVERED,
                    IncidentEvent.Type.SEEN,
                    IncidentEvent.Type.REACHED,
                )
            ],
        )

    frames, loaded = _loaded(
        lambda: selectors.member_replay(member=near_responder, last_event_id=0)
    )

    assert [(f["type"], f.get("event")) for f in frames] == [
        ("incident.alert", None),
        ("incident.update", "accepted"),
    ]
    assert loaded == len(frames)
