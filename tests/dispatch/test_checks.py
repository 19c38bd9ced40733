"""The member sockets' timing settings are checked at start-up (``dispatch/checks.py``)."""

from __future__ import annotations

import pytest

from dispatch.checks import heartbeat_timing


def _ids(settings) -> list[str]:
    return [m.id for m in heartbeat_timing()]


def test_the_default_timing_passes(settings):
    assert _ids(settings) == []


@pytest.mark.parametrize("name", ["WS_HEARTBEAT_S", "WS_HEARTBEAT_SLICE_S"])
@pytest.mark.parametrize("value", [0, -1.0])
def test_a_heartbeat_or_slice_of_zero_or_less_is_an_error(settings, name, value):
    setattr(settings, name, value)
    assert "dispatch.E110" in _ids(settings)


def test_an_idle_close_within_a_heartbeat_is_a_warning(settings):
    settings.WS_HEARTBEAT_S = 20
    settings.WS_IDLE_CLOSE_S = 15
    assert _ids(settings) == ["dispatch.W111"]
