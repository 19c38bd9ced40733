"""A frozen server is noticed by the phone (issue 10, fault 4): daphne is stopped
with SIGSTOP, so no socket closes; the page must miss two heartbeats, show it is
offline, and come back online by itself after SIGCONT.

Real headless Chromium and a real daphne; the heartbeat is short here and reaches
the page through its json_script config, as in production.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.e2e import harness
from tests.e2e.test_member_browser import (  # noqa: F401 - fixtures
    chromium,
    member_login,
    phone,
    shot,
    sign_in,
    wait_online,
)

HEARTBEAT_S = 1.5

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def phone_city(tmp_path_factory) -> Iterator[harness.City]:
    try:
        city = harness.City.create(
            tmp_path_factory.mktemp("heartbeat-city"),
            outer_database_url=os.environ.get("DATABASE_URL"),
            units=60,
            extra_env={"WS_HEARTBEAT_S": str(HEARTBEAT_S), "WS_IDLE_CLOSE_S": "60"},
        )
    except harness.ServiceError as exc:
        pytest.fail(f"could not set up the city: {exc}", pytrace=False)
    yield city
    city.close()


@pytest.fixture
def daphne(phone_city) -> Iterator[harness.Service]:
    system = harness.System(phone_city)
    try:
        service = system.start_daphne()
    except harness.ServiceError as exc:
        system.stop()
        pytest.fail(f"could not start daphne: {exc}", pytrace=False)
    yield service
    if service.alive():
        os.kill(service.pid, signal.SIGCONT)  # a stopped process ignores SIGTERM
    system.stop()


def test_a_frozen_server_shows_offline_within_two_heartbeats_and_reconnects(
    phone,  # noqa: F811 - the imported fixture
    daphne,
    phone_city,
):
    sign_in(phone, daphne.http_url, member_login(phone_city, "near", 0))
    assert phone.evaluate("JSON.parse(document.getElementById('member-config').textContent)")[
        "heartbeatS"
    ] == pytest.approx(HEARTBEAT_S)
    # Start right after a server ping, so the clock measures the worst case less.
    phone.wait_for_timeout(HEARTBEAT_S * 1000)

    os.kill(daphne.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        phone.wait_for_selector("#conn[data-state=offline]", timeout=(2.5 * HEARTBEAT_S + 2) * 1000)
        noticed_s = time.monotonic() - stopped_at
        assert phone.locator("#offline-note").is_visible()
        shot(phone, "heartbeat-offline")
        # Within about two heartbeats of the last ping (plus the check period).
        assert noticed_s <= 2.5 * HEARTBEAT_S + 0.5, noticed_s
        # Still frozen a while: the page stays offline, it does not claim otherwise.
        phone.wait_for_timeout(2 * HEARTBEAT_S * 1000)
        assert phone.locator("#conn").get_attribute("data-state") == "offline"
    finally:
        os.kill(daphne.pid, signal.SIGCONT)
    wait_online(phone, timeout=40_000)
    shot(phone, "heartbeat-back-online")
    assert daphne.alive()
