"""Dispatch rules: intake, waves, member actions, escalation.

Views, consumers, tasks and commands all call these functions. Each write runs
in one transaction; first-time timestamps and wave numbers are claimed with
conditional updates; pushes and task enqueues happen after commit.

The public write API - the only way anything outside dispatch writes
incidents, waves or dispatches (intake, drills, a police-station command
board):

- ``incident_create``: open an incident (and, by default, send wave 1);
- ``wave_send``: send a wave to units the caller names;
- ``units_stand_down``: release named units from an incident;
- ``incident_close``: close an incident that nobody reported handled;
- ``incident_gather_set``: set the gathering point responders head for;
- ``incident_ring_next``: send the next ring of the escalation policy now.

Each records who acted (``actor``, a staff user) on the timeline event and
pushes to phones and boards only after the transaction commits.

The package splits by concern: ``incidents`` (open, close), ``waves`` (ranked
and named waves, deadlines), ``members`` (member actions, receipts, positions),
``dispatches`` (units on an incident, standing down), ``escalation``.
Lock order everywhere: the incident row first.
"""

from __future__ import annotations

from ..actions import ACTIONS
from ..intake import IntakeRefused
from .dispatches import units_stand_down
from .escalation import deadline_fire, deadlines_sweep, incident_ring_next
from .gathering import incident_gather_set
from .incidents import IntakeResult, incident_close, incident_create
from .members import (
    ActionRefused,
    DeliveryAck,
    LocationReport,
    deliveries_ack,
    delivery_ack,
    dispatch_act,
    dispatch_for_member,
    member_location_record,
    member_locations_record,
)
from .waves import wave_send

__all__ = [
    "ACTIONS",
    "ActionRefused",
    "DeliveryAck",
    "IntakeRefused",
    "IntakeResult",
    "deadline_fire",
    "deadlines_sweep",
    "deliveries_ack",
    "delivery_ack",
    "dispatch_act",
    "dispatch_for_member",
    "incident_close",
    "incident_create",
    "incident_gather_set",
    "incident_ring_next",
    "member_location_record",
    "member_locations_record",
    "LocationReport",
    "units_stand_down",
    "wave_send",
]
