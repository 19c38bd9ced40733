"""Full-city roster import: prints figures, asserts nothing.

    .venv/bin/python bench/roster_import.py [--source PATH] [--skip-xlsx]

1. Source: the full demo city (23,000 units, 245,500 members) in an SQLite file
   (by default the one bench/roster_admin.py keeps in the temp dir; seeded
   with ``seed_demo`` when it has no units yet).
2. A copy of it (``VACUUM INTO``) is the target. From the target the files are
   exported as an admin would (units.csv, members.csv, and one city.xlsx with
   both sheets), then its units, members and kit (and their history) are
   wiped, leaving the regions and logins.
3. Timed, as the city admin, DEBUG off, with history rows by that user:
   the two CSVs committed one after the other; the wipe again and the one
   workbook committed; a dry run of the CSVs against the now full roster
   (every row unchanged).

The target (issue 5): a full-city file imports in under 120 s on this machine.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_S = 120


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    tmp = Path(tempfile.gettempdir()) / "roster_bench"
    parser.add_argument("--source", default=str(tmp / "db.sqlite3"))
    parser.add_argument("--skip-xlsx", action="store_true", help="CSV only (faster)")
    args = parser.parse_args()

    source = Path(args.source)
    source.parent.mkdir(parents=True, exist_ok=True)
    base_env = {
        **os.environ,
        "DATA_DIR": str(source.parent),
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-" + "x" * 50,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env = {**base_env, "DATABASE_URL": f"sqlite:///{source}"}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], check=True, env=env)
    count = subprocess.run(
        [
            *manage,
            "shell",
            "--no-imports",
            "-c",
            "from units.models import Unit; print(Unit.objects.count())",
        ],  # noqa: E501
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    if int(count.stdout.split()[-1]) < 20_000:
        print("seeding the full demo city (seed_demo) ...", flush=True)
        subprocess.run([*manage, "seed_demo", "--reset", "-v0"], check=True, env=env)

    target = source.parent / "import_target.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(source) as db:
        db.execute("VACUUM INTO ?", (str(target),))
    os.environ.update({**base_env, "DATABASE_URL": f"sqlite:///{target}"})

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from units import importing
    from units.models import Equipment, Member, Region, StaffProfile, Unit

    city = Region.objects.get(level=Region.Level.CITY)
    user, _ = get_user_model().objects.get_or_create(
        username="bench_city", defaults={"is_staff": True}
    )
    StaffProfile.objects.update_or_create(
        user=user, defaults={"role": StaffProfile.Role.CITY_ADMIN, "region": city}
    )
    print(
        f"source: {Unit.objects.count():,} units, {Member.objects.count():,} members, "
        f"{Equipment.objects.count():,} kit rows"
    )

    files: dict[str, bytes] = {}
    for kind, name in ((importing.UNIT, "units.csv"), (importing.MEMBER, "members.csv")):
        started = time.monotonic()
        files[name] = b"".join(importing.roster_export_csv(user=user, kind=kind))
        took = time.monotonic() - started
        print(f"export {name:<12} {len(files[name]) / 1e6:6.1f} MB in {took:5.1f} s")
    if not args.skip_xlsx:
        started = time.monotonic()
        files["city.xlsx"] = importing.roster_export_xlsx(
            user=user, kinds=(importing.UNIT, importing.MEMBER)
        )
        took = time.monotonic() - started
        print(f"export city.xlsx    {len(files['city.xlsx']) / 1e6:6.1f} MB in {took:5.1f} s")

    def wipe() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            for model in (Equipment, Member, Unit):
                for table in (model._meta.db_table, model.history.model._meta.db_table):
                    cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")  # noqa: S608

    def load(name: str, dry_run: bool = False) -> float:
        started = time.monotonic()
        report = importing.roster_import(
            data=files[name], filename=name, user=user, dry_run=dry_run
        )
        seconds = time.monotonic() - started
        counts = ", ".join(
            f"{s.kind} {s.new:,} new / {s.updated:,} updated / {s.unchanged:,} unchanged"
            for s in report.sheets
        )
        state = "dry run" if dry_run else ("committed" if report.committed else "NOT committed")
        print(f"  {name:<12} {seconds:6.1f} s  {state}: {counts}; {len(report.errors)} errors")
        return seconds

    print("\nimport into an empty roster (regions and logins kept):")
    wipe()
    csv_total = load("units.csv") + load("members.csv")
    histories = Member.history.filter(history_user=user).count()
    print(f"  CSV total    {csv_total:6.1f} s  (target {TARGET_S} s)")
    print(f"  member history rows by the importing user: {histories:,}")
    if not args.skip_xlsx:
        wipe()
        xlsx = load("city.xlsx")
        print(f"  XLSX total   {xlsx:6.1f} s  (target {TARGET_S} s)")
    print("\nre-import of the same files (every row unchanged, dry run):")
    load("units.csv", dry_run=True)
    load("members.csv", dry_run=True)


if __name__ == "__main__":
    main()
