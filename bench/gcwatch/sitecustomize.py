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

    def _timed(phase: str, info: dict) -> None:
        if phase == "start":
            _started[:] = time.perf_counter(), time.thread_time()
            return
        ms = (time.perf_counter() - _started[0]) * 1000
        if ms >= 1:
            cpu = (time.thread_time() - _started[1]) * 1000
            _log.write(
                f"{time.time():.3f} {info['generation']} {ms:.1f} {info['collected']} {cpu:.1f}\n"
            )

    gc.callbacks.append(_timed)
