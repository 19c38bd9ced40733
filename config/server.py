"""daphne, set for a process holding thousands of sockets: its garbage
collector, and what it holds per socket (``_lean_server``).

    python -m config.server [daphne's options] config.asgi:application

Run in place of ``daphne`` (``./dev run``, the test harness, docs/deployment.md).

A daphne holding 5,000 member sockets holds a few million Python objects.
CPython runs a full collection, walking every one of them with the world
stopped, whenever the objects that survived younger collections have grown by a
quarter since the last one. A city-wide alert is just such a moment: thousands
of frames, receipts and timeline rows alive at once. Measured with
``bench/city.py --gc`` (10,000 sockets, two daphne, a loaded two-core machine):
six full collections per daphne during three city-wide alerts, up to 3.1 s
each, and one of 1.8-2.1 s while 50 wave-one alerts went out (their p99 2.4 s).

So, in this process only (``Collector``):

- the objects alive once daphne has started (Django, the app, the routes) are
  frozen: never garbage, never walked again (``gc.freeze``);
- no full collection starts by itself; young collections run as before;
- a full collection runs when the event loop has been quiet for
  ``QUIET_TICKS`` seconds, at most every ``FULL_EVERY_S``, and in any case
  after ``FULL_AT_MOST_S`` (a loop never quiet still frees its cycles).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import types
from collections.abc import Callable

TICK_S = 1.0
# A tick later than this behind its time means the loop was busy.
QUIET_LAG_S = 0.05
QUIET_TICKS = 10
FULL_EVERY_S = 300.0
FULL_AT_MOST_S = 1800.0
# Young collections as CPython's defaults; the third threshold (young
# collections before a full one is even considered) out of reach.
THRESHOLDS = (700, 10, 1_000_000_000)


class Collector:
    """When this process collects everything: see the module docstring.

    ``tick`` is called every ``TICK_S`` by the server's loop with the time the
    tick was due; it returns True when it ran a full collection.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        full_every_s: float = FULL_EVERY_S,
        full_at_most_s: float = FULL_AT_MOST_S,
        quiet_ticks: int = QUIET_TICKS,
    ) -> None:
        self.clock = clock
        self.full_every_s = full_every_s
        self.full_at_most_s = full_at_most_s
        self.quiet_ticks = quiet_ticks
        self.quiet = 0
        self.frozen = False
        self.last_full = clock()

    def start(self) -> None:
        gc.set_threshold(*THRESHOLDS)

    def tick(self, due: float) -> bool:
        now = self.clock()
        self.quiet = self.quiet + 1 if now - due <= QUIET_LAG_S else 0
        if not self.frozen:
            # The first tick: daphne has imported the app and is serving.
            gc.collect()
            gc.freeze()
            self.frozen = True
            self.last_full = now
            return True
        since = now - self.last_full
        if (since >= self.full_every_s and self.quiet >= self.quiet_ticks) or (
            since >= self.full_at_most_s
        ):
            gc.collect()
            self.last_full = self.clock()
            self.quiet = 0
            return True
        return False


def _schedule(collector: Collector) -> None:
    from twisted.internet import reactor

    def tick(due: float) -> None:
        collector.tick(due)
        nxt = time.monotonic() + TICK_S
        reactor.callLater(TICK_S, tick, nxt)

    reactor.callLater(TICK_S, tick, time.monotonic() + TICK_S)


class _Reply:
    """A connection's ASGI ``send``: daphne's ``handle_reply`` for it, and
    ``text_now``, which writes a websocket text frame there and then.

    ``text_now`` is what ``handle_reply`` does for a ``websocket.send``, less
    the coroutine: the channel layer's reader calls it for every socket of a
    group (``dispatch/consumers.py``, ``config/pubsub.py``), outside any task.
    """

    __slots__ = ("server", "protocol")

    def __init__(self, server, protocol) -> None:
        self.server = server
        self.protocol = protocol

    async def __call__(self, message) -> None:
        await self.server.handle_reply(self.protocol, message)

    def text_now(self, text: str) -> bool:
        """Write ``text`` if the socket is open; whether it was."""
        protocol = self.protocol
        connection = self.server.connections.get(protocol)
        if (
            connection is None
            or connection.get("disconnected")
            or protocol.state != protocol.STATE_OPEN
        ):
            return False
        protocol.sendMessage(text.encode(), False)
        return True


