"""Keep the dispatch index fresh when the roster is edited one row at a time.

Bulk writers (seed, import) call ``roster_changed(unit_ids=None)`` themselves.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Equipment, Member, Unit
from .services import roster_changed


@receiver([post_save, post_delete], sender=Unit)
def _unit_changed(sender, instance: Unit, **kwargs) -> None:
    roster_changed(unit_ids=[instance.pk])


@receiver([post_save, post_delete], sender=Member)
def _member_changed(sender, instance: Member, **kwargs) -> None:
    roster_changed(unit_ids=[instance.unit_id])


@receiver([post_save, post_delete], sender=Equipment)
def _equipment_changed(sender, instance: Equipment, **kwargs) -> None:
    roster_changed(unit_ids=[instance.unit_id])
