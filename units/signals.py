"""Keep the dispatch index fresh when the roster is edited one row at a time.

Every save or delete of a unit, member or equipment row logs a ``RosterChange``
for the units it touched; each process's index reads the log on its next
``rank_units`` call and re-reads just those units (``dispatch.ranking``). A
member or kit row moved to another unit changes both units' counts, so the unit
it left is logged too. Bulk writers (seed, import) call
``roster_changed(unit_ids=None)`` themselves.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from .models import Equipment, Member, Unit
from .services import roster_changed

# Set by pre_save on an instance whose unit may be changing: the unit it had.
_UNIT_BEFORE = "_roster_unit_before"


@receiver([post_save, post_delete], sender=Unit)
def _unit_changed(sender, instance: Unit, **kwargs) -> None:
    roster_changed(unit_ids=[instance.pk])


@receiver(pre_save, sender=Member)
@receiver(pre_save, sender=Equipment)
def _remember_unit(sender, instance: Member | Equipment, update_fields=None, **kwargs) -> None:
    # One indexed read, only for saves that may move the row (a clock-in saves
    # update_fields=["on_duty", "duty_since"] and skips it).
    moving = update_fields is None or bool({"unit", "unit_id"} & set(update_fields))
    if instance.pk is None or not moving:
        return
    before = sender.objects.filter(pk=instance.pk).values_list("unit_id", flat=True).first()
    setattr(instance, _UNIT_BEFORE, before)


@receiver([post_save, post_delete], sender=Member)
@receiver([post_save, post_delete], sender=Equipment)
def _row_changed(sender, instance: Member | Equipment, **kwargs) -> None:
    before = instance.__dict__.pop(_UNIT_BEFORE, None)
    roster_changed(unit_ids=[u for u in (instance.unit_id, before) if u is not None])
