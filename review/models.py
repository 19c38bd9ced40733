"""Review data: drills, the readiness index tree, coverage-gap snapshots, roll-ups.

Incidents, dispatches and events stay in ``dispatch``; the review reads them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from dispatch.models import Incident
from units.models import Region


class Drill(models.Model):
    """A no-notice readiness drill (拉动测试): an Incident with ``is_drill`` whose one
    wave alerts every active unit in ``region``'s subtree, sent in batches by Celery."""

    class Scope(models.TextChoices):
        STREET = "street", _("街道/镇")
        AREA = "area", _("本辖区")
        DISTRICT = "district", _("区")
        CITY = "city", _("全市")

    class Status(models.TextChoices):
        QUEUED = "queued", _("待发送")
        SENDING = "sending", _("发送中")
        SENT = "sent", _("已发送")
        CLOSED = "closed", _("已结束")

    scope = models.CharField(_("范围"), max_length=16, choices=Scope.choices)
    region = models.ForeignKey(
        Region, models.PROTECT, related_name="drills", verbose_name=_("演练区域")
    )
    # The police station that ran it: the league table groups by this region.
    station = models.ForeignKey(
        Region, models.PROTECT, related_name="drills_run", verbose_name=_("发起派出所辖区")
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("发起人"),
    )
    incident = models.OneToOneField(
        Incident, models.CASCADE, related_name="drill", verbose_name=_("演练警情")
    )
    status = models.CharField(
        _("状态"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    units_total = models.PositiveIntegerField(_("应通知单元数"), default=0)
    units_alerted = models.PositiveIntegerField(_("已通知单元数"), default=0)
    created_at = models.DateTimeField(_("发起时间"), auto_now_add=True)
    sent_at = models.DateTimeField(_("发送完成"), null=True, blank=True)
    closed_at = models.DateTimeField(_("结束时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("拉动测试")
        verbose_name_plural = _("拉动测试")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_scope_display()} {self.region} #{self.pk}"


class IndicatorNode(models.Model):
    """One node of the readiness-and-response index tree (kept as data, editable in
    the admin). An inner node's score is the weighted mean of its children's; a
    leaf scores its ``metric`` linearly: 100 at ``good``, 0 at ``bad``, clamped."""

    class Metric(models.TextChoices):
        RESPONSE_MEDIAN = "response_median_s", _("响应时长中位数(秒)")
        ARRIVAL_MEDIAN = "arrival_median_s", _("到场时长中位数(秒)")
        HANDLING_MEDIAN = "handling_median_s", _("处置时长中位数(秒)")
        RESPONDED_1MIN = "responded_1min_pct", _("1分钟响应率(%)")
        CONTROLLED_3MIN = "controlled_3min_pct", _("3分钟到场率(%)")
        HANDLED_5MIN = "handled_5min_pct", _("5分钟处置率(%)")
        DRILL_ACK = "drill_ack_pct", _("演练响应率(%)")
        DRILL_ARRIVAL = "drill_arrival_median_s", _("演练到位时长中位数(秒)")
        DUTY_COVERAGE = "duty_coverage_pct", _("在岗覆盖率(%)")
        KIT_COMPLETE = "kit_complete_pct", _("装备齐全在效率(%)")
        COVERAGE_GAP = "coverage_gap_pct", _("3分钟覆盖盲区占比(%)")

    parent = models.ForeignKey(
        "self",
        models.CASCADE,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("上级指标"),
    )
    code = models.SlugField(_("编码"), max_length=64, unique=True)
    name = models.CharField(_("名称"), max_length=64)
    weight = models.FloatField(_("权重"), default=1.0)
    metric = models.CharField(_("度量"), max_length=32, choices=Metric.choices, blank=True)
    good = models.FloatField(_("满分值"), null=True, blank=True)
    bad = models.FloatField(_("零分值"), null=True, blank=True)
    order = models.PositiveSmallIntegerField(_("顺序"), default=0)
    active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("指标")
        verbose_name_plural = _("指标体系")
        ordering = ["order", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(weight__gte=0), name="indicator_weight_nonneg"),
        ]

    def __str__(self) -> str:
        return self.name


class CoverageSnapshot(models.Model):
    """Grid cells over the city and the on-foot ETA of the nearest ready unit to
    each, from ``dispatch.ranking`` (kept by Celery; the map reads the latest)."""

    computed_at = models.DateTimeField(_("计算时间"), auto_now_add=True)
    cell_m = models.PositiveIntegerField(_("网格边长(米)"))
    target_s = models.PositiveIntegerField(_("到达时限(秒)"))
    cell_count = models.PositiveIntegerField(_("网格数"))
    gap_count = models.PositiveIntegerField(_("盲区网格数"))
    # [[lat, lon, eta_s or null, district_id or null], ...] for every cell in the city
    cells = models.JSONField(_("网格"), default=list)
    seconds = models.FloatField(_("耗时(秒)"), default=0)

    class Meta:
        verbose_name = _("覆盖盲区快照")
        verbose_name_plural = _("覆盖盲区快照")
        ordering = ["-computed_at"]

    def __str__(self) -> str:
        return f"{self.computed_at:%Y-%m-%d %H:%M} {self.gap_count}/{self.cell_count}"


class IncidentFact(models.Model):
    """One real incident, flattened for the review's aggregates: the three
    durations in whole seconds (rounded up, as ``review.expressions``), 1-3-5 flags,
    its street, district and week. Kept by ``services.facts_sync`` (Celery beat)
    and written directly by ``seed_incidents``; incidents newer than the last
    synced one are read live and merged, so reports are never behind."""

    incident = models.OneToOneField(
        Incident, models.CASCADE, primary_key=True, related_name="review_fact", db_constraint=True
    )
    region_id = models.BigIntegerField(null=True)  # Incident.region, whatever its level
    street_id = models.BigIntegerField(null=True)
    district_id = models.BigIntegerField(null=True)
    kind = models.CharField(max_length=16)
    discovered_at = models.DateTimeField()
    week = models.IntegerField()
    to_response_s = models.IntegerField(null=True)
    to_control_s = models.IntegerField(null=True)
    to_handling_s = models.IntegerField(null=True)
    ok_responded = models.BooleanField(default=False)
    ok_controlled = models.BooleanField(default=False)
    ok_handled = models.BooleanField(default=False)
    ok_all = models.BooleanField(default=False)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("警情统计事实")
        verbose_name_plural = _("警情统计事实")
        indexes = [
            models.Index(fields=["district_id", "discovered_at"], name="fact_district_time"),
            models.Index(fields=["street_id", "discovered_at"], name="fact_street_time"),
            models.Index(fields=["discovered_at"], name="fact_time"),
        ]

    def __str__(self) -> str:
        return f"incident {self.incident_id}"


class DispatchFact(models.Model):
    """One unit called to one real incident, flattened: the unit's own response,
    arrival and handling times from the incident's discovery, and whether it
    accepted or declined. Kept with ``IncidentFact``."""

    dispatch = models.OneToOneField(
        "dispatch.Dispatch", models.CASCADE, primary_key=True, related_name="review_fact"
    )
    incident_id = models.BigIntegerField()
    unit_id = models.BigIntegerField()
    street_id = models.BigIntegerField(null=True)  # the incident's street and district
    district_id = models.BigIntegerField(null=True)
    unit_street_id = models.BigIntegerField(null=True)  # the unit's, for the user's scope
    unit_district_id = models.BigIntegerField(null=True)
    discovered_at = models.DateTimeField()
    kind = models.CharField(max_length=16)
    to_response_s = models.IntegerField(null=True)
    to_control_s = models.IntegerField(null=True)
    to_handling_s = models.IntegerField(null=True)
    declined = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("调度统计事实")
        verbose_name_plural = _("调度统计事实")
        indexes = [
            models.Index(fields=["district_id", "discovered_at"], name="dfact_district_time"),
            models.Index(fields=["street_id", "discovered_at"], name="dfact_street_time"),
            # Covering the per-unit reads (counts and the listed units' times):
            # a year of a unit's dispatches is read from the index alone, not
            # from rows scattered over a 5-million-row table.
            models.Index(
                fields=[
                    "unit_id", "discovered_at", "to_response_s", "to_control_s",
                    "to_handling_s", "declined",
                ],
                name="dfact_unit_time",
            ),
            # The partial weeks at the ends of a city-wide range, counted per unit:
            # PostgreSQL has no skip-scan over the unit index and read every fact.
            models.Index(
                fields=["discovered_at", "unit_id", "to_response_s", "to_control_s", "declined"],
                name="dfact_time_unit",
            ),
            # The listed units' medians: only the dispatches with a time (the
            # accepting unit's, about one in five), so a year of 220 units reads
            # ~20,000 entries, not 110,000.
            models.Index(
                fields=[
                    "unit_id", "discovered_at", "to_response_s", "to_control_s", "to_handling_s",
                ],
                condition=Q(to_response_s__isnull=False) | Q(to_control_s__isnull=False),
                name="dfact_unit_timed",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"dispatch {self.dispatch_id}"


class WeeklyRollup(models.Model):
    """Incident facts summed per week, region and kind: counts, 1-3-5 counts and
    per-second histograms of the three durations ({"to_response_s": {"38": 2}}).
    Rebuilt from ``IncidentFact`` for the weeks a facts sync touched, in the same
    transaction, so the two always agree."""

    week = models.IntegerField()
    region_id = models.BigIntegerField(null=True)
    street_id = models.BigIntegerField(null=True)
    district_id = models.BigIntegerField(null=True)
    kind = models.CharField(max_length=16)
    n = models.IntegerField()
    ok_responded = models.IntegerField()
    ok_controlled = models.IntegerField()
    ok_handled = models.IntegerField()
    ok_all = models.IntegerField()
    hist = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("周汇总")
        verbose_name_plural = _("周汇总")
        indexes = [
            models.Index(fields=["district_id", "week"], name="rollup_district_week"),
            models.Index(fields=["street_id", "week"], name="rollup_street_week"),
            models.Index(fields=["week"], name="rollup_week"),
        ]

    def __str__(self) -> str:
        return f"week {self.week} region {self.region_id} {self.kind}"


class _UnitCounts(models.Model):
    """A unit's dispatch counts for one key (week, unit, incident district)."""

    week = models.IntegerField()
    unit_id = models.BigIntegerField()
    unit_street_id = models.BigIntegerField(null=True)
    unit_district_id = models.BigIntegerField(null=True)
    district_id = models.BigIntegerField(null=True)  # the incidents'
    alerted = models.IntegerField()
    accepted = models.IntegerField()
    declined = models.IntegerField()
    no_answer = models.IntegerField()
    on_site = models.IntegerField()

    class Meta:
        abstract = True


class UnitWeekly(_UnitCounts):
    """Dispatch facts counted per week, unit and incident district: alerts, accepts,
    declines, arrivals (no kind, no incident street: a filter on those reads the
    dispatch facts). Rebuilt with ``WeeklyRollup``."""

    class Meta:
        verbose_name = _("单元周汇总")
        verbose_name_plural = _("单元周汇总")
        indexes = [
            models.Index(fields=["district_id", "week"], name="unitweek_district_week"),
            models.Index(fields=["unit_district_id", "week"], name="unitweek_unit_district"),
            models.Index(fields=["week"], name="unitweek_week"),
        ]

    def __str__(self) -> str:
        return f"week {self.week} unit {self.unit_id}"


class UnitCumulative(models.Model):
    """``UnitWeekly`` added up from the first week, packed: for each incident
    district, every unit's counts through the end of ``week`` (``review.packed``
    ``UNIT`` records under the key unit, unit street, unit district), one row for
    every week from the district's first to the last week with roll-ups
    (dense), so that any whole-week range costs two stored rows per district
    (the range's last week minus the week before its first) instead of one per
    unit and week. Rebuilt with ``UnitWeekly`` from the first week it touched."""

    week = models.IntegerField()
    district_id = models.BigIntegerField(null=True)  # the incidents'
    units = models.BinaryField(default=b"")

    class Meta:
        verbose_name = _("单元累计汇总")
        verbose_name_plural = _("单元累计汇总")
        indexes = [models.Index(fields=["week"], name="unitcum_week")]

    def __str__(self) -> str:
        return f"through week {self.week} district {self.district_id}"


class UnitDaily(models.Model):
    """Dispatch facts counted per local day, incident district and unit, packed as
    ``UnitCumulative``: the partial weeks at the ends of a range read a few days'
    rows instead of up to two weeks of dispatch facts. Rebuilt with ``UnitWeekly``."""

    day = models.IntegerField()  # local days since 1970-01-01 (``expressions.DayNumber``)
    district_id = models.BigIntegerField(null=True)  # the incidents'
    units = models.BinaryField(default=b"")

    class Meta:
        verbose_name = _("单元日汇总")
        verbose_name_plural = _("单元日汇总")
        indexes = [models.Index(fields=["day"], name="unitday_day")]

    def __str__(self) -> str:
        return f"day {self.day} district {self.district_id}"


class SetAsideIndex(models.Model):
    """A secondary index ``seed_incidents`` dropped for a bulk load, with the
    statement that builds it again. The run rebuilds and deletes it at the end;
    a run killed half-way leaves it here, and the next run rebuilds it first."""

    name = models.CharField(max_length=128, unique=True)
    sql = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("暂时移除的索引")
        verbose_name_plural = _("暂时移除的索引")

    def __str__(self) -> str:
        return self.name


class IndexSnapshot(models.Model):
    """The readiness index of every district, street or unit (``level``) of one
    area (a district, or the whole city when ``area_id`` is None) over the default
    period, as the beat task computed it at ``until``: the index page reads this
    instead of scoring 23,000 units per request. ``rows`` is
    ``[[key, label, code, score, {metric: value}], ...]``, best first."""

    area_id = models.BigIntegerField(null=True)
    level = models.CharField(max_length=16)
    since = models.DateTimeField()
    until = models.DateTimeField()
    rows = models.JSONField(default=list)
    # The first ``INDEX_HEAD_ROWS`` of ``rows`` and how many there are: the index
    # page shows 300 rows, and decoding all 23,000 units' metrics took longer
    # than the rest of the page. None: written before these were kept.
    head = models.JSONField(default=list)
    row_count = models.IntegerField(null=True)
    seconds = models.FloatField(default=0)

    class Meta:
        verbose_name = _("指数快照")
        verbose_name_plural = _("指数快照")
        indexes = [models.Index(fields=["area_id", "level", "until"], name="index_snapshot_area")]

    def __str__(self) -> str:
        return f"{self.level} area {self.area_id or '*'} {self.until:%Y-%m-%d %H:%M}"


class DistrictWeekly(models.Model):
    """``WeeklyRollup`` summed per week and district over streets and kinds (and
    ``located``: whether the incidents had a region), for city-wide reports: 600
    rows a year instead of 65,000. Rebuilt with ``WeeklyRollup``."""

    week = models.IntegerField()
    district_id = models.BigIntegerField(null=True)
    located = models.BooleanField(default=True)
    n = models.IntegerField()
    ok_responded = models.IntegerField()
    ok_controlled = models.IntegerField()
    ok_handled = models.IntegerField()
    ok_all = models.IntegerField()
    hist = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("区周汇总")
        verbose_name_plural = _("区周汇总")
        indexes = [models.Index(fields=["week"], name="districtweek_week")]

    def __str__(self) -> str:
        return f"week {self.week} district {self.district_id}"


class _PackedCounts(models.Model):
    """Incident facts summed over a period and area: counts, 1-3-5 counts and the
    three durations' per-second histograms packed (``review.packed.HIST``)."""

    located = models.BooleanField(default=True)  # whether the incidents had a region
    n = models.IntegerField()
    ok_responded = models.IntegerField()
    ok_controlled = models.IntegerField()
    ok_handled = models.IntegerField()
    ok_all = models.IntegerField()
    hist = models.BinaryField(default=b"")

    class Meta:
        abstract = True


class CityWeekly(_PackedCounts):
    """``DistrictWeekly`` summed over districts, packed: the city report's weekly
    trend reads one row a week. Rebuilt with ``WeeklyRollup``."""

    week = models.IntegerField()

    class Meta:
        verbose_name = _("全市周汇总")
        verbose_name_plural = _("全市周汇总")
        indexes = [models.Index(fields=["week"], name="cityweek_week")]

    def __str__(self) -> str:
        return f"week {self.week}"


class DistrictCumulative(_PackedCounts):
    """``DistrictWeekly`` added up from the first week, packed: per district, the
    counts and histograms through the end of ``week``, a row every week from the
    district's first to the last week with roll-ups (dense), so that a city
    report's districts and total over whole weeks read two rows per district
    (the last week minus the week before the first). Rebuilt with ``WeeklyRollup``
    from the first week it touched."""

    week = models.IntegerField()
    district_id = models.BigIntegerField(null=True)

    class Meta:
        verbose_name = _("区累计汇总")
        verbose_name_plural = _("区累计汇总")
        indexes = [models.Index(fields=["week"], name="districtcum_week")]

    def __str__(self) -> str:
        return f"through week {self.week} district {self.district_id}"


class DistrictDaily(_PackedCounts):
    """Incident facts summed per local day and district, packed: the partial weeks
    at the ends of a city report's range read days, not facts. Rebuilt with
    ``WeeklyRollup``."""

    day = models.IntegerField()  # local days since 1970-01-01 (``expressions.DayNumber``)
    district_id = models.BigIntegerField(null=True)

    class Meta:
        verbose_name = _("区日汇总")
        verbose_name_plural = _("区日汇总")
        indexes = [models.Index(fields=["day"], name="districtday_day")]

    def __str__(self) -> str:
        return f"day {self.day} district {self.district_id}"
