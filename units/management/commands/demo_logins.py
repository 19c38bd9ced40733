"""Print the demo city's logins: staff accounts, member phones, the admin API token."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from units.seeding import DEMO_PASSWORD, DEMO_SPOT_LAT, DEMO_SPOT_LON, demo_logins_list


class Command(BaseCommand):
    help = (
        "List the demo staff logins (made by seed_demo), on-duty member phones at the "
        "units nearest a point (default: Tianhe Sports Centre) and the admin's API token."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--members", type=int, default=5, help="member phones to list")
        parser.add_argument("--lat", type=float, default=DEMO_SPOT_LAT)
        parser.add_argument("--lon", type=float, default=DEMO_SPOT_LON)

    def handle(self, *args, members: int, lat: float, lon: float, **options) -> None:
        if members < 0:
            raise CommandError(f"--members must be >= 0, got {members}")
        logins = demo_logins_list(lat=lat, lon=lon, limit=members)
        if not logins.staff:
            raise CommandError("No demo logins here: run `manage.py seed_demo` first.")
        out = self.stdout
        out.write(f"Staff (password as given to seed_demo, default {DEMO_PASSWORD}):")
        for s in logins.staff:
            out.write(f"  {s.username:<16} {s.role} / {s.region}")
        out.write(f"\nOn-duty members near ({lat:.4f}, {lon:.4f}), log in by phone:")
        for m in logins.members:
            out.write(
                f"  {m.phone}  {m.name:<4} {m.distance_m:>6.0f} m  {m.unit_code} {m.unit_name}"
            )
        if not logins.members:
            out.write("  (none on duty nearby)")
        out.write(f"\nAPI token (admin): {logins.admin_token or '(none: run seed_demo)'}")
        if logins.admin_token:
            out.write(f"  curl -H 'Authorization: Token {logins.admin_token}' ...")
