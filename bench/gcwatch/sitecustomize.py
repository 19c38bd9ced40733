"""Garbage collector pauses of a process the city bench starts (``--gc``).

Put on PYTHONPATH by ``bench/city.py``: Python imports ``sitecustomize`` at
start-up. Each collection of at least a millisecond becomes a line of
``$BENCH_GC_DIR/gc-<pid>.log``: wall time, generation, milliseconds (wall),
objects collected, milliseconds of this thread's CPU (a loaded machine
stretches a pause beyond the collector's own work). A daphne holding
thousands of sockets holds millions of objects, and a full collection walks
every one while no frame is written.
"""

import gc
import os
import time

_dir = os.environ.get("BENCH_GC_DIR")
if _dir:
    _log = open(os.path.join(_dir, f"gc-{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115
    _started = [0.0, 0.0]
    # BENCH_GC_YOUNG=1: also the size of each young generation collected (slow).
    _young = bool(os.environ.get("BENCH_GC_YOUNG"))
    _sizes: list[int] = []

    def _timed(phase: str, info: dict) -> None:
        if phase == "start":
            if _young and info["generation"] < 2:
                _sizes[:] = [len(gc.get_objects(g)) for g in range(info["generation"] + 1)]
            _started[:] = time.perf_counter(), time.thread_time()
            return
        ms = (time.perf_counter() - _started[0]) * 1000
        if ms >= 1:
            cpu = (time.thread_time() - _started[1]) * 1000
            _log.write(
                f"{time.time():.3f} {info['generation']} {ms:.1f} {info['collected']} {cpu:.1f}"
                + (f" {' '.join(map(str, _sizes))}" if _young else "")
                + "\n"
            )

    gc.callbacks.append(_timed)

# BENCH_TRACEMALLOC=1: trace allocations from start-up; each SIGUSR1 writes a
# snapshot to $BENCH_GC_DIR/snap-<pid>-<n>.pickle (memory per socket: which
# lines hold it; bench/city.py --tracemalloc).
if _dir and os.environ.get("BENCH_TRACEMALLOC"):
    import signal
    import tracemalloc

    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "1")))
    _snaps = [0]

    def _snapshot(signum, frame) -> None:
        _snaps[0] += 1
        if os.environ.get("BENCH_TRACEMALLOC_COLLECT"):
            gc.collect()  # garbage awaiting a full collection is not counted
        path = os.path.join(_dir, f"snap-{os.getpid()}-{_snaps[0]}.pickle")
        tracemalloc.take_snapshot().dump(path)

    signal.signal(signal.SIGUSR1, _snapshot)
