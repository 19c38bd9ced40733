"""daphne, with the garbage collector set for a process holding thousands of sockets.

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

import gc
import sys
import time
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


def main(argv: list[str] | None = None) -> None:
    # daphne.server installs Twisted's asyncio reactor as it is imported.
    from daphne.cli import CommandLineInterface

    collector = Collector()
    collector.start()
    _schedule(collector)
    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
