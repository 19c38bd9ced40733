"""The socket server's garbage collector (config/server.py): no full collection
starts by itself while the loop is busy; one runs when it has been quiet, and in
any case after ``full_at_most_s``."""

from __future__ import annotations

import gc

import pytest

from config import server
from tests.daphne_socket import daphne_socket

# The collector in this process, no database: ./dev test runs these once.
pytestmark = pytest.mark.database_independent


@pytest.fixture
def full_collections():
    """Full collections (generation 2) that run while the test does."""
    runs: list[int] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            runs.append(1)

    thresholds = gc.get_threshold()
    gc.callbacks.append(seen)
    try:
        yield runs
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_growing_heap_starts_no_full_collection_by_itself(full_collections):
    grown = []
    gc.collect()
    full_collections.clear()
    server.Collector().start()
    # Twice the objects the process had: CPython's own rule would collect
    # everything once they are a quarter more.
    for _ in range(len(gc.get_objects()) // 5):
        grown.append([[], [], [], [], []])
    assert full_collections == []
    gc.set_threshold(700, 10, 10)
    for _ in range(len(gc.get_objects()) // 2):
        grown.append([[]])
    assert full_collections, "CPython's defaults would have collected everything"


def test_full_collections_wait_for_a_quiet_loop(full_collections):
    clock = Clock()
    collector = server.Collector(clock=clock, full_every_s=60, full_at_most_s=600, quiet_ticks=5)
    collector.start()

    def ticks(n: int, *, late_s: float) -> int:
        ran = 0
        for _ in range(n):
            due = clock.now + 1
            clock.now = due + late_s
            ran += collector.tick(due)
        return ran

    # The first tick freezes what daphne's start left (after one collection).
    assert ticks(1, late_s=0) == 1 and collector.frozen
    full_collections.clear()
    # Busy (each tick 0.2 s late): nothing for 480 s.
    assert ticks(400, late_s=0.2) == 0
    assert full_collections == []
    # Quiet: after five quiet ticks, one collection, then none for a while.
    assert ticks(4, late_s=0.01) == 0
    assert ticks(1, late_s=0.01) == 1
    assert len(full_collections) == 1
    assert ticks(30, late_s=0.0) == 0


def test_a_loop_never_quiet_still_collects(full_collections):
    clock = Clock()
    collector = server.Collector(clock=clock, full_every_s=60, full_at_most_s=600, quiet_ticks=5)
    collector.start()
    collector.tick(clock.now)  # the freeze
    full_collections.clear()
    ran = []
    for _ in range(1000):  # 1,500 s
        due = clock.now + 1
        clock.now = due + 0.5
        if collector.tick(due):
            ran.append(clock.now)
    assert len(ran) == 2 and len(full_collections) == 2
    assert ran[0] - 1000 == pytest.approx(600, abs=2)
    assert ran[1] - ran[0] == pytest.approx(600, abs=2)


def test_a_socket_holds_daphne_options_on_its_class_not_per_connection():
    """autobahn copies 29 options from the factory onto every connection unless
    the class has them (bench/city.py --tracemalloc: 1.7 KB per socket)."""
    with daphne_socket(autoPingInterval=60, maxMessagePayloadSize=65536) as (_s, protocol, _t):
        assert not set(protocol.CONFIG_ATTRS) & set(vars(protocol))
        assert protocol.autoPingInterval == 60
        assert protocol.maxMessagePayloadSize == 65536
        # A function option is still called with the offers alone.
        assert protocol.perMessageCompressionAccept([]) is None


def test_daphne_walks_its_connections_a_fifth_as_often():
    """daphne walked every connection each second and every 2 s: a sixth of a
    5,000-socket process's time (bench/city.py --profile, wave one)."""
    from twisted.internet import reactor

    class Details(dict):
        walked = 0

        def get(self, key, default=None):
            Details.walked += 1
            return super().get(key, default)

    class Protocol:
        checked = 0

        def check_timeouts(self) -> None:
            Protocol.checked += 1

    server_class = server._lean_server()
    lean = server_class.__new__(server_class)
    lean.connections = {Protocol(): Details() for _ in range(10)}
    lean.application_close_timeout = 10
    calls = reactor.getDelayedCalls()
    try:
        for _ in range(10):
            lean.application_checker()
            lean.timeout_checker()
        assert Details.walked == 2 * 10 * 2  # two walks, two reads per connection
        assert Protocol.checked == 2 * 10
    finally:
        for call in reactor.getDelayedCalls():
            if call not in calls:
                call.cancel()


def test_a_frame_written_now_is_one_websocket_text_frame_on_an_open_socket():
    """``_Reply.text_now``: what the channel layer's reader writes for each
    socket of a group, without a task per socket (dispatch/consumers.py)."""
    with daphne_socket() as (lean, protocol, transport):
        reply = server._Reply(lean, protocol)
        assert reply.text_now("警情") is False  # the handshake is not over
        assert transport.value() == b""
        protocol.state = protocol.STATE_OPEN
        assert reply.text_now("警情") is True
        payload = "警情".encode()
        assert transport.value() == bytes([0x81, len(payload)]) + payload
        transport.clear()
        lean.connections[protocol]["disconnected"] = True
        assert reply.text_now("警情") is False
        assert transport.value() == b""
