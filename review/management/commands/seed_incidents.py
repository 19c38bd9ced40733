"""``manage.py seed_incidents --count N``: past incidents with timelines for review."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from review.seeding import DEFAULT_SEED, MAX_COUNT, SeedIncidentsError, incidents_seed


class Command(BaseCommand):
    help = "Seed realistic past incidents (timelines, waves, dispatches) on the seeded city."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=10_000, help=f"1..{MAX_COUNT:,}")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
        parser.add_argument("--days", type=int, default=365, help="spread over this many past days")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, count, seed, days, no_progress, **options):
        try:
            result = incidents_seed(
                count=count, seed=seed, days=days, progress=None if no_progress else sys.stderr
            )
        except SeedIncidentsError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"seeded {result.incidents:,} incidents, {result.dispatches:,} dispatches, "
            f"{result.events:,} events in {result.seconds} s"
        )
