"""The readiness-and-response index (就绪与响应综合指数): a weighted tree of
indicators kept as data (``IndicatorNode``, editable in the admin), scored per
unit, street and district, ranked, trended by week, explainable to its leaves.

Each leaf maps one raw metric linearly to 0-100 (``good`` -> 100, ``bad`` -> 0,
clamped; ``good`` may be below ``bad`` for "lower is better"). An inner node is
the weighted mean of its children that have a score: a leaf with no data (no
incidents in the period, no drill yet) is left out and its siblings' weights
renormalised, and the explanation says so.

Little data (``sample_of``): the timing leaves count only when the period holds
at least ``REVIEW_INDEX_MIN_INCIDENTS`` real incidents (an area) or
``REVIEW_INDEX_MIN_UNIT_ALERTS`` real alerts (a unit), the drill leaves only
after ``REVIEW_INDEX_MIN_DRILL_ALERTS`` drill alerts; below that they are left
out like leaves without data, so one drill or three incidents do not carry the
weight of a season's record. An entity with neither sample is *unrated*: its
score (readiness and coverage only) is shown for reference, but it has no rank
and no colour on the warning map ("数据不足"), so areas with data are never
ranked against areas without.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from dispatch.models import Incident
from units.models import Region, Unit
from units.scoping import scope_filter
from units.selectors import unit_annotate_readiness

from . import selectors
from .models import CoverageSnapshot, IndicatorNode

M = IndicatorNode.Metric
LEVELS = ("district", "street", "unit")

# The leaves that measure how units performed in the period (as opposed to the
# current state: duty, kit, coverage), and the sample each one rests on.
TIMING_METRICS = frozenset(
    {
        M.RESPONSE_MEDIAN,
        M.ARRIVAL_MEDIAN,
        M.HANDLING_MEDIAN,
        M.RESPONDED_1MIN,
        M.CONTROLLED_3MIN,
        M.HANDLED_5MIN,
    }
)
DRILL_METRICS = frozenset({M.DRILL_ACK, M.DRILL_ARRIVAL})
# Sample sizes, kept beside the metrics (also in stored snapshots).
N_INCIDENTS = "n_incidents"  # real incidents in an area; real alerts of a unit
N_DRILLS = "n_drill_alerts"  # drill alerts to the entity's units


@dataclass(frozen=True)
class Sample:
    """How much performance data one entity's score rests on, against the minimums."""

    incidents: int
    incidents_needed: int
    drills: int
    drills_needed: int

    @property
    def timing_counts(self) -> bool:
        return self.incidents >= self.incidents_needed

    @property
    def drills_count(self) -> bool:
        return self.drills >= self.drills_needed

    @property
    def rated(self) -> bool:
        """Enough of either record to rank and colour the entity."""
        return self.timing_counts or self.drills_count


def sample_minimums(level: str) -> tuple[int, int]:
    """(incidents or alerts needed, drill alerts needed) at this level."""
    incidents_needed = (
        settings.REVIEW_INDEX_MIN_UNIT_ALERTS
        if level == "unit"
        else settings.REVIEW_INDEX_MIN_INCIDENTS
    )
    return max(1, int(incidents_needed)), max(1, int(settings.REVIEW_INDEX_MIN_DRILL_ALERTS))


def sample_of(
    level: str, metrics: dict[str, float | None], minimums: tuple[int, int] | None = None
) -> Sample:
    incidents_needed, drills_needed = minimums or sample_minimums(level)
    return Sample(
        incidents=int(metrics.get(N_INCIDENTS) or 0),
        incidents_needed=incidents_needed,
        drills=int(metrics.get(N_DRILLS) or 0),
        drills_needed=drills_needed,
    )


def score_entity(root: TreeNode, level: str, metrics: dict[str, float | None]) -> Scored:
    """Score one entity's tree on the metrics that count; the leaves left out for
    a small sample keep their raw value, marked, for the explanation page."""
    counted = counted_metrics(level, metrics)
    scored = score_tree(root, counted)
    stack = [scored]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.metric and node.metric not in counted and metrics.get(node.metric) is not None:
            node.raw = round(float(metrics[node.metric]), 1)
            node.below_sample = True
    return scored


