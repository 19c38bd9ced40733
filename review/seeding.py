"""``seed_incidents``: realistic past incidents with timelines, for review at scale.

Decided with numpy from one seed (same arguments, same incidents), written with
raw multi-row inserts (``COPY`` on PostgreSQL) in batches: a million incidents
with their waves, dispatches and events is ~12 million rows, far too many for
``bulk_create``'s per-object cost. Rows follow the dispatch models' rules: the
four timestamps in order, first-time values on the incident, one ``seq`` per
event per incident, the first accepting unit's own timestamps on its dispatch.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone
from scipy.spatial import cKDTree
from tqdm import tqdm

from dispatch.models import Dispatch, Incident, IncidentEvent, MemberLocation, Wave
from units.geo import haversine_m_array
from units.models import Member, Region, Unit

from . import selectors
from .expressions import WEEK_S
from .models import DispatchFact, IncidentFact
from .selectors.common import _utc_offset_s
from .services.rollups import rollups_rebuild

MAX_COUNT = 1_000_000
DEFAULT_SEED = 20246
BATCH = 20_000  # incidents per transaction

KINDS = ["fight", "theft", "medical", "crowd", "knife", "fire", "other"]
KIND_P = [0.25, 0.20, 0.20, 0.10, 0.08, 0.07, 0.10]
SEVERITY_P = [0.50, 0.35, 0.12, 0.03]
# Incidents per hour of day (relative): quiet before dawn, busy in the evening.
HOUR_WEIGHT = np.array(
    [3, 2, 1.5, 1, 1, 1.5, 3, 5, 6, 6, 6, 7, 7, 6, 6, 6, 7, 8, 9, 9, 8, 7, 5, 4], dtype=float
)
UNITS_PER_WAVE = 5
ON_SITE_FAR_SHARE = 0.04  # on-site reports sent from far away: arrival-proof flags
TRAIL_SHARE = 0.02  # incidents whose first responder shared a position trail


class SeedIncidentsError(Exception):
    """Bad arguments, or no roster to seed on: nothing has been written."""


@dataclass
class SeedIncidentsResult:
    incidents: int
    events: int
    dispatches: int
    seconds: float


def _columns(model: type[models.Model]) -> list[models.Field]:
    return list(model._meta.concrete_fields)


class _Writer:
    """Multi-row inserts with explicit ids; COPY on PostgreSQL."""

    def __init__(self) -> None:
        self.pg = connection.vendor == "postgresql"
        self.next_id: dict[type[models.Model], int] = {}

    def reserve(self, model: type[models.Model], n: int) -> int:
        if model not in self.next_id:
            top = model.objects.aggregate(m=models.Max("pk"))["m"] or 0
            self.next_id[model] = top + 1
        first = self.next_id[model]
        self.next_id[model] += n
        return first

    def write(self, model: type[models.Model], rows: list[dict]) -> None:
        if not rows:
            return
        fields = _columns(model)
        defaults = {
            f.column: (None if f.null else f.get_default())
            for f in fields
            if not isinstance(f, models.AutoField)
        }
        table = connection.ops.quote_name(model._meta.db_table)
        cols = [f.column for f in fields]
        json_cols = {f.column for f in fields if isinstance(f, models.JSONField)}
        dt_cols = {f.column for f in fields if isinstance(f, models.DateTimeField)}

        def convert(col):
            if col in json_cols:
                return lambda v: None if v is None else ("{}" if not v else json.dumps(v))
            if col in dt_cols and not self.pg:
                # Seeded times are UTC: Django's SQLite format is naive UTC text.
                return lambda v: None if v is None else v.replace(tzinfo=None).isoformat(" ")
            return None

        plan = [(c, defaults.get(c), convert(c)) for c in cols]
        tuples = [
            tuple(r.get(c, d) if f is None else f(r.get(c, d)) for c, d, f in plan) for r in rows
        ]
        collist = ", ".join(connection.ops.quote_name(c) for c in cols)
        if self.pg:
            raw = connection.connection
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({collist}) FROM STDIN") as copy:
                for t in tuples:
                    copy.write_row(t)
        else:
            marks = ", ".join(["%s"] * len(cols))
            with connection.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} ({collist}) VALUES ({marks})", tuples)  # noqa: S608

    def finish(self) -> None:
        if self.pg and self.next_id:
            with connection.cursor() as cur:
                for sql in connection.ops.sequence_reset_sql(no_style(), list(self.next_id)):
                    cur.execute(sql)


def _unit_table():
    rows = list(
        Unit.objects.filter(is_active=True)
        .order_by("pk")
        .values_list("pk", "lat", "lon", "region_id")
    )
    if not rows:
        raise SeedIncidentsError("no active units: run seed_demo first")
    arr = np.array(rows, dtype=np.float64)
    first_member = dict(
        Member.objects.order_by()
        .values("unit_id")
        .annotate(m=models.Min("pk"))
        .values_list("unit_id", "m")
    )
    return arr, first_member


def _xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    return np.column_stack((np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)))


def incidents_seed(
    *,
    count: int,
    seed: int = DEFAULT_SEED,
    days: int = 365,
    until: dt.datetime | None = None,
    progress: TextIO | None = None,
    batch: int = BATCH,
) -> SeedIncidentsResult:
    """Write ``count`` closed past incidents over the ``days`` before ``until``."""
    if not 1 <= count <= MAX_COUNT:
        raise SeedIncidentsError(f"--count must be 1..{MAX_COUNT:,}")
    if not 1 <= days <= 3650:
        raise SeedIncidentsError("--days must be 1..3650")
    started = time.monotonic()
    units, first_member = _unit_table()
    unit_ids, unit_lat, unit_lon = units[:, 0].astype(np.int64), units[:, 1], units[:, 2]
    unit_street = units[:, 3].astype(np.int64)
    tree = cKDTree(_xyz(unit_lat, unit_lon))
    streets = dict(Region.objects.filter(level=Region.Level.STREET).values_list("pk", "parent_id"))
    districts = sorted({d for d in streets.values() if d})
    rng = np.random.default_rng(seed)
    # Each district, and each unit, has its own habits: some are slower, some
    # units decline or stay silent much more often than others.
    district_pace = {
        d: float(f) for d, f in zip(districts, rng.lognormal(0, 0.25, len(districts)), strict=False)
    }
    unit_flaky = rng.beta(1.2, 12, unit_ids.size)
    until = (until or timezone.now()).astimezone(dt.UTC).replace(microsecond=0)
    window_s = days * 86400
    writer = _Writer()
    totals = {"events": 0, "dispatches": 0}
    with tqdm(
        total=count,
        unit="incident",
        unit_scale=True,
        file=progress,
        disable=progress is None,
        desc="seed_incidents",
    ) as bar:
        done = 0
        while done < count:
            n = min(batch, count - done)
            brng = np.random.default_rng([seed, done])
            with transaction.atomic():
                _write_batch(
                    brng=brng,
                    n=n,
                    writer=writer,
                    totals=totals,
                    until=until,
                    window_s=window_s,
                    tree=tree,
                    unit_ids=unit_ids,
                    unit_lat=unit_lat,
                    unit_lon=unit_lon,
                    unit_street=unit_street,
                    unit_flaky=unit_flaky,
                    first_member=first_member,
                    streets=streets,
                    district_pace=district_pace,
                )
            done += n
            bar.update(n)
    writer.finish()
    rollups_rebuild()
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return SeedIncidentsResult(
        incidents=count,
        events=totals["events"],
        dispatches=totals["dispatches"],
        seconds=round(time.monotonic() - started, 1),
    )


class _Timeline:
    """One incident's events, numbered as ``events_record`` would."""

    def __init__(self, incident_id: int) -> None:
        self.incident_id = incident_id
        self.rows: list[dict] = []

    def add(self, type_, at, unit=None, member=None, data=None) -> None:
        self.rows.append(
            {
                "incident_id": self.incident_id,
                "seq": len(self.rows) + 1,
                "type": type_,
                "unit_id": unit,
                "member_id": member,
                "data": data or {},
                "created_at": at,
            }
        )