def _lean_server():
    """daphne's server and websocket protocol, holding less per socket.

    Measured with ``bench/city.py --tracemalloc`` (1,000 sockets, one daphne),
    of ~32 KB of Python objects per socket:

    - each connection's input queue was an ``asyncio.Queue``: three deques
      and an ``Event``, ~3 KB before a message arrives. Here the small queue
      the channel layer's sockets use (``config.pubsub._Inbox``);
    - the handshake's headers, kept three times over (autobahn's, its
      request's, the scope's), are dropped once the socket is open;
    - daphne's walks over every connection (reaping, timeouts) run a fifth as
      often;
    - autobahn copies its 29 options from the factory onto every connection
      (unless the class has them), which took each protocol's attributes past
      a dict size step: 3.3 KB instead of 1.6 KB. Here the class has them,
      copied once from the one factory.
    """
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import reactor

    from config.pubsub import _Inbox

    class Protocol(WebSocketProtocol):
        _options_of = None

        def _connectionMade(self) -> None:
            cls = type(self)
            if cls._options_of is not self.factory:
                for name in self.CONFIG_ATTRS:
                    value = getattr(self.factory, name)
                    # A function option (perMessageCompressionAccept) must not
                    # become a method of the protocol.
                    if isinstance(value, types.FunctionType):
                        value = staticmethod(value)
                    setattr(cls, name, value)
                cls._options_of = self.factory
            super()._connectionMade()

        def onMessage(self, payload, isBinary) -> None:
            # daphne's, but a text frame is offered to the consumer first
            # (``MemberConsumer.receive_now``: a phone's receipt), as the
            # channel layer offers pushed frames (config.pubsub ``_Inbox``).
            queue = self.application_queue
            if isBinary or self.muted or not isinstance(queue, _Inbox):
                super().onMessage(payload, isBinary)
                return
            self.last_ping = time.time()
            queue.offer({"type": "websocket.receive", "text": payload.decode("utf8")})

        def onOpen(self) -> None:
            super().onOpen()
            # The handshake is over, and the app read what it needed of its
            # headers (the cookies, the Origin) before it accepted. They were
            # held three times for the socket's life: autobahn's, its request's
            # and the scope's (~3 KB).
            self.http_headers = {}
            self.http_request_data = b""
            self.request.headers = {}
            self.clean_headers.clear()

    class LeanServer(Server):
        # daphne walks every connection each second (application_checker) and
        # every 2 s (timeout_checker): at 5,000 sockets a sixth of the process's
        # time in the wave-one alerts (bench/city.py --profile), each walk
        # holding the event loop. Here every 5th time: reaping an ended socket's
        # application 5 s late and checking timeouts of 60 s every 10 s.
        CHECK_EVERY = 5
        _app_checks = 0
        _timeout_checks = 0

        def application_checker(self) -> None:
            self._app_checks += 1
            if self._app_checks % self.CHECK_EVERY:
                reactor.callLater(1, self.application_checker)
                return
            super().application_checker()

        def timeout_checker(self) -> None:
            self._timeout_checks += 1
            if self._timeout_checks % self.CHECK_EVERY:
                reactor.callLater(2, self.timeout_checker)
                return
            super().timeout_checker()

        @property
        def ws_factory(self):
            return self._ws_factory

        @ws_factory.setter
        def ws_factory(self, factory) -> None:
            # Server.run makes the factory and sets its options.
            factory.protocol = Protocol
            self._ws_factory = factory

        def create_application(self, protocol, scope):
            # daphne's own, but for the queue.
            assert "application_instance" not in self.connections[protocol]
            input_queue = _Inbox()
            scope.setdefault("asgi", {"version": "3.0"})
            application_instance = self.application(
                scope=scope, receive=input_queue.get, send=_Reply(self, protocol)
            )
            if protocol not in self.connections:
                return None
            self.connections[protocol]["application_instance"] = asyncio.ensure_future(
                application_instance, loop=asyncio.get_event_loop()
            )
            return input_queue

    return LeanServer


def main(argv: list[str] | None = None) -> None:
    # daphne.server installs Twisted's asyncio reactor as it is imported.
    from daphne.cli import CommandLineInterface

    collector = Collector()
    collector.start()
    _schedule(collector)
    cli = CommandLineInterface()
    cli.server_class = _lean_server()
    cli.run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