def counted_metrics(level: str, metrics: dict[str, float | None]) -> dict[str, float | None]:
    """``metrics`` without the leaves whose sample is below its minimum: scored as
    "no data" (left out, siblings renormalised), never as 0 or as an average."""
    sample = sample_of(level, metrics)
    dropped = set()
    if not sample.timing_counts:
        dropped |= TIMING_METRICS
    if not sample.drills_count:
        dropped |= DRILL_METRICS
    return {k: v for k, v in metrics.items() if k not in dropped}


# --- the tree ---------------------------------------------------------------------------


@dataclass
class TreeNode:
    node: IndicatorNode
    children: list[TreeNode] = field(default_factory=list)
    # Looked up once: ``get_metric_display`` per entity costs a translation lookup.
    metric_display: str = ""


def indicator_tree() -> list[TreeNode]:
    """The active indicator tree (roots first, children in ``order``)."""
    nodes = list(IndicatorNode.objects.filter(active=True).order_by("order", "pk"))
    by_id = {
        n.pk: TreeNode(n, metric_display=str(n.get_metric_display()) if n.metric else "")
        for n in nodes
    }
    roots = []
    for n in nodes:
        parent = by_id.get(n.parent_id) if n.parent_id else None
        if parent is not None:
            parent.children.append(by_id[n.pk])
        elif n.parent_id is None:
            roots.append(by_id[n.pk])
    return roots


@dataclass
class Scored:
    """One node's score for one entity, with what it was made of."""

    code: str
    name: str
    weight: float
    score: float | None
    raw: float | None = None  # leaves: the metric's value
    metric: str = ""
    metric_display: str = ""
    good: float | None = None
    bad: float | None = None
    share: float | None = None  # the weight's share among scored siblings
    # Leaves: the metric has a value, but its sample is below the minimum.
    below_sample: bool = False
    children: list[Scored] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "weight": self.weight,
            "share": self.share,
            "score": self.score,
            "raw": self.raw,
            "metric": self.metric,
            "good": self.good,
            "bad": self.bad,
            "below_sample": self.below_sample,
            "children": [c.as_dict() for c in self.children],
        }


def leaf_score(value: float | None, *, good: float | None, bad: float | None) -> float | None:
    if value is None or good is None or bad is None or good == bad:
        return None
    return round(min(100.0, max(0.0, 100.0 * (value - bad) / (good - bad))), 1)


def score_tree(tree: TreeNode, metrics: dict[str, float | None]) -> Scored:
    n = tree.node
    if not tree.children:
        raw = metrics.get(n.metric) if n.metric else None
        return Scored(
            code=n.code,
            name=n.name,
            weight=n.weight,
            score=leaf_score(raw, good=n.good, bad=n.bad),
            raw=None if raw is None else round(raw, 1),
            metric=n.metric,
            metric_display=tree.metric_display,
            good=n.good,
            bad=n.bad,
        )
    children = [score_tree(c, metrics) for c in tree.children]
    scored = [c for c in children if c.score is not None and c.weight > 0]
    total = sum(c.weight for c in scored)
    for c in scored:
        c.share = round(c.weight / total, 3) if total else None
    score = round(sum(c.score * c.weight for c in scored) / total, 1) if total else None
    return Scored(code=n.code, name=n.name, weight=n.weight, score=score, children=children)


# --- metrics per entity -----------------------------------------------------------------


@dataclass
class Entity:
    key: int
    level: str
    label: str
    code: str
    metrics: dict[str, float | None] = field(default_factory=dict)


def _entities(*, user, level: str, region: Region | None) -> dict[int, Entity]:
    if level == "unit":
        qs = Unit.objects.filter(scope_filter(user, "unit"), is_active=True)
        if region is not None:
            qs = qs.filter(region__path__startswith=region.path)
        return {
            pk: Entity(pk, level, f"{code} {name}", code)
            for pk, code, name in qs.values_list("pk", "code", "name")
        }
    qs = Region.objects.filter(scope_filter(user, "region"), level=level)
    if region is not None:
        qs = qs.filter(path__startswith=region.path)
    return {
        pk: Entity(pk, level, name, code) for pk, name, code in qs.values_list("pk", "name", "code")
    }


