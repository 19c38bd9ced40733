"""Review refresh benchmark: how long a member's write waits while the review's
facts refresh runs (issue 10, fault 5). Prints figures; asserts nothing.

    .venv/bin/python bench/review_refresh.py                 # 5,000 recent incidents (SQLite)
    .venv/bin/python bench/review_refresh.py --count 20000

Seeds a throwaway SQLite database (``seed_demo`` units, ``seed_incidents`` over the
last day, so every incident is inside the refresh's resync window). Then, for
each case, the refresh (``review.services.facts_sync``) runs in its own process,
as it does in the Celery worker, while this process makes a member write every
20 ms: a one-row update in its own transaction (IMMEDIATE, like an accept), which
waits for any write transaction the refresh holds. Cases:

- idle: no refresh (the baseline);
- steady: the minutely refresh with nothing changed;
- backfill: every fact missing (the first refresh after a restore): it writes all.

For each case: the write latency p50 / p99 / max in ms, and the refresh's time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup(data_dir: str) -> None:
    os.environ["DATA_DIR"] = data_dir
    os.environ.pop("DATABASE_URL", None)  # the throwaway SQLite file in DATA_DIR
    os.environ.setdefault("CHANNEL_LAYER_BACKEND", "channels.layers.InMemoryChannelLayer")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def refresh_only(data_dir: str) -> None:
    """The child process: one refresh, then its duration on stdout."""
    _setup(data_dir)
    from review import services

    started = time.perf_counter()
    services.facts_sync()
    print(f"{time.perf_counter() - started:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="incidents of the last day")
    parser.add_argument("--units", type=int, default=3000)
    parser.add_argument("--refresh-only", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.refresh_only:
        refresh_only(args.refresh_only)
        return

    data_dir = tempfile.mkdtemp(prefix="review-refresh-bench-")
    _setup(data_dir)
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from review.models import DispatchFact, IncidentFact, UnitWeekly, WeeklyRollup
    from units.models import Member

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("seed_demo", units=args.units, password="bench-pass-1", verbosity=0)  # noqa: S106
    call_command("seed_incidents", "--count", str(args.count), "--days", "1", "--no-progress")
    took = time.perf_counter() - started
    print(f"seeded {args.units} units, {args.count} incidents in {took:.0f} s")
    member_ids = list(Member.objects.values_list("pk", flat=True)[:200])

    def member_write(i: int) -> float:
        t0 = time.perf_counter()
        with transaction.atomic():
            Member.objects.filter(pk=member_ids[i % len(member_ids)]).update(
                duty_since=timezone.now()
            )
        return time.perf_counter() - t0

    def measure(case: str, refresh: bool, seconds: float = 3.0) -> None:
        latencies: list[float] = []
        took = "-"
        child = None
        if refresh:
            child = subprocess.Popen(
                [sys.executable, __file__, "--refresh-only", data_dir],
                stdout=subprocess.PIPE,
                text=True,
            )
        deadline = time.perf_counter() + seconds
        i = 0
        while (child is not None and child.poll() is None) or time.perf_counter() < deadline:
            latencies.append(member_write(i))
            i += 1
            time.sleep(0.02)
        if child is not None:
            took = child.stdout.read().strip().splitlines()[-1] + " s"
        ms = sorted(x * 1000 for x in latencies)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(
            f"{case:9} writes {len(ms):5}  p50 {statistics.median(ms):7.1f} ms  "
            f"p99 {p99:7.1f} ms  max {ms[-1]:7.1f} ms  refresh {took}"
        )

    measure("idle", refresh=False)
    measure("steady", refresh=True)
    for model in (IncidentFact, DispatchFact, WeeklyRollup, UnitWeekly):
        model.objects.all().delete()
    measure("backfill", refresh=True)


if __name__ == "__main__":
    main()
