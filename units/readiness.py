"""What "ready" and "usable kit" mean: the one definition of each.

Dispatch ranking (``dispatch.ranking``), the admin lists and filters, the REST
API, the readiness overview and the review index all read these, so a unit the
admin shows as ready is a unit dispatch will call, and the other way round.

- **Ready**: the unit is active and has more members on duty than its
  ``post_min`` (the people who must stay on its own post), so dispatch can send
  someone without emptying the post. Kit does not make a unit ready or not:
  ranking still calls a unit whose kit is short (it only ranks it lower when
  the incident needs that kit); ``kit_complete`` is shown beside ``ready``.
- **Usable kit**: an equipment row of at least the minimum quantity for its kind
  (``STANDARD_KIT``; one for kinds outside it, such as an AED), not broken, and
  not expired. **Complete kit**: every standard-kit line usable.

- **Reachable**: some channel can wake the member's phone when the page is
  closed: a Web Push subscription, or a mainland mobile number for SMS and
  voice, unless the member's last alert failed on every channel it tried. The
  rows behind it (subscriptions, the chain's attempts) belong to the apps above
  the roster, so ``settings.READINESS_UNREACHABLE_MEMBERS`` names the function
  that applies it (``mobile.selectors.members_unreachable``), like
  ``NOTIFY_BACKENDS``; without it, a member without a mobile number is the
  only one counted.

Each rule comes in the forms its callers need (a scalar, a ``Q`` for the
database, a numpy mask for the in-memory index), written next to each other
so they cannot drift apart.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.conf import settings
from django.db.models import BooleanField, ExpressionWrapper, F, Q, QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import STANDARD_KIT, Equipment, EquipmentKind, Member
from .phones import CN_MOBILE

# Minimum quantity per equipment kind for a row to count as usable.
KIT_MINIMUM: dict[str, int] = {kind: STANDARD_KIT.get(kind, 1) for kind in EquipmentKind.values}


# --- ready ------------------------------------------------------------------------------


def unit_is_ready(*, is_active: bool, on_duty: int, post_min: int) -> bool:
    return bool(is_active) and on_duty > post_min


def unit_spare(*, on_duty: int, post_min: int) -> int:
    """People a unit can send without going below ``post_min`` on its own post."""
    return max(0, on_duty - post_min)


def ready_expression(on_duty_field: str = "on_duty_count") -> ExpressionWrapper:
    """``ready`` for a Unit queryset annotated with its on-duty count."""
    return ExpressionWrapper(
        Q(is_active=True, **{f"{on_duty_field}__gt": F("post_min")}),
        output_field=BooleanField(),
    )


def ready_mask(is_active: np.ndarray, on_duty: np.ndarray, post_min: np.ndarray) -> np.ndarray:
    """Vectorised ``unit_is_ready``."""
    return np.asarray(is_active, dtype=bool) & (np.asarray(on_duty) > np.asarray(post_min))


# --- reachable -----------------------------------------------------------------------------


def phone_takes_sms_q() -> Q:
    """A stored number SMS and voice can reach: a mainland mobile number."""
    return Q(phone__regex=rf"^{CN_MOBILE.pattern}$")


def members_unreachable(members: QuerySet[Member]) -> QuerySet[Member]:
    """The members of ``members`` no channel can reach when their page is closed."""
    path = getattr(settings, "READINESS_UNREACHABLE_MEMBERS", "")
    if path:
        return import_string(path)(members)
    return members.exclude(phone_takes_sms_q())


def unit_unreachable(*, on_duty: int, unreachable: int) -> bool:
    """A unit with people on duty, none of whom any channel can reach."""
    return on_duty > 0 and unreachable >= on_duty


# --- usable kit ---------------------------------------------------------------------------


def kit_in_service_q(*, today: dt.date | None = None) -> Q:
    """Equipment rows not broken and in date (the quantity is ``kit_enough``'s part)."""
    today = today or timezone.localdate()
    in_date = Q(expires__isnull=True) | Q(expires__gte=today)
    return ~Q(condition=Equipment.Condition.BROKEN) & in_date


def kit_enough(*, kind: str, quantity: int) -> bool:
    """Is ``quantity`` enough for a row of this kind to count? Unknown kinds never count."""
    minimum = KIT_MINIMUM.get(kind)
    return minimum is not None and quantity >= minimum


def equipment_usable(item: Equipment, *, today: dt.date | None = None) -> bool:
    """``usable_kit_q`` for one row already in memory (the phone's kit list)."""
    today = today or timezone.localdate()
    return (
        kit_enough(kind=item.kind, quantity=item.quantity)
        and item.condition != Equipment.Condition.BROKEN
        and (item.expires is None or item.expires >= today)
    )


def _enough_q(kinds) -> Q:
    enough = Q()
    for kind in kinds:
        enough |= Q(kind=kind, quantity__gte=KIT_MINIMUM[kind])
    return enough


def usable_kit_q(*, today: dt.date | None = None) -> Q:
    """Usable equipment rows, any kind: enough of it, not broken, in date."""
    return _enough_q(KIT_MINIMUM) & kit_in_service_q(today=today)


def kit_ok_q(*, today: dt.date | None = None) -> Q:
    """Usable rows of the standard kit; a unit with ``len(STANDARD_KIT)`` of them
    has its kit complete (one row per kind per unit, by constraint)."""
    return _enough_q(STANDARD_KIT) & kit_in_service_q(today=today)


def kit_complete(kit_ok_count: int) -> bool:
    return kit_ok_count >= len(STANDARD_KIT)


def kit_complete_expression(kit_ok_field: str = "kit_ok_count") -> ExpressionWrapper:
    """``kit_complete`` for a Unit queryset annotated with its ``kit_ok_q`` row count."""
    return ExpressionWrapper(
        Q(**{f"{kit_ok_field}__gte": len(STANDARD_KIT)}), output_field=BooleanField()
    )