def _timing_metrics(
    *, user, level: str, region: Region | None, since: dt.datetime, until: dt.datetime
) -> dict[int, dict[str, float | None]]:
    filters = selectors.IncidentFilter(region=region, since=since, until=until)
    out: dict[int, dict[str, float | None]] = {}
    if level == "unit":
        # A unit's own times and 1-3-5: of its alerts, how many it answered or
        # reached in time.
        t = selectors.targets_s()
        for s in selectors.unit_stats(user=user, filters=filters):
            m = out.setdefault(s.unit_id, {})
            m[N_INCIDENTS] = s.alerted
            none = selectors.DurationStats()
            m[M.RESPONSE_MEDIAN] = s.durations.get("to_response_s", none).median
            m[M.ARRIVAL_MEDIAN] = s.durations.get("to_control_s", none).median
            m[M.HANDLING_MEDIAN] = s.durations.get("to_handling_s", none).median
            for metric, name, step in (
                (M.RESPONDED_1MIN, "to_response_s", "responded"),
                (M.CONTROLLED_3MIN, "to_control_s", "controlled"),
            ):
                within = sum(c for v, c in s.hist.get(name, {}).items() if v <= t[step])
                m[metric] = 100.0 * within / s.alerted if s.alerted else None
        return out
    for g in selectors.area_stats(user=user, filters=filters, by=level):
        if g.key is None:
            continue
        out[g.key] = {
            N_INCIDENTS: g.incidents,
            M.RESPONSE_MEDIAN: g.durations.get("to_response_s", selectors.DurationStats()).median,
            M.ARRIVAL_MEDIAN: g.durations.get("to_control_s", selectors.DurationStats()).median,
            M.HANDLING_MEDIAN: g.durations.get("to_handling_s", selectors.DurationStats()).median,
            M.RESPONDED_1MIN: g.pct("responded"),
            M.CONTROLLED_3MIN: g.pct("controlled"),
            M.HANDLED_5MIN: g.pct("handled"),
        }
    return out


def _drill_metrics(
    *, user, level: str, since: dt.datetime, until: dt.datetime
) -> dict[int, dict[str, float | None]]:
    rows = selectors.drill_league(user=user, by=level, since=since, until=until)
    return {
        r.key: {N_DRILLS: r.units, M.DRILL_ACK: r.ack_pct, M.DRILL_ARRIVAL: r.arrival_median_s}
        for r in rows
        if r.key is not None
    }


def _readiness_metrics(*, user, level: str, region: Region | None) -> dict[int, dict[str, float]]:
    """Share of active units with someone to send beyond their own post, and with
    the whole standard kit usable and in date (current state, not per period)."""
    units = Unit.objects.filter(scope_filter(user, "unit"), is_active=True)
    if region is not None:
        units = units.filter(region__path__startswith=region.path)
    # The unit rules live in units.selectors: who counts as on duty, which kit
    # line is usable (kit_ok_q) and when the kit is complete.
    rows = unit_annotate_readiness(units).values_list(
        "pk", "region_id", "region__parent_id", "ready", "kit_complete"
    )
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for pk, street_id, district_id, ready, kit_complete in rows:
        key = {"unit": pk, "street": street_id, "district": district_id}[level]
        s = sums[key]
        s[0] += 1
        # Ready = someone to send beyond the post, the rule ranking applies
        # (units.readiness).
        s[1] += bool(ready)
        s[2] += bool(kit_complete)
    return {
        key: {M.DUTY_COVERAGE: 100.0 * s[1] / s[0], M.KIT_COMPLETE: 100.0 * s[2] / s[0]}
        for key, s in sums.items()
        if s[0]
    }


