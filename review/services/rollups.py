"""Roll-ups: the incident and dispatch facts and their weekly sums, rewritten
by Celery so reports over a year read thousands of rows, not millions."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dispatch.models import Dispatch, Incident
from units.models import Region

from ..expressions import WeekNumber
from ..models import DispatchFact, IncidentFact, UnitWeekly, WeeklyRollup
from ..selectors.common import _utc_offset_s, week_bounds
from ..selectors.facts import facts_watermark
from ..selectors.incidents import incidents_annotated
from ..selectors.stats import dispatches_annotated

# --- roll-ups: incident and dispatch facts -------------------------------------------------

FACTS_CHUNK = 5000


def _fact_places(region_id, level, parent_id) -> tuple[int | None, int | None]:
    """(street id, district id) of an incident's or unit's region."""
    if level == Region.Level.STREET:
        return region_id, parent_id
    if level == Region.Level.DISTRICT:
        return None, region_id
    return None, None


def facts_sync(*, recent_hours: float | None = None, full: bool = False) -> int:
    """(Re)write the facts of incidents not yet in them, and of those discovered in
    the last ``recent_hours`` (their timestamps may still move). ``full`` rewrites
    all. Drills are not facts: they are reviewed apart. Returns incidents written.
    """

    hours = recent_hours if recent_hours is not None else settings.REVIEW_FACTS_RESYNC_HOURS
    qs = Incident.objects.filter(is_drill=False)
    if not full:
        since = timezone.now() - dt.timedelta(hours=hours)
        qs = qs.filter(Q(pk__gt=facts_watermark()) | Q(discovered_at__gte=since))
    # One transaction: a report never sees facts whose weekly roll-ups lag behind.
    with transaction.atomic():
        ids = list(qs.order_by("pk").values_list("pk", flat=True))
        weeks: set[int] = set()
        for start in range(0, len(ids), FACTS_CHUNK):
            chunk = ids[start : start + FACTS_CHUNK]
            with transaction.atomic():
                weeks |= set(
                    IncidentFact.objects.filter(incident_id__in=chunk).values_list(
                        "week", flat=True
                    )
                )
                IncidentFact.objects.filter(incident_id__in=chunk).delete()
                DispatchFact.objects.filter(incident_id__in=chunk).delete()
                facts = list(_incident_facts(chunk))
                weeks |= {f.week for f in facts}
                IncidentFact.objects.bulk_create(facts, batch_size=1000)
                DispatchFact.objects.bulk_create(_dispatch_facts(chunk), batch_size=1000)
        if weeks:
            rollups_rebuild(weeks=weeks)
    return len(ids)


def _incident_facts(ids: list[int]):
    rows = (
        incidents_annotated(Incident.objects.filter(pk__in=ids))
        .annotate(week=WeekNumber("discovered_at", offset_s=_utc_offset_s()))
        .values_list(
            "pk", "region_id", "region__level", "region__parent_id", "kind", "discovered_at",
            "week", "to_response_s", "to_control_s", "to_handling_s",
            "ok_responded", "ok_controlled", "ok_handled",
        )
    )  # fmt: skip
    for pk, region_id, level, parent, kind, at, week, r, c, h, ok_r, ok_c, ok_h in rows:
        street, district = _fact_places(region_id, level, parent)
        yield IncidentFact(
            incident_id=pk,
            region_id=region_id,
            street_id=street,
            district_id=district,
            kind=kind,
            discovered_at=at,
            week=week,
            to_response_s=r,
            to_control_s=c,
            to_handling_s=h,
            ok_responded=bool(ok_r),
            ok_controlled=bool(ok_c),
            ok_handled=bool(ok_h),
            ok_all=bool(ok_r and ok_c and ok_h),
        )


def _dispatch_facts(ids: list[int]):
    rows = dispatches_annotated(Dispatch.objects.filter(incident_id__in=ids)).values_list(
        "pk", "incident_id", "unit_id", "unit__region_id", "unit__region__level",
        "unit__region__parent_id", "incident__region_id", "incident__region__level",
        "incident__region__parent_id", "incident__discovered_at", "incident__kind",
        "to_response_s", "to_control_s", "to_handling_s", "did_decline",
    )  # fmt: skip
    for (
        pk, incident_id, unit_id, u_region, u_level, u_parent, i_region, i_level, i_parent,
        at, kind, r, c, h, declined,
    ) in rows:  # fmt: skip
        street, district = _fact_places(i_region, i_level, i_parent)
        unit_street, unit_district = _fact_places(u_region, u_level, u_parent)
        yield DispatchFact(
            dispatch_id=pk,
            incident_id=incident_id,
            unit_id=unit_id,
            street_id=street,
            district_id=district,
            unit_street_id=unit_street,
            unit_district_id=unit_district,
            discovered_at=at,
            kind=kind,
            to_response_s=r,
            to_control_s=c,
            to_handling_s=h,
            declined=bool(declined),
        )


def rollups_rebuild(*, weeks: set[int] | None = None) -> int:
    """Rebuild the weekly roll-ups of these weeks (None: every week with facts)
    from the facts. Returns how many weeks were rebuilt."""

    if weeks is None:
        weeks = set(IncidentFact.objects.values_list("week", flat=True).distinct())
    for week in sorted(weeks):
        start, end = week_bounds(week)
        groups: dict[tuple, list] = {}
        for region, street, district, kind, r, c, h, ok_r, ok_c, ok_h, ok_all in (
            IncidentFact.objects.filter(discovered_at__gte=start, discovered_at__lt=end)
            .order_by()
            .values_list(
                "region_id", "street_id", "district_id", "kind", "to_response_s",
                "to_control_s", "to_handling_s", "ok_responded", "ok_controlled",
                "ok_handled", "ok_all",
            )
        ):  # fmt: skip
            g = groups.setdefault((region, street, district, kind), [0, 0, 0, 0, 0, {}, {}, {}])
            g[0] += 1
            g[1] += ok_r
            g[2] += ok_c
            g[3] += ok_h
            g[4] += ok_all
            for slot, value in ((5, r), (6, c), (7, h)):
                if value is not None:
                    g[slot][value] = g[slot].get(value, 0) + 1
        units: dict[tuple, list] = {}
        for unit, u_street, u_district, district, r, c, declined in (
            DispatchFact.objects.filter(discovered_at__gte=start, discovered_at__lt=end)
            .order_by()
            .values_list(
                "unit_id", "unit_street_id", "unit_district_id", "district_id",
                "to_response_s", "to_control_s", "declined",
            )
        ):  # fmt: skip
            u = units.setdefault((unit, u_street, u_district, district), [0] * 5)
            u[0] += 1
            u[1] += r is not None
            u[2] += bool(declined)
            u[3] += r is None and not declined
            u[4] += c is not None
        with transaction.atomic():
            WeeklyRollup.objects.filter(week=week).delete()
            UnitWeekly.objects.filter(week=week).delete()
            WeeklyRollup.objects.bulk_create(
                [
                    WeeklyRollup(
                        week=week,
                        region_id=region,
                        street_id=street,
                        district_id=district,
                        kind=kind,
                        n=g[0],
                        ok_responded=g[1],
                        ok_controlled=g[2],
                        ok_handled=g[3],
                        ok_all=g[4],
                        hist={"to_response_s": g[5], "to_control_s": g[6], "to_handling_s": g[7]},
                    )  # fmt: skip
                    for (region, street, district, kind), g in groups.items()
                ],
                batch_size=1000,
            )
            UnitWeekly.objects.bulk_create(
                [
                    UnitWeekly(
                        week=week,
                        unit_id=unit,
                        unit_street_id=u_street,
                        unit_district_id=u_district,
                        district_id=district,
                        alerted=u[0],
                        accepted=u[1],
                        declined=u[2],
                        no_answer=u[3],
                        on_site=u[4],
                    )
                    for (unit, u_street, u_district, district), u in units.items()
                ],
                batch_size=2000,
            )
    return len(weeks)
