"""Faults injected into the real system: the e2e fixtures, reused."""

from tests.e2e.conftest import (  # noqa: F401
    _unit_test_settings,
    city,
    sockets,
    staff_api,
    system_factory,
)
