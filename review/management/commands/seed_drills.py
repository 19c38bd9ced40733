"""``manage.py seed_drills``: past no-notice drills with per-unit timings for review."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from review.seeding import DEFAULT_SEED, SeedIncidentsError
from review.seeding_drills import DISTRICT_DRILLS, DRILL_DAYS, STREET_DRILLS, drills_seed


class Command(BaseCommand):
    help = "Seed past drills (拉动测试) on the seeded city: a few per district, per-unit timings."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=DRILL_DAYS, help="over this many past days")
        parser.add_argument(
            "--district-drills", type=int, default=DISTRICT_DRILLS, help="per district, all units"
        )
        parser.add_argument(
            "--street-drills", type=int, default=STREET_DRILLS, help="per district, one street each"
        )
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)

    def handle(self, *args, days, district_drills, street_drills, seed, **options):
        try:
            result = drills_seed(
                days=days, district_drills=district_drills, street_drills=street_drills, seed=seed
            )
        except SeedIncidentsError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"seeded {result.drills} drills, {result.dispatches:,} unit alerts, "
            f"{result.events:,} events in {result.seconds} s"
        )
