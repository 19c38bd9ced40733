"""Review report benchmark: seeds a throwaway database and prints how long the
district report takes at scale. Prints figures; asserts nothing.

    .venv/bin/python bench/review_report.py                  # 100,000 incidents (SQLite, ~2 min)
    .venv/bin/python bench/review_report.py --full           # 1,000,000 incidents (~15 min)
    .venv/bin/python bench/review_report.py --database-url postgres://u:p@127.0.0.1/db_bench
    .venv/bin/python bench/review_report.py --reuse DIR      # time again on a kept data dir
    .venv/bin/python bench/review_report.py --full --seed-only   # the seed's figure alone

Steps: migrate, ``seed_demo`` (23,000 units), ``seed_incidents --count N``
(which writes the review's roll-up facts too), the beat task that stores the
readiness index, then as the demo ``reviewer`` (city scope): the district report
of 天河区 (page and API), the city report, the incident list page, and the whole
report computed live (facts ignored), for the last 90 days and the whole year;
the index pages (all 23,000 units, streets, districts); then a city-wide drill
(every unit, in batches, eager Celery) and its report. Each figure is the median
of 5 runs; the goals of issue 14 are printed beside theirs, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Issue 14's goals on this machine.
REPORT_GOAL_S = 1.0  # the city-wide report page at 1M incidents
INDEX_GOAL_S = 1.0  # the index over all 23,000 units
SEED_GOAL_S = 120.0  # seed_incidents --count 1000000


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"   (load {one:.1f} {five:.1f} {fifteen:.1f})"


def _phases_timed() -> dict[str, list]:
    """Wrap the seeder's steps to sum their wall and CPU time: the statements
    that make each table, the parameter and roll-up rows sent, the index builds,
    the commits. On PostgreSQL the steps run on several threads at once: their
    wall times are summed over the threads, and CPU is the whole process's."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    from review import seeding, seeding_sql

    totals: dict[str, list] = {}
    lock = threading.Lock()

    def timed(owner, attr, name_of):
        fn = getattr(owner, attr)

        def wrapper(*args, **kwargs):
            t, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:  # the seeder's threads
                    entry = totals.setdefault(name_of(*args), [0.0, 0.0, 0])
                    entry[0] += time.perf_counter() - t
                    entry[1] += time.process_time() - c
                    entry[2] += 1

        setattr(owner, attr, wrapper)

    timed(seeding_sql, "_insert", lambda model, *a: f"made by the database: {model.__name__}")
    timed(seeding._Writer, "send", lambda _self, table, *a: f"sent: {table}")
    # PostgreSQL: binary; SQLite: the text rows, also counted as "sent".
    timed(seeding._Writer, "write_params", lambda _self, table, *a: f"parameters: {table}")
    timed(seeding, "indexes_restore", lambda *a: "indexes built again")
    timed(seeding._RollupSums, "write", lambda *a: "roll-ups (sent ones included)")
    timed(BaseDatabaseWrapper, "_commit", lambda *a: "commits")
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 incidents")
    parser.add_argument("--units", type=int, default=23_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--reuse", default="", help="a data dir seeded by an earlier run")
    parser.add_argument("--data-dir", default="", help="seed into this (new) data dir, kept")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--profile", default="", help="print a pyinstrument profile of one GET of this URL"
    )
    parser.add_argument(
        "--no-drill", dest="drill", action="store_false", help="skip the city drill"
    )
    parser.add_argument(
        "--seed-only", action="store_true", help="stop after seed_incidents' figure"
    )
    parser.add_argument(
        "--phases", action="store_true", help="print seed_incidents' time per phase"
    )
    parser.add_argument(
        "--no-live",
        dest="live",
        action="store_false",
        help="skip the (for comparison) timings computed live, without roll-ups",
    )
    args = parser.parse_args()
    count = 1_000_000 if args.full else args.count

    data_dir = args.reuse or args.data_dir or tempfile.mkdtemp(prefix="review-bench-")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    os.environ["DATA_DIR"] = data_dir
    os.environ.setdefault("CHANNEL_LAYER_BACKEND", "channels.layers.InMemoryChannelLayer")
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from dispatch.models import Incident
    from review import readiness, selectors
    from review.seeding import incidents_seed
    from units.seeding import demo_city_seed

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"database: {engine} ({data_dir if engine == 'sqlite3' else args.database_url})")
    call_command("migrate", verbosity=0)  # a kept data dir may predate a migration
    if not args.reuse:
        t = time.perf_counter()
        demo_city_seed(units=args.units)
        print(f"seed_demo {args.units:,} units: {time.perf_counter() - t:.1f} s")
        phases = _phases_timed() if args.phases else None
        t, cpu = time.perf_counter(), time.process_time()
        result = incidents_seed(count=count, progress=sys.stderr)
        took, cpu = time.perf_counter() - t, time.process_time() - cpu
        goal = SEED_GOAL_S * count / 1_000_000
        # CPU time beside the wall time: on a shared 2-core machine the wall time
        # is mostly the load (on PostgreSQL the server's own CPU is not in it).
        print(
            f"seed_incidents {result.incidents:,} incidents ({result.dispatches:,} dispatches, "
            f"{result.events:,} events): {took:.1f} s (this process's CPU {cpu:.1f} s)   "
            f"goal {goal:.0f} s ({took / goal:.2f}x){load()}"
        )
        for name, (wall, cpu_s, calls) in sorted((phases or {}).items(), key=lambda p: -p[1][0]):
            print(f"  {name:<38} wall {wall:7.1f} s   CPU {cpu_s:7.1f} s   x{calls}")
    if args.seed_only:
        connection.close()
        return
    from review import services

    t = time.perf_counter()
    snapshots = services.index_snapshots_refresh()
    print(
        f"beat: readiness index stored ({snapshots} snapshots) in {time.perf_counter() - t:.1f} s"
    )
    total = Incident.objects.count()
    print(f"incidents in the database: {total:,}")

    user = get_user_model().objects.get(username="reviewer")
    client = Client()
    client.force_login(user)
    today = time.strftime("%Y-%m-%d")

    def timed(label: str, fn, goal_s: float | None = None) -> None:
        fn()  # warm: caches, first query plans
        runs = []
        for _ in range(args.runs):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        median, worst = statistics.median(runs), max(runs)
        versus = ""
        if goal_s is not None:
            verdict = "meets" if median <= goal_s else "MISSES"
            versus = f"   goal {goal_s * 1000:.0f} ms: {verdict} ({median / goal_s:.2f}x)"
        print(
            f"  {label:<58} median {median * 1000:7.0f} ms   max {worst * 1000:7.0f} ms"
            f"{versus}{load()}"
        )

    def get(url: str):
        def fetch():
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            return response

        return fetch

    for days, since in ((90, None), (365, "2000-01-01")):
        span = f"last {days} days" if since is None else "whole year"
        year_ago = time.strftime("%Y-%m-%d", time.localtime(time.time() - 366 * 86400))
        q = f"&since={year_ago}&until={today}" if since else ""
        print(f"{span}:")
        timed(
            "district report page /review/report/?district=440106",
            get(f"/review/report/?district=440106{q}"),
        )
        timed(
            "district report API /api/v1/reports/response-times/",
            get(f"/api/v1/reports/response-times/?district=440106{q}"),
        )
        timed("city report page (11 districts)", get(f"/review/report/?{q[1:]}"), REPORT_GOAL_S)
        timed("incident list page, district, page 1", get(f"/review/incidents/?district=440106{q}"))

        def live_report(since=year_ago if since else None):
            filters = selectors.incident_filter_build(user=user, district="440106", since=since)
            # Facts ignored: the same report straight from the incident tables.
            selectors.incident_stats(
                qs=selectors.incident_list(user=user, filters=filters), by="street"
            )

        if args.live:
            timed("(for comparison) district by street, live, no roll-ups", live_report)

    print("readiness index, default period (stored by beat):")
    for level in ("unit", "street", "district"):
        timed(
            f"index page /review/index/?level={level}",
            get(f"/review/index/?level={level}"),
            INDEX_GOAL_S if level == "unit" else None,
        )
    if args.live:
        timed(
            "(for comparison) unit index computed live, no snapshot",
            lambda: readiness.index_scores(user=user, level="unit", stored=False),
        )
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
        get(args.profile)()
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))

    if args.drill:
        # A city-wide drill, batches run inline (eager Celery): every active unit.
        from django.conf import settings as dj

        from review import services
        from review.models import Drill

        dj.CELERY_TASK_ALWAYS_EAGER = True
        dj.NOTIFY_CHAIN = []  # the SMS/voice chain is timed by the member app, not here
        from config.celery import app

        app.conf.task_always_eager = True
        admin = get_user_model().objects.get(username="admin")
        t = time.perf_counter()
        drill = services.drill_start(user=admin, scope="city")
        drill = Drill.objects.get(pk=drill.pk)
        print(
            f"city-wide drill: {drill.units_alerted:,} units alerted in "
            f"{drill.incident.waves.count()} batches, {time.perf_counter() - t:.1f} s"
        )
        timed("drill report page, all units", get(f"/review/drills/{drill.pk}/"))
        timed("drill league tables page", get("/review/drills/"))
    connection.close()


if __name__ == "__main__":
    main()
