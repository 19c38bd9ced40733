"""System checks for the member sockets' timing settings (``manage.py check``;
``config/asgi.py`` refuses to start on an error, as daphne runs no checks): a
heartbeat or a slice of zero would make each member socket's process spin or
fail as the first phone connects."""

from __future__ import annotations

import math

from django.conf import settings
from django.core import checks


@checks.register()
def heartbeat_timing(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    heartbeat = settings.WS_HEARTBEAT_S
    for name, hint in (
        ("WS_HEARTBEAT_S", "seconds between a member socket's pings, e.g. 20"),
        ("WS_HEARTBEAT_SLICE_S", "seconds between beats of a slice of sockets, e.g. 0.25"),
    ):
        value = getattr(settings, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            messages.append(
                checks.Error(
                    f"{name} must be a number of seconds more than 0 (it is {value!r})",
                    hint=hint,
                    id="dispatch.E110",
                )
            )
    if not messages and heartbeat >= settings.WS_IDLE_CLOSE_S:
        messages.append(
            checks.Warning(
                f"WS_IDLE_CLOSE_S ({settings.WS_IDLE_CLOSE_S!r}) must be more than "
                f"WS_HEARTBEAT_S ({heartbeat!r}): a phone answering every ping would be "
                "closed as silent",
                id="dispatch.W111",
            )
        )
    return messages