def _write_batch(
    *,
    brng,
    n,
    writer,
    totals,
    until,
    window_s,
    tree,
    unit_ids,
    unit_lat,
    unit_lon,
    unit_street,
    unit_flaky,
    first_member,
    streets,
    district_pace,
) -> None:
    # Where: near a random unit (units follow people), up to ~300 m off.
    home = brng.integers(0, unit_ids.size, n)
    lat = unit_lat[home] + brng.normal(0, 120, n) / 111_320
    lon = unit_lon[home] + brng.normal(0, 120, n) / (111_320 * np.cos(np.radians(unit_lat[home])))
    street = unit_street[home]
    # When: a day in the window, an hour by the daily profile.
    day = brng.integers(0, window_s // 86400, n)
    hour = brng.choice(24, n, p=HOUR_WEIGHT / HOUR_WEIGHT.sum())
    sec = brng.integers(0, 3600, n)
    ago = day * 86400 + (23 - hour) * 3600 + sec + 600
    kind = brng.choice(len(KINDS), n, p=KIND_P)
    severity = brng.choice(4, n, p=SEVERITY_P) + 1
    pace = np.array([district_pace.get(streets.get(int(s)), 1.0) for s in street])
    # The four firsts: log-normal steps, slower in slow districts.
    to_resp = np.ceil(brng.lognormal(np.log(38), 0.55, n) * pace)
    to_ctrl = to_resp + np.ceil(brng.lognormal(np.log(95), 0.5, n) * pace)
    to_hand = to_ctrl + np.ceil(brng.lognormal(np.log(140), 0.6, n) * pace)
    fate = brng.random(n)  # < 0.02 nobody answered; < 0.03 answered, never on site
    # The wave: the nearest units, ranked by distance.
    k = min(UNITS_PER_WAVE, unit_ids.size)
    _d, near = tree.query(_xyz(lat, lon), k=k)
    near = near.reshape(n, k)
    dist = haversine_m_array(lat[:, None], lon[:, None], unit_lat[near], unit_lon[near])

    inc_id = writer.reserve(Incident, n)
    wave_id = writer.reserve(Wave, n)
    disp_id = writer.reserve(Dispatch, n * k)
    incidents, waves, dispatches, events, trails = [], [], [], [], []
    ifacts, dfacts = [], []
    targets = selectors.targets_s()
    until_epoch = int(until.timestamp())
    week_shift = _utc_offset_s() + 3 * 86400
    rand = brng.random((n, k))
    far = brng.random(n) < ON_SITE_FAR_SHARE
    trail = brng.random(n) < TRAIL_SHARE
    for i in range(n):
        iid = inc_id + i
        street_id = int(street[i])
        district_id = streets.get(street_id)
        t0 = until - dt.timedelta(seconds=int(ago[i]))
        responded = fate[i] >= 0.02
        controlled = fate[i] >= 0.03
        t_resp = t0 + dt.timedelta(seconds=float(to_resp[i])) if responded else None
        t_ctrl = t0 + dt.timedelta(seconds=float(to_ctrl[i])) if controlled else None
        t_hand = t0 + dt.timedelta(seconds=float(to_hand[i])) if controlled else None
        tl = _Timeline(iid)
        tl.add(IncidentEvent.Type.CREATED, t0, data={"source": "cad", "seeded": True})
        waves.append(
            {
                "id": wave_id + i,
                "incident_id": iid,
                "number": 1,
                "radius_m": 1500,
                "reason": "intake",
                "created_at": t0,
            }
        )
        # Who answers: the first unit that is not flaky today (rank order).
        first = None
        for j in range(k):
            u = int(near[i, j])
            if responded and first is None and rand[i, j] > unit_flaky[u]:
                first = j
        if responded and first is None:
            first = 0
        for j in range(k):
            u = int(near[i, j])
            uid = int(unit_ids[u])
            tl.add(
                IncidentEvent.Type.ALERTED,
                t0,
                unit=uid,
                data={
                    "wave": 1,
                    "rank": j + 1,
                    "distance_m": round(float(dist[i, j])),
                    "eta_s": math.ceil(dist[i, j] * 1.3 / 1.4),
                },
            )
        for j in range(k):
            u = int(near[i, j])
            uid = int(unit_ids[u])
            row = {
                "id": disp_id + i * k + j,
                "incident_id": iid,
                "wave_id": wave_id + i,
                "unit_id": uid,
                "rank": j + 1,
                "distance_m": round(float(dist[i, j])),
                "eta_s": math.ceil(dist[i, j] * 1.3 / 1.4),
                "status": Dispatch.Status.STOOD_DOWN,
                "created_at": t0,
            }
            member = first_member.get(uid)
            is_first = responded and j == first
            declined_now = not is_first and rand[i, j] < unit_flaky[u] * 0.5
            if is_first:
                row.update(
                    status=Dispatch.Status.HANDLED if controlled else Dispatch.Status.ACCEPTED,
                    accepted_by_id=member,
                    accepted_at=t_resp,
                    on_site_at=t_ctrl,
                    handled_at=t_hand,
                )
            elif declined_now:
                tl.add(
                    IncidentEvent.Type.DECLINED,
                    t0 + dt.timedelta(seconds=int(5 + 40 * rand[i, j])),
                    unit=uid,
                    member=member,
                )
            dispatches.append(row)
            dfacts.append(
                {
                    "dispatch_id": row["id"],
                    "incident_id": iid,
                    "unit_id": uid,
                    "street_id": street_id,
                    "district_id": district_id,
                    "unit_street_id": int(unit_street[u]),
                    "unit_district_id": streets.get(int(unit_street[u])),
                    "discovered_at": t0,
                    "kind": KINDS[kind[i]],
                    "to_response_s": int(to_resp[i]) if is_first else None,
                    "to_control_s": int(to_ctrl[i]) if is_first and controlled else None,
                    "to_handling_s": int(to_hand[i]) if is_first and controlled else None,
                    "declined": bool(declined_now),
                }
            )
        if responded:
            uid = int(unit_ids[near[i, first]])
            member = first_member.get(uid)
            tl.add(IncidentEvent.Type.ACCEPTED, t_resp, unit=uid, member=member)
            if controlled:
                off = 600 if far[i] else 30
                plat = lat[i] + brng.normal(0, off) / 111_320
                plon = lon[i] + brng.normal(0, off) / 111_320
                tl.add(
                    IncidentEvent.Type.ON_SITE,
                    t_ctrl,
                    unit=uid,
                    member=member,
                    data={"lat": round(float(plat), 6), "lon": round(float(plon), 6)},
                )
                tl.add(IncidentEvent.Type.HANDLED, t_hand, unit=uid, member=member)
                tl.add(IncidentEvent.Type.CLOSED, t_hand, unit=uid, member=member)
                if trail[i] and member is not None:
                    ulat, ulon = float(unit_lat[near[i, first]]), float(unit_lon[near[i, first]])
                    for s in range(6):
                        f = s / 5
                        trails.append(
                            {
                                "member_id": member,
                                "incident_id": iid,
                                "lat": ulat + (float(plat) - ulat) * f,
                                "lon": ulon + (float(plon) - ulon) * f,
                                "accuracy_m": 10.0,
                                "created_at": t_resp + (t_ctrl - t_resp) * f,
                            }
                        )
        ok = [
            responded and to_resp[i] <= targets["responded"],
            controlled and to_ctrl[i] <= targets["controlled"],
            controlled and to_hand[i] <= targets["handled"],
        ]
        ifacts.append(
            {
                "incident_id": iid,
                "region_id": street_id,
                "street_id": street_id,
                "district_id": district_id,
                "kind": KINDS[kind[i]],
                "discovered_at": t0,
                "week": int((until_epoch - int(ago[i]) + week_shift) // WEEK_S),
                "to_response_s": int(to_resp[i]) if responded else None,
                "to_control_s": int(to_ctrl[i]) if controlled else None,
                "to_handling_s": int(to_hand[i]) if controlled else None,
                "ok_responded": bool(ok[0]),
                "ok_controlled": bool(ok[1]),
                "ok_handled": bool(ok[2]),
                "ok_all": all(ok),
                "synced_at": until,
            }
        )
        incidents.append(
            {
                "id": iid,
                "kind": KINDS[kind[i]],
                "severity": int(severity[i]),
                "lat": round(float(lat[i]), 6),
                "lon": round(float(lon[i]), 6),
                "address": "",
                "description": "",
                "source": Incident.Source.CAD,
                "region_id": int(street[i]),
                "status": Incident.Status.CLOSED if controlled else Incident.Status.CANCELLED,
                "is_drill": False,
                "policy": {"seeded": True},
                "discovered_at": t0,
                "responded_at": t_resp,
                "controlled_at": t_ctrl,
                "handled_at": t_hand,
                "received_at": t0,
                "flagged": bool(not controlled or to_ctrl[i] > 180),
                "last_seq": len(tl.rows),
            }
        )
        events.extend(tl.rows)
    ev_id = writer.reserve(IncidentEvent, len(events))
    for j, e in enumerate(events):
        e["id"] = ev_id + j
    loc_id = writer.reserve(MemberLocation, len(trails)) if trails else 0
    for j, t in enumerate(trails):
        t["id"] = loc_id + j
    writer.write(Incident, incidents)
    writer.write(Wave, waves)
    writer.write(Dispatch, dispatches)
    writer.write(IncidentEvent, events)
    writer.write(MemberLocation, trails)
    writer.write(IncidentFact, ifacts)
    writer.write(DispatchFact, dfacts)
    totals["events"] += len(events)
    totals["dispatches"] += len(dispatches)


__all__ = ["SeedIncidentsError", "incidents_seed"]