def _coverage_metrics(*, level: str) -> dict[int, dict[str, float]]:
    """Gap share of the latest coverage snapshot's cells, per district or street
    (a cell belongs to the street whose point is nearest within its district)."""
    if level == "unit":
        return {}
    snapshot = CoverageSnapshot.objects.order_by("-computed_at", "-pk").first()
    if snapshot is None or not snapshot.cells.get("cells"):
        return {}
    cells = np.array(
        [[c[0], c[1], -1 if c[2] is None else c[2], c[3]] for c in snapshot.cells["cells"]],
        dtype=float,
    )
    gap = (cells[:, 2] < 0) | (cells[:, 2] > snapshot.target_s)
    if level == "district":
        owner = cells[:, 3].astype(np.int64)
    else:
        streets = list(
            Region.objects.filter(level=Region.Level.STREET, lat__isnull=False).values_list(
                "pk", "parent_id", "lat", "lon"
            )
        )
        owner = np.zeros(len(cells), dtype=np.int64)
        for district_id in np.unique(cells[:, 3]).astype(np.int64):
            mine = [s for s in streets if s[1] == district_id]
            if not mine:
                continue
            idx = np.flatnonzero(cells[:, 3] == district_id)
            pts = np.array([[s[2], s[3]] for s in mine])
            k = math.cos(math.radians(float(cells[idx, 0].mean())))
            d2 = (cells[idx, 0, None] - pts[None, :, 0]) ** 2 + (
                (cells[idx, 1, None] - pts[None, :, 1]) * k
            ) ** 2
            owner[idx] = np.array([mine[j][0] for j in d2.argmin(axis=1)])
    out = {}
    for key in np.unique(owner):
        if key == 0:
            continue
        mine = owner == key
        out[int(key)] = {M.COVERAGE_GAP: 100.0 * float(gap[mine].sum()) / float(mine.sum())}
    return out


# --- scores -----------------------------------------------------------------------------


@dataclass
class IndexRow:
    key: int
    level: str
    label: str
    code: str
    score: float | None
    rank: int | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    # The scored tree: given when computed live, else scored from ``metrics`` on
    # first use (a stored snapshot's page shows 300 rows of 23,000).
    scored: Scored | None = field(default=None, repr=False)
    root: TreeNode | None = field(default=None, repr=False)

    @property
    def tree(self) -> Scored | None:
        if self.scored is None and self.root is not None:
            self.scored = score_entity(self.root, self.level, self.metrics)
        return self.scored

    @cached_property
    def sample(self) -> Sample:
        # Cached: ranking 23,000 rows asks each for it more than once.
        return sample_of(self.level, self.metrics)

    @property
    def rated(self) -> bool:
        return self.sample.rated


def _rank(rows: list[IndexRow]) -> None:
    """Rated entities first, best score first, ranked 1..n; unrated ones after them
    (by score, for reference) with no rank: an area without a record is never
    ranked against areas with one."""
    if rows:
        minimums = sample_minimums(rows[0].level)  # settings read once, not per row
        for r in rows:
            r.sample = sample_of(r.level, r.metrics, minimums)
    rows.sort(
        key=lambda r: (
            not (r.rated and r.score is not None),
            r.score is None,
            -(r.score or 0),
            r.code,
        )
    )
    for i, r in enumerate(rows):
        r.rank = i + 1 if r.rated and r.score is not None else None


INDEX_HEAD_ROWS = 300  # rows a stored snapshot keeps apart for the index page


def index_page(
    *,
    user,
    level: str,
    region: Region | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = INDEX_HEAD_ROWS,
) -> tuple[list[IndexRow], int]:
    """The first ``limit`` rows of ``index_scores`` and how many rows it has.

    From a stored snapshot only its head is read: the rows were stored best
    first, so the head's ranks are the whole list's."""
    since, until = _index_period(level, since, until)
    snapshot = selectors.index_snapshot_for(
        user=user, level=level, region=region, since=since, until=until, head_only=True
    )
    if (
        snapshot is not None
        and snapshot.row_count is not None
        and (limit <= len(snapshot.head) or snapshot.row_count == len(snapshot.head))
    ):
        rows = _snapshot_rows(snapshot.head[:limit], level)
        return rows, snapshot.row_count
    # No snapshot: computed now (index_scores would only ask for it again).
    rows = index_scores(
        user=user, level=level, region=region, since=since, until=until,
        stored=snapshot is not None,
    )  # fmt: skip
    return rows[:limit], len(rows)


