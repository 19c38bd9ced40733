"""The member action state machine, in one place.

``dispatch_act`` (app and socket), the SMS reply path and the phone all follow
this table: the phone renders the ``next_actions`` the server sends with each
dispatch (``payloads``) instead of deciding them itself.
"""

from __future__ import annotations

from .models import Dispatch, IncidentEvent

S = Dispatch.Status

# Which dispatch states each action may leave, and where it goes. The order is
# the order the phone shows the buttons in.
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "accept": (frozenset({S.ALERTED, S.DECLINED}), S.ACCEPTED),
    "decline": (frozenset({S.ALERTED}), S.DECLINED),
    "on_site": (frozenset({S.ACCEPTED}), S.ON_SITE),
    "handled": (frozenset({S.ON_SITE}), S.HANDLED),
}
ACTIONS = tuple(TRANSITIONS)

EVENT_FOR_ACTION = {
    "accept": IncidentEvent.Type.ACCEPTED,
    "decline": IncidentEvent.Type.DECLINED,
    "on_site": IncidentEvent.Type.ON_SITE,
    "handled": IncidentEvent.Type.HANDLED,
}

# The dispatch state a unit's timeline event leaves its dispatch in.
STATUS_AFTER_EVENT: dict[str, str] = {
    **{EVENT_FOR_ACTION[a]: target for a, (_sources, target) in TRANSITIONS.items()},
    IncidentEvent.Type.STOOD_DOWN: S.STOOD_DOWN,
}

# A reply by SMS ("1", "2", ...) or a key press on a call means the same action.
SMS_CODES = {"1": "accept", "2": "decline", "3": "on_site", "4": "handled"}


def next_actions(status: str) -> list[str]:
    """The actions a member may take on a dispatch in ``status``, in button order."""
    return [action for action, (sources, _target) in TRANSITIONS.items() if status in sources]
