"""Seed a Guangzhou-like demo city (see docs/seed.md)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from units.seeding import (
    DEFAULT_SEED,
    DEFAULT_UNITS,
    DEMO_PASSWORD,
    MAX_UNITS,
    SeedError,
    demo_city_seed,
)


class Command(BaseCommand):
    help = (
        "Seed a Guangzhou-like demo city on the real district/street data: 1 city, "
        "11 districts, 178 streets/towns (142 街道, 34 镇, 2 other areas), units with "
        "members, duty and full kits, and "
        "the demo logins (admin, tianhe_admin, yuexiu_street, reviewer, station_tianhe). "
        "Deterministic for a given --seed, all in one transaction. A database that "
        "already has units is left alone (a message says so); --reset wipes units, "
        "members and equipment and seeds again. Regions and logins are updated in "
        "place, never duplicated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--units",
            type=int,
            default=DEFAULT_UNITS,
            help=f"units to create, 1..{MAX_UNITS:,} (default {DEFAULT_UNITS:,}: the full city); "
            "members, on-duty members and equipment scale with it",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=DEFAULT_SEED,
            help=f"random seed, >= 0 (default {DEFAULT_SEED}); same seed, same city",
        )
        parser.add_argument(
            "--password",
            default=DEMO_PASSWORD,
            help="password of the demo staff logins when they are created (or with --reset)",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="wipe all units, members and equipment first and seed again "
            "(refused while incidents refer to units)",
        )

    def handle(
        self, *args, units: int, seed: int, password: str, reset: bool = False, **options
    ) -> None:
        verbosity = options.get("verbosity", 1)
        try:
            result = demo_city_seed(
                units=units,
                seed=seed,
                password=password,
                reset=reset,
                # tqdm redraws a line with \r; Django's OutputWrapper would add newlines.
                progress=sys.stderr if verbosity >= 1 else None,
            )
        except SeedError as e:
            raise CommandError(str(e)) from e
        counts = (
            f"{result.regions:,} regions, {result.units:,} units, {result.members:,} members "
            f"({result.on_duty:,} on duty), {result.equipment:,} equipment rows "
            f"({result.near_expiry:,} expiring within 30 days)"
        )
        if not result.seeded:
            self.stdout.write(self.style.WARNING(f"{result.message.capitalize()}. Now: {counts}."))
            return
        self.stdout.write(
            self.style.SUCCESS(f"Seeded the demo city in {result.seconds:.1f} s: {counts}.")
        )
        if verbosity >= 1:
            self.stdout.write("Logins, member phones and the API token: manage.py demo_logins")