def _index_period(
    level: str, since: dt.datetime | None, until: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime]:
    """The level checked and the period filled in: the last REVIEW_INDEX_DAYS."""
    if level not in LEVELS:
        raise selectors.ReviewInputError({"level": f"level must be one of {', '.join(LEVELS)}"})
    until = until or timezone.now()
    return until - dt.timedelta(days=settings.REVIEW_INDEX_DAYS) if since is None else since, until


def _snapshot_rows(payload: list, level: str) -> list[IndexRow]:
    roots = indicator_tree()
    rows = [
        IndexRow(
            key=key, level=level, label=label, code=code, score=score, metrics=metrics,
            root=roots[0] if roots else None,
        )
        for key, label, code, score, metrics in payload
    ]  # fmt: skip
    _rank(rows)
    return rows


def index_scores(
    *,
    user,
    level: str,
    region: Region | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    stored: bool = True,
) -> list[IndexRow]:
    """Score every district, street or unit in scope (under ``region``), best first.

    Period metrics (timing, compliance, drills) use [since, until), default the
    last 90 days; readiness and coverage are the current state. For the default
    period the snapshot kept by beat answers (``stored``; see
    ``selectors.index_snapshot_for``), else everything is computed now.
    """
    since, until = _index_period(level, since, until)
    snapshot = (
        selectors.index_snapshot_for(
            user=user, level=level, region=region, since=since, until=until
        )
        if stored
        else None
    )
    if snapshot is not None:
        return _snapshot_rows(snapshot.rows, level)
    roots = indicator_tree()
    entities = _entities(user=user, level=level, region=region)
    sources: Iterable[dict[int, dict[str, float | None]]] = (
        _timing_metrics(user=user, level=level, region=region, since=since, until=until),
        _drill_metrics(user=user, level=level, since=since, until=until),
        _readiness_metrics(user=user, level=level, region=region),
        _coverage_metrics(level=level),
    )
    for source in sources:
        for key, values in source.items():
            if key in entities:
                entities[key].metrics.update(values)
    rows = []
    for e in entities.values():
        tree = score_entity(roots[0], level, e.metrics) if roots else None
        rows.append(
            IndexRow(
                key=e.key,
                level=level,
                label=e.label,
                code=e.code,
                score=tree.score if tree else None,
                scored=tree,
                metrics=e.metrics,
            )
        )
    _rank(rows)
    return rows


def index_trend(
    *, user, level: str, key: int, weeks: int = 8, region: Region | None = None
) -> list[tuple[str, float | None]]:
    """One entity's score for each of the last ``weeks`` whole weeks (Monday starts);
    None for a week whose sample is too small to rate, as on the index itself."""
    today = timezone.localdate()
    monday = today - dt.timedelta(days=today.weekday())
    out = []
    for i in range(weeks, 0, -1):
        start_day = monday - dt.timedelta(days=7 * i)
        start = timezone.make_aware(dt.datetime.combine(start_day, dt.time.min))
        rows = index_scores(
            user=user, level=level, region=region, since=start, until=start + dt.timedelta(days=7)
        )
        row = next((r for r in rows if r.key == key), None)
        out.append((start_day.isoformat(), row.score if row and row.rated else None))
    return out


def open_incidents_by(*, user, level: str) -> dict[int, int]:
    """Open (real) incidents per street or district in the user's scope."""
    qs = Incident.objects.filter(
        scope_filter(user, "incident"), status=Incident.Status.OPEN, is_drill=False
    ).order_by()
    field_name = "region_id" if level == "street" else "region__parent_id"
    return dict(qs.values(field_name).annotate(n=Count("*")).values_list(field_name, "n"))


# --- three-colour warning (三色预警) -------------------------------------------------------

GREEN, AMBER, RED = "green", "amber", "red"
# No colour: too little data to judge (数据不足). Not a warning, and not "fine".
GREY = "grey"
_WORSE = {GREY: -1, GREEN: 0, AMBER: 1, RED: 2}


