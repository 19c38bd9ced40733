"""The member sockets' timing settings are checked at start-up (``dispatch/checks.py``)."""

from __future__ import annotations

import pytest

from dispatch.checks import heartbeat_timing


def _ids(settings) -> list[str]:
    return [m.id for m in heartbeat_timing()]


def test_the_default_timing_passes(settings):
    from config import settings as shipped

    # tests/conftest.py beats unit tests in one slice: check the shipped slice.
    settings.WS_HEARTBEAT_SLICE_S = shipped.WS_HEARTBEAT_SLICE_S
    assert settings.WS_HEARTBEAT_SLICE_S == 0.25
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


def test_a_heartbeat_that_is_not_a_finite_number_is_an_error(settings):
    settings.WS_HEARTBEAT_S = float("inf")
    assert _ids(settings) == ["dispatch.E110"]


def test_the_server_does_not_start_with_a_slice_of_zero():
    """daphne runs no system checks: the ASGI application refuses to load."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "WS_HEARTBEAT_SLICE_S": "0"}
    env.pop("DATABASE_URL", None)
    run = subprocess.run(
        [sys.executable, "-c", "import config.asgi"], env=env, capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "WS_HEARTBEAT_SLICE_S must be a number of seconds more than 0" in run.stderr
