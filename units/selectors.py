from __future__ import annotations

from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import STANDARD_KIT, Equipment, Member, Region, Unit
from .scoping import scope_filter


def _count_subquery(qs: QuerySet) -> Coalesce:
    counted = qs.values("unit").annotate(c=Count("*")).values("c")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def kit_ok_q(*, today=None) -> Q:
    """Equipment rows that satisfy one standard-kit line: enough, usable, in date."""
    today = today or timezone.localdate()
    enough = Q()
    for kind, qty in STANDARD_KIT.items():
        enough |= Q(kind=kind, quantity__gte=qty)
    usable = ~Q(condition=Equipment.Condition.BROKEN)
    in_date = Q(expires__isnull=True) | Q(expires__gte=today)
    return enough & usable & in_date


def unit_annotate_readiness(qs: QuerySet[Unit]) -> QuerySet[Unit]:
    """Add ``on_duty_count``, ``kit_ok_count``, ``kit_complete`` and ``ready``.

    Readiness is derived from members and equipment, never stored twice. A
    disabled unit is never ready: it is not dispatched, whatever its kit.
    """
    on_duty = Member.objects.filter(unit=OuterRef("pk"), on_duty=True, is_active=True)
    kit_ok = Equipment.objects.filter(kit_ok_q(), unit=OuterRef("pk"))
    return qs.annotate(
        on_duty_count=_count_subquery(on_duty),
        kit_ok_count=_count_subquery(kit_ok),
    ).annotate(
        kit_complete=ExpressionWrapper(
            Q(kit_ok_count__gte=len(STANDARD_KIT)), output_field=BooleanField()
        ),
        ready=ExpressionWrapper(
            Q(is_active=True, kit_ok_count__gte=len(STANDARD_KIT), on_duty_count__gte=1),
            output_field=BooleanField(),
        ),
    )


def unit_list(
    *, user, region: Region | None = None, kind: str | None = None, ready: bool | None = None
) -> QuerySet[Unit]:
    qs = Unit.objects.filter(scope_filter(user, "unit")).select_related("region")
    if region is not None:
        qs = qs.filter(region__path__startswith=region.path)
    if kind:
        qs = qs.filter(kind=kind)
    qs = unit_annotate_readiness(qs)
    if ready is not None:
        qs = qs.filter(ready=ready)
    return qs.order_by("code")


def unit_get(*, user, unit_id: int) -> Unit:
    """One unit in the user's scope with readiness; raises Unit.DoesNotExist."""
    return unit_list(user=user).prefetch_related("members", "equipment").get(pk=unit_id)


def region_list(*, user) -> QuerySet[Region]:
    return Region.objects.filter(scope_filter(user, "region"))
