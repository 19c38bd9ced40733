"""Roster admin pages at full city size: prints figures, asserts nothing.

    .venv/bin/python bench/roster_admin.py [--db PATH] [--runs 7]

Uses (or, when it has no units yet, migrates and seeds with ``seed_demo``: the
full demo city, 23,000 units / 245,500 members, about half a minute) an SQLite
file, by default in the system temp dir so a second run reuses it. Then
times the admin list pages, searches, filters, autocomplete and the readiness
overview with Django's test Client as a district admin (天河区) and as a city
admin (a non-superuser ``city_admin`` role, so every scope filter is on the
path), DEBUG off. Each page is fetched once to warm up, then ``--runs`` times;
the median and the worst are printed with the page's query count.

The target (issue 5): every page under 300 ms.
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
TARGET_MS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--db", default=str(Path(tempfile.gettempdir()) / "roster_bench" / "db.sqlite3")
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{db}",
        "DATA_DIR": str(db.parent),
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-" + "x" * 50,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    os.environ.update(env)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], check=True, env=env)
    seeded = subprocess.run(
        [
            *manage,
            "shell",
            "--no-imports",
            "-c",
            "from units.models import Unit; print(Unit.objects.count())",
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    if int(seeded.stdout.split()[-1] or 0) < 20_000:
        print("seeding the full demo city (seed_demo) ...", flush=True)
        started = time.monotonic()
        subprocess.run([*manage, "seed_demo", "--reset", "-v0"], check=True, env=env)
        print(f"  seeded in {time.monotonic() - started:.0f} s", flush=True)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from units.models import Equipment, Member, Region, StaffProfile, Unit

    print(
        f"database: {connection.vendor}, {Unit.objects.count():,} units, "
        f"{Member.objects.count():,} members, {Equipment.objects.count():,} kit rows"
    )
    user_model = get_user_model()
    city = Region.objects.get(level=Region.Level.CITY)
    tianhe = Region.objects.get(code="440106")
    street = Region.objects.filter(parent=tianhe).order_by("code").first()

    def staff(username: str, role: str, region: Region):
        user, _ = user_model.objects.get_or_create(username=username, defaults={"is_staff": True})
        StaffProfile.objects.update_or_create(user=user, defaults={"role": role, "region": region})
        return user

    users = {
        "district admin": staff("bench_district", StaffProfile.Role.DISTRICT_ADMIN, tianhe),
        "city admin": staff("bench_city", StaffProfile.Role.CITY_ADMIN, city),
    }
    unit = Unit.objects.filter(region__parent=tianhe).order_by("code")[500]
    pages = [
        ("units list", reverse("admin:units_unit_changelist"), {}),
        ("units not ready", reverse("admin:units_unit_changelist"), {"ready": "0"}),
        ("units of a street", reverse("admin:units_unit_changelist"), {"region": street.code}),
        ("units search", reverse("admin:units_unit_changelist"), {"q": unit.code}),
        ("unit page", reverse("admin:units_unit_change", args=[unit.pk]), {}),
        ("members list", reverse("admin:units_member_changelist"), {}),
        ("members on duty", reverse("admin:units_member_changelist"), {"on_duty__exact": "1"}),
        ("members search", reverse("admin:units_member_changelist"), {"q": "陈"}),
        ("kit list", reverse("admin:units_equipment_changelist"), {}),
        ("kit expiring", reverse("admin:units_equipment_changelist"), {"kit": "expiring"}),
        (
            "kit inspection due",
            reverse("admin:units_equipment_changelist"),
            {"kit": "inspection_due"},
        ),
        (
            "unit autocomplete",
            reverse("admin:autocomplete"),
            {"app_label": "units", "model_name": "member", "field_name": "unit", "term": "天河"},
        ),
        ("readiness overview", reverse("admin:units_unit_readiness"), {}),
        ("readiness of a district", reverse("admin:units_unit_readiness"), {"region": "440106"}),
        ("readiness of a street", reverse("admin:units_unit_readiness"), {"region": street.code}),
    ]
    print(f"\n{'page':<26} {'role':<15} {'median ms':>9} {'max ms':>8} {'queries':>7}")
    worst = 0.0
    for label, url, params in pages:
        for role, user in users.items():
            client = Client()
            client.force_login(user)
            response = client.get(url, params)
            assert response.status_code == 200, (label, role, response.status_code)
            times = []
            for _ in range(args.runs):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get(url, params)
                    times.append((time.perf_counter() - started) * 1000)
            median = statistics.median(times)
            worst = max(worst, median)
            flag = "" if median < TARGET_MS else "  <-- over target"
            print(
                f"{label:<26} {role:<15} {median:>9.0f} {max(times):>8.0f} "
                f"{len(queries.captured_queries):>7}{flag}"
            )
    print(f"\nslowest median: {worst:.0f} ms (target {TARGET_MS} ms)")


if __name__ == "__main__":
    main()
