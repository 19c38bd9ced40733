"""``seed_drills``: past no-notice drills (拉动测试) with per-unit timings.

The rows the real drill flow leaves behind (``services.drill_start``, the batches
of ``drill_send_batch`` through dispatch's ``wave_send``, the members' ordinary
delivery, accept and on-site actions, ``drill_close``), written in bulk with the
same writer as ``seed_incidents``: the incident (``is_drill``, source drill), the
``Drill``, one wave per ``REVIEW_DRILL_BATCH`` units, a dispatch per unit, a
delivery per member on duty, and the timeline events numbered in time order.

Each district gets a few district-wide drills and a few drills of one street
over the period, in daytime. A unit's habits hold across drills (some are
slower, some often miss a drill), so the league tables and the index see the
same units lag each time: most acknowledge within 1-3 minutes and muster at
their post within 3-5, some late, a few never; a unit with nobody on duty
never answers, as it could not in a real drill. Deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from dispatch.models import Delivery, Dispatch, Incident, IncidentEvent, Wave
from units.geo import haversine_m_array
from units.models import Member, Region, StaffProfile, Unit

from .models import Drill
from .seeding import DEFAULT_SEED, SeedIncidentsError, _Writer
from .selectors.common import _utc_offset_s

DRILL_DAYS = 42  # six weeks
DISTRICT_DRILLS = 2  # per district over the period
STREET_DRILLS = 3  # per district, each to one street's units
DRILL_LENGTH_S = 30 * 60  # the station ends the drill after half an hour
SITE_FAR_SHARE = 0.04  # on-site reports sent away from the post: arrival-proof flags

_EV = IncidentEvent.Type
# Tie-break for events at the same second: the order the real flow writes them.
_ORDER = {_EV.CREATED: 0, _EV.ALERTED: 1, _EV.DELIVERED: 2, _EV.ACCEPTED: 3, _EV.ON_SITE: 4,
          _EV.CLOSED: 5}  # fmt: skip


@dataclass
class SeedDrillsResult:
    drills: int
    dispatches: int
    events: int
    seconds: float


@dataclass
class _Plan:
    scope: str
    region: Region
    station: Region
    units: np.ndarray  # positions in the unit table
    t0: int  # epoch seconds


def drills_seed(
    *,
    days: int = DRILL_DAYS,
    district_drills: int = DISTRICT_DRILLS,
    street_drills: int = STREET_DRILLS,
    seed: int = DEFAULT_SEED,
    until: dt.datetime | None = None,
) -> SeedDrillsResult:
    """Write past drills on the seeded city; returns what was written."""
    if not 2 <= days <= 3650:
        raise SeedIncidentsError("--days must be 2..3650")
    if district_drills < 0 or street_drills < 0:
        raise SeedIncidentsError("drill counts must not be negative")
    started = time.monotonic()
    rng = np.random.default_rng([seed, 1])
    rows = list(
        Unit.objects.filter(is_active=True)
        .order_by("pk")
        .values_list("pk", "lat", "lon", "region_id")
    )
    if not rows:
        raise SeedIncidentsError("no active units: run seed_demo first")
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    lat = np.array([r[1] for r in rows], dtype=float)
    lon = np.array([r[2] for r in rows], dtype=float)
    street = np.array([r[3] for r in rows], dtype=np.int64)
    regions = {r.pk: r for r in Region.objects.filter(level__in=["district", "street"])}
    district = np.array(
        [getattr(regions.get(int(s)), "parent_id", None) or -1 for s in street], dtype=np.int64
    )
    # Members on duty now stand for those on duty then: a unit nobody staffs
    # receives nothing and never answers.
    on_duty: dict[int, list[int]] = {}
    for member_id, unit_id in (
        Member.objects.filter(on_duty=True, is_active=True, unit__is_active=True)
        .order_by("pk")
        .values_list("pk", "unit_id")
    ):
        on_duty.setdefault(unit_id, []).append(member_id)
    # Habits per unit, kept across drills.
    flaky = rng.beta(1.2, 12, ids.size)
    pace = rng.lognormal(0, 0.2, ids.size)

    until_s = int((until or timezone.now()).timestamp())
    plans = _plan(
        rng=rng, regions=regions, street=street, district=district, days=days,
        district_drills=district_drills, street_drills=street_drills, until_s=until_s,
    )  # fmt: skip
    writer = _Writer()
    totals = {"dispatches": 0, "events": 0}
    with transaction.atomic():
        for plan in plans:
            _write_drill(
                rng=rng, writer=writer, plan=plan, ids=ids, lat=lat, lon=lon,
                on_duty=on_duty, flaky=flaky, pace=pace, totals=totals,
            )  # fmt: skip
        writer.finish()
    return SeedDrillsResult(
        drills=len(plans),
        dispatches=totals["dispatches"],
        events=totals["events"],
        seconds=round(time.monotonic() - started, 1),
    )


def _plan(*, rng, regions, street, district, days, district_drills, street_drills, until_s):
    """Which drills: per district, ``district_drills`` over all its units and
    ``street_drills`` over distinct streets (a demo police station's own street
    first, so its drill page has something), each on a day of the period."""
    stations = set(
        StaffProfile.objects.filter(role=StaffProfile.Role.POLICE_STATION).values_list(
            "region_id", flat=True
        )
    )
    offset = _utc_offset_s()
    today = (until_s + offset) // 86400
    plans = []
    for d in sorted({int(x) for x in district if x >= 0}):
        in_district = np.flatnonzero(district == d)
        streets = sorted({int(s) for s in street[in_district]})
        rng.shuffle(streets)
        streets.sort(key=lambda s: s not in stations)
        targets = [("district", d, in_district)] * district_drills + [
            ("street", s, np.flatnonzero(street == s)) for s in streets[:street_drills]
        ]
        for scope, region_id, units in targets:
            day = int(rng.integers(1, days))
            # Daytime, 09:00-19:59 local.
            t0 = (today - day) * 86400 - offset + int(rng.integers(9 * 3600, 20 * 3600))
            region = regions[region_id]
            plans.append(_Plan(scope=scope, region=region, station=region, units=units, t0=t0))
    return sorted(plans, key=lambda p: p.t0)


def _write_drill(*, rng, writer: _Writer, plan: _Plan, ids, lat, lon, on_duty, flaky, pace,
                 totals) -> None:  # fmt: skip
    units = plan.units
    n = units.size
    t0 = plan.t0
    t_end = t0 + DRILL_LENGTH_S
    region = plan.region
    c_lat = region.lat if region.lat is not None else float(lat[units[0]])
    c_lon = region.lon if region.lon is not None else float(lon[units[0]])
    unit_ids = ids[units]

    # Batches of units by id, one wave each, a second apart.
    batch = max(1, int(settings.REVIEW_DRILL_BATCH))
    wave_no = np.arange(n) // batch  # 0-based
    n_waves = int(wave_no[-1]) + 1
    t_alert = t0 + 1 + wave_no

    # Deliveries: every member on duty of each unit; most phones confirm receipt.
    d_pos = np.array([i for i, u in enumerate(unit_ids.tolist()) for _m in on_duty.get(u, [])],
                     dtype=np.int64)  # fmt: skip
    d_member = np.array([m for u in unit_ids.tolist() for m in on_duty.get(u, [])], dtype=np.int64)
    d_ok = rng.random(d_pos.size) < 0.95
    d_at = t_alert[d_pos] + rng.integers(1, 20, d_pos.size)
    # The first member on duty answers for the unit, if their phone got it.
    first = np.full(n, -1, dtype=np.int64)
    first_ok = np.zeros(n, dtype=bool)
    # d_pos is sorted: each unit's first delivery is its first member on duty.
    pos, at_first = np.unique(d_pos, return_index=True)
    first[pos] = d_member[at_first]
    first_ok[pos] = d_ok[at_first]

    # Most acknowledge within 1-3 minutes and reach their post within 3-5; the
    # flaky units miss some drills, and some arrive late.
    fate = rng.random((n, 2))
    acked = first_ok & (fate[:, 0] > 0.03 + flaky[units])
    arrived = acked & (fate[:, 1] > 0.05 + flaky[units] / 2)
    ack_s = np.ceil(rng.lognormal(np.log(70), 0.45, n) * pace[units]).astype(np.int64)
    walk_s = np.ceil(rng.lognormal(np.log(150), 0.4, n) * pace[units]).astype(np.int64)
    t_ack = np.minimum(t_alert + 5 + ack_s, t_end - 2)
    t_site = np.minimum(t_ack + 30 + walk_s, t_end - 1)

    # The text drill_start writes, in the site's language (it is stored data).
    with translation.override(settings.LANGUAGE_CODE):
        description = _("拉动测试（演练）：%(r)s 全部单元，请立即到岗集结。") % {"r": region.name}
    incident_id = writer.reserve(Incident, 1)
    responded = int(t_ack[acked].min()) if acked.any() else None
    controlled = int(t_site[arrived].min()) if arrived.any() else None

    # The timeline, numbered in time order as events_record would have.
    ev_type = [_EV.CREATED.value]
    ev_at = [t0]
    ev_unit = [-1]
    ev_member = [-1]
    ev_data = [json.dumps({"source": "drill", "drill_scope": plan.scope, "units": n,
                           "seeded": True})]  # fmt: skip
    dist = np.round(haversine_m_array(c_lat, c_lon, lat[units], lon[units])).astype(np.int64)
    rank = np.minimum(np.arange(n) + 1, 32767)
    ev_type += [_EV.ALERTED.value] * n
    ev_at += t_alert.tolist()
    ev_unit += unit_ids.tolist()
    ev_member += [-1] * n
    ev_data += [
        f'{{"wave": {w + 1}, "rank": {r}, "distance_m": {dm}, "eta_s": 0, "drill": true}}'
        for w, r, dm in zip(wave_no.tolist(), rank.tolist(), dist.tolist(), strict=True)
    ]
    got = np.flatnonzero(d_ok)
    ev_type += [_EV.DELIVERED.value] * got.size
    ev_at += d_at[got].tolist()
    ev_unit += unit_ids[d_pos[got]].tolist()
    ev_member += d_member[got].tolist()
    ev_data += ["{}"] * got.size
    a = np.flatnonzero(acked)
    ev_type += [_EV.ACCEPTED.value] * a.size
    ev_at += t_ack[a].tolist()
    ev_unit += unit_ids[a].tolist()
    ev_member += first[a].tolist()
    ev_data += ["{}"] * a.size
    s = np.flatnonzero(arrived)
    # Reported from the post, GPS-jittered; a few from far away.
    off = np.where(rng.random(s.size) < SITE_FAR_SHARE, 400.0, 15.0)
    jitter = rng.normal(0, 1, (s.size, 2)) * off[:, None] / 111_320
    s_lat = np.round(lat[units[s]] + jitter[:, 0], 6)
    s_lon = np.round(lon[units[s]] + jitter[:, 1], 6)
    ev_type += [_EV.ON_SITE.value] * s.size
    ev_at += t_site[s].tolist()
    ev_unit += unit_ids[s].tolist()
    ev_member += first[s].tolist()
    ev_data += [f'{{"lat": {x!r}, "lon": {y!r}}}' for x, y in zip(s_lat.tolist(), s_lon.tolist(),
                                                                 strict=True)]  # fmt: skip
    ev_type.append(_EV.CLOSED.value)
    ev_at.append(t_end)
    ev_unit.append(-1)
    ev_member.append(-1)
    ev_data.append('{"outcome": "drill_ended", "drill": true}')
    at = np.asarray(ev_at, dtype=np.int64)
    order = np.lexsort((np.array([_ORDER[t] for t in ev_type]), at))
    total = order.size

    writer.write(
        Incident,
        1,
        {
            "id": [incident_id],
            "kind": Incident.Kind.OTHER.value,
            "severity": Incident.Severity.LOW.value,
            "lat": [round(c_lat, 6)],
            "lon": [round(c_lon, 6)],
            "address": region.name,
            "description": description,
            "source": Incident.Source.DRILL.value,
            "region_id": region.pk,
            "status": Incident.Status.CLOSED.value,
            "is_drill": True,
            "paid_channels": False,
            "policy": '{"tiers": [], "drill": true, "seeded": true}',
            "discovered_at": writer.times(np.array([t0])),
            "responded_at": writer.times(
                np.array([responded or t0]), np.array([responded is not None])
            ),
            "controlled_at": writer.times(
                np.array([controlled or t0]), np.array([controlled is not None])
            ),
            "received_at": writer.times(np.array([t0])),
            "flagged": False,
            "last_seq": total,
        },
    )
    Drill.objects.create(
        scope=plan.scope,
        region=region,
        station=plan.station,
        incident_id=incident_id,
        status=Drill.Status.CLOSED,
        units_total=n,
        units_alerted=n,
    )
    Drill.objects.filter(incident_id=incident_id).update(
        created_at=dt.datetime.fromtimestamp(t0, dt.UTC),
        sent_at=dt.datetime.fromtimestamp(t0 + n_waves, dt.UTC),
        closed_at=dt.datetime.fromtimestamp(t_end, dt.UTC),
    )
    wave_id = writer.reserve(Wave, n_waves)
    writer.write(
        Wave,
        n_waves,
        {
            "id": wave_id + np.arange(n_waves),
            "incident_id": incident_id,
            "number": np.arange(1, n_waves + 1),
            "radius_m": 0,
            "reason": "drill",
            "created_at": writer.times(t0 + 1 + np.arange(n_waves)),
        },
    )
    disp_id = writer.reserve(Dispatch, n)
    status = np.full(n, Dispatch.Status.ALERTED.value, dtype=object)
    status[acked] = Dispatch.Status.ACCEPTED.value
    status[arrived] = Dispatch.Status.ON_SITE.value
    writer.write(
        Dispatch,
        n,
        {
            "id": disp_id + np.arange(n),
            "incident_id": incident_id,
            "wave_id": wave_id + wave_no,
            "unit_id": unit_ids,
            "rank": rank,
            "distance_m": dist,
            "eta_s": 0,
            "status": status.tolist(),
            "accepted_by_id": [int(m) if ok else None for m, ok in zip(first.tolist(),
                                                                        acked.tolist(),
                                                                        strict=True)],
            "accepted_at": writer.times(t_ack, acked),
            "on_site_at": writer.times(t_site, arrived),
            "created_at": writer.times(t_alert),
        },
    )  # fmt: skip
    m = d_pos.size
    if m:
        writer.write(
            Delivery,
            m,
            {
                "id": writer.reserve(Delivery, m) + np.arange(m),
                "dispatch_id": disp_id + d_pos,
                "member_id": d_member,
                "delivered_at": writer.times(d_at, d_ok),
                "created_at": writer.times(t_alert[d_pos]),
            },
        )
    ev_id = writer.reserve(IncidentEvent, total)
    ev_unit_a = np.asarray(ev_unit, dtype=np.int64)[order]
    ev_member_a = np.asarray(ev_member, dtype=np.int64)[order]
    writer.write(
        IncidentEvent,
        total,
        {
            "id": ev_id + np.arange(total),
            "incident_id": incident_id,
            "seq": np.arange(1, total + 1),
            "type": np.asarray(ev_type, dtype=object)[order].tolist(),
            "unit_id": [int(u) if u >= 0 else None for u in ev_unit_a.tolist()],
            "member_id": [int(x) if x >= 0 else None for x in ev_member_a.tolist()],
            "data": np.asarray(ev_data, dtype=object)[order].tolist(),
            "created_at": writer.times(at[order]),
        },
    )
    totals["dispatches"] += n
    totals["events"] += total


__all__ = ["SeedDrillsResult", "drills_seed"]