def colour_for(
    *, score: float | None, open_incidents: int, sample: Sample | None = None
) -> tuple[str, list[str]]:
    """Green / amber / red from the index score and open incidents; the worse wins.
    An entity with too little data (``sample`` not rated) or no score is grey,
    unless open incidents make it amber or red: those are facts now, not a sample.
    Returns the colour and the reasons (Chinese, for the page)."""

    reasons = []
    by_score = GREEN
    if sample is not None and not sample.rated:
        by_score = GREY
        reasons.append(
            _("数据不足：警情样本 %(n)s/%(need)s，演练样本 %(d)s/%(dneed)s")
            % {
                "n": sample.incidents,
                "need": sample.incidents_needed,
                "d": sample.drills,
                "dneed": sample.drills_needed,
            }
        )
    elif score is None:
        by_score = GREY
        reasons.append(_("无指数数据"))
    elif score < settings.REVIEW_WARNING_AMBER:
        by_score = RED
        reasons.append(
            _("综合指数 %(s)s 低于 %(t)s") % {"s": score, "t": settings.REVIEW_WARNING_AMBER}
        )
    elif score < settings.REVIEW_WARNING_GREEN:
        by_score = AMBER
        reasons.append(
            _("综合指数 %(s)s 低于 %(t)s") % {"s": score, "t": settings.REVIEW_WARNING_GREEN}
        )
    by_open = GREEN
    if open_incidents >= settings.REVIEW_WARNING_OPEN_RED:
        by_open = RED
    elif open_incidents >= settings.REVIEW_WARNING_OPEN_AMBER:
        by_open = AMBER
    if by_open != GREEN:
        reasons.append(_("%(n)s 起警情正在处置") % {"n": open_incidents})
        return max(by_score, by_open, key=_WORSE.__getitem__), reasons
    return by_score, reasons


@dataclass
class WarningArea:
    key: int
    level: str
    label: str
    code: str
    score: float | None
    open_incidents: int
    colour: str
    reasons: list[str]
    sample: Sample | None = None
    lat: float | None = None
    lon: float | None = None
    boundary: dict | None = None


def warning_areas(*, user, region: Region | None = None) -> tuple[str, list[WarningArea]]:
    """The areas one level below ``region`` (city -> districts, district -> streets,
    street -> units), each coloured green / amber / red. Returns (level, areas)."""
    level = "district"
    if region is not None and region.level == Region.Level.DISTRICT:
        level = "street"
    elif region is not None and region.level == Region.Level.STREET:
        level = "unit"
    rows = index_scores(user=user, level=level, region=region)
    if level == "unit":
        open_by = dict(
            Incident.objects.filter(
                scope_filter(user, "incident"), status=Incident.Status.OPEN, is_drill=False
            )
            .filter(dispatches__unit_id__in=[r.key for r in rows])
            .order_by()
            .values("dispatches__unit_id")
            .annotate(n=Count("*"))
            .values_list("dispatches__unit_id", "n")
        )
        places = dict(
            (pk, (lat, lon, None))
            for pk, lat, lon in Unit.objects.filter(pk__in=[r.key for r in rows]).values_list(
                "pk", "lat", "lon"
            )
        )
    else:
        open_by = open_incidents_by(user=user, level=level)
        places = {
            pk: (lat, lon, boundary)
            for pk, lat, lon, boundary in Region.objects.filter(
                pk__in=[r.key for r in rows]
            ).values_list("pk", "lat", "lon", "boundary")
        }
    areas = []
    for r in rows:
        n_open = open_by.get(r.key, 0)
        colour, reasons = colour_for(score=r.score, open_incidents=n_open, sample=r.sample)
        lat, lon, boundary = places.get(r.key, (None, None, None))
        areas.append(
            WarningArea(
                key=r.key,
                level=level,
                label=r.label,
                code=r.code,
                score=r.score,
                open_incidents=n_open,
                colour=colour,
                reasons=reasons,
                sample=r.sample,
                lat=lat,
                lon=lon,
                boundary=boundary if level == "district" else None,
            )
        )
    areas.sort(key=lambda a: (-_WORSE[a.colour], a.score if a.score is not None else -1, a.code))
    return level, areas
