"""Raise an incident from the console, e.g. next to a demo member's unit."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dispatch.models import Incident
from dispatch.services import incident_create
from units.models import Member


class Command(BaseCommand):
    help = "Raise an incident at --lat/--lon or next to the unit of member --near PHONE."

    def add_arguments(self, parser):
        parser.add_argument(
            "--near", metavar="PHONE", help="a member's phone: raise it at their unit"
        )
        parser.add_argument("--lat", type=float)
        parser.add_argument("--lon", type=float)
        parser.add_argument("--kind", default=Incident.Kind.KNIFE, choices=Incident.Kind.values)
        parser.add_argument("--severity", type=int, default=2, choices=[1, 2, 3, 4])
        parser.add_argument("--address", default="")
        parser.add_argument("--description", default="")

    def handle(self, *args, near, lat, lon, kind, severity, address, description, **options):
        if near:
            member = Member.objects.select_related("unit").filter(phone=near).first()
            if member is None:
                raise CommandError(f"--near: no member with phone {near}")
            # About 30 m north-east of the unit, like a passer-by reporting outside it.
            lat, lon = member.unit.lat + 0.0002, member.unit.lon + 0.0002
            address = address or f"{member.unit.name}门口"
        if lat is None or lon is None:
            raise CommandError("give --near PHONE or both --lat and --lon")
        try:
            result = incident_create(
                kind=kind,
                severity=severity,
                lat=lat,
                lon=lon,
                source=Incident.Source.CONSOLE,
                address=address,
                description=description,
            )
        except ValidationError as exc:
            errors = getattr(exc, "message_dict", None) or exc.messages
            raise CommandError(f"invalid incident: {errors}") from exc
        incident = result.incident
        self.stdout.write(
            self.style.SUCCESS(
                f"Incident #{incident.pk} ({incident.get_kind_display()}) at {lat:.6f},{lon:.6f}"
            )
        )
        if not result.candidates:
            self.stdout.write("  no ready unit within the wave-1 radius; escalation will widen it")
        for i, c in enumerate(result.candidates, 1):
            self.stdout.write(
                f"  {i}. unit {c.unit_id}  {c.distance_m:7.0f} m  eta {c.eta_s:4d} s"
                f"  on duty {c.on_duty}{'  kit fits' if c.kit_fit else ''}"
            )
