"""The gathering point (区域集结) a police station sets for an incident: where
responders head instead of the scene ("one call, many respond, gather in the
area")."""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..events import event_record, push_on_commit
from ..models import Incident, IncidentEvent
from .dispatches import updates_for
from .members import ActionRefused

GATHER_NOTE_MAX = 120


def incident_gather_set(
    *, incident: Incident, lat: float, lon: float, note: str = "", actor=None
) -> IncidentEvent:
    """Set (or move) the incident's gathering point; responders' phones take it
    as their destination from the ``gathering`` update frame (and from every
    frame after it: ``payloads.update`` carries the current point).

    The caller checked the actor's scope. Refuses a closed incident
    (``ActionRefused("closed")``) and a bad point (``ValidationError``). Runs
    its own transaction under the incident row lock, like every writer of the
    incident; the ``gathering`` event records ``actor`` and is pushed to every
    unit still on the incident, its watchers and the supervisors after commit.
    """
    errors = {}
    if not _finite(lat) or not -90 <= lat <= 90:
        errors["lat"] = _("纬度无效。")
    if not _finite(lon) or not -180 <= lon <= 180:
        errors["lon"] = _("经度无效。")
    note = (note or "").strip()
    if len(note) > GATHER_NOTE_MAX:
        errors["note"] = _("说明最多 %(n)s 个字。") % {"n": GATHER_NOTE_MAX}
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.status != Incident.Status.OPEN:
            raise ActionRefused("closed", _("该警情已结束。"))
        now = timezone.now()
        Incident.objects.filter(pk=incident.pk).update(
            gather_lat=lat, gather_lon=lon, gather_note=note, gather_set_at=now
        )
        event = event_record(
            incident_id=incident.pk,
            type=IncidentEvent.Type.GATHERING,
            user=actor,
            data={"lat": lat, "lon": lon, "note": note},
        )
        incident.refresh_from_db()
        push_on_commit(updates_for(incident=incident, events=[event]))
    return event


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
