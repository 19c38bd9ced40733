from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords


class Region(models.Model):
    """A node of the region tree: city > district > street (街道/镇) > community.

    ``path`` is the materialised path of codes ("4401/440103/440103001/"), so a
    subtree is one indexed ``path__startswith`` filter.
    """

    class Level(models.TextChoices):
        CITY = "city", _("市")
        DISTRICT = "district", _("区")
        STREET = "street", _("街道/镇")
        COMMUNITY = "community", _("社区")

    code = models.CharField(_("区划代码"), max_length=16, unique=True)
    name = models.CharField(_("名称"), max_length=64)
    name_en = models.CharField(_("英文名称"), max_length=128, blank=True)
    level = models.CharField(_("层级"), max_length=16, choices=Level.choices)
    street_type = models.CharField(_("街镇类型"), max_length=16, blank=True)
    parent = models.ForeignKey(
        "self",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("上级"),
    )
    path = models.CharField(_("路径"), max_length=255, unique=True, editable=False)
    lat = models.FloatField(_("纬度"), null=True, blank=True)
    lon = models.FloatField(_("经度"), null=True, blank=True)
    # District outline (GeoJSON Polygon/MultiPolygon coordinates), for
    # "which district is this point in" and the no-tiles map.
    boundary = models.JSONField(_("边界"), null=True, blank=True)

    class Meta:
        verbose_name = _("行政区域")
        verbose_name_plural = _("行政区域")
        ordering = ["path"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.path = (self.parent.path if self.parent_id else "") + self.code + "/"
        super().save(*args, **kwargs)


class Unit(models.Model):
    class Kind(models.TextChoices):
        MALL = "mall", _("商场")
        SCHOOL = "school", _("学校")
        HOSPITAL = "hospital", _("医院")
        COMPANY = "company", _("企业")
        MARKET = "market", _("市场")
        HOTEL = "hotel", _("酒店")
        TRANSPORT = "transport", _("交通枢纽")
        COMMUNITY = "community", _("社区")
        OTHER = "other", _("其他")

    code = models.CharField(_("单元编码"), max_length=32, unique=True)
    name = models.CharField(_("单元名称"), max_length=128)
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices, default=Kind.OTHER)
    address = models.CharField(_("地址"), max_length=255, blank=True)
    lat = models.FloatField(_("纬度"))
    lon = models.FloatField(_("经度"))
    region = models.ForeignKey(
        Region, models.PROTECT, related_name="units", verbose_name=_("所属街镇")
    )
    is_active = models.BooleanField(_("启用"), default=True)
    # People who must stay on the unit's own post: dispatch never takes a unit
    # below this many on duty.
    post_min = models.PositiveSmallIntegerField(_("本岗最少留守人数"), default=1)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    # Who changed what and when, before and after (admin "历史" page, imports).
    history = HistoricalRecords(verbose_name=_("应急单元历史"))

    class Meta:
        verbose_name = _("应急单元")
        verbose_name_plural = _("应急单元")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(lat__gte=-90, lat__lte=90) & Q(lon__gte=-180, lon__lte=180),
                name="unit_latlon_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Member(models.Model):
    class Role(models.TextChoices):
        LEADER = "leader", _("负责人")
        MEMBER = "member", _("队员")

    name = models.CharField(_("姓名"), max_length=64)
    phone = models.CharField(_("手机号"), max_length=20, unique=True)
    unit = models.ForeignKey(Unit, models.CASCADE, related_name="members", verbose_name=_("单元"))
    role = models.CharField(_("角色"), max_length=16, choices=Role.choices, default=Role.MEMBER)
    on_duty = models.BooleanField(_("在岗"), default=False)
    duty_since = models.DateTimeField(_("上岗时间"), null=True, blank=True)
    trained = models.BooleanField(_("已培训"), default=True)
    is_active = models.BooleanField(_("有效"), default=True)
    # Members are rostered without a login; the account is made at first sign-in.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="member",
        verbose_name=_("登录账号"),
    )
    history = HistoricalRecords(verbose_name=_("队员历史"))

    class Meta:
        verbose_name = _("队员")
        verbose_name_plural = _("队员")
        ordering = ["unit_id", "id"]
        indexes = [
            models.Index(fields=["unit", "on_duty"], name="member_unit_duty"),
            # The ~41k members on duty out of 245k: readiness counts read just these.
            models.Index(
                fields=["unit"], condition=Q(on_duty=True, is_active=True), name="member_on_duty"
            ),
        ]

    def __str__(self) -> str:
        # Masked: this string shows up in pages of every role (history, incident
        # timelines, breadcrumbs); the full number only where a role may see it.
        return f"{self.name} ({phone_mask(self.phone)})"

    @property
    def phone_masked(self) -> str:
        return phone_mask(self.phone)


def phone_mask(phone: str) -> str:
    """``13812341234`` -> ``138****1234``: enough to tell people apart, not to call them."""
    if len(phone) < 8:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


class EquipmentKind(models.TextChoices):
    """The standard kit catalogue (标准装备)."""

    STEEL_FORK = "steel_fork", _("钢叉")
    SHIELD = "shield", _("盾牌")
    HELMET = "helmet", _("防暴头盔")
    STAB_VEST = "stab_vest", _("防刺服")
    BATON = "baton", _("警棍")
    CUT_GLOVES = "cut_gloves", _("防割手套")
    EXTINGUISHER = "extinguisher", _("灭火器")
    FIRST_AID = "first_aid", _("急救箱")
    AED = "aed", _("AED")
    RADIO = "radio", _("对讲机")


# Basic kit every unit keeps, with the minimum quantity. AEDs are extra.
STANDARD_KIT: dict[str, int] = {
    EquipmentKind.STEEL_FORK: 1,
    EquipmentKind.SHIELD: 2,
    EquipmentKind.HELMET: 2,
    EquipmentKind.STAB_VEST: 2,
    EquipmentKind.BATON: 2,
    EquipmentKind.CUT_GLOVES: 2,
    EquipmentKind.EXTINGUISHER: 2,
    EquipmentKind.FIRST_AID: 1,
    EquipmentKind.RADIO: 2,
}


class Equipment(models.Model):
    class Condition(models.TextChoices):
        GOOD = "good", _("完好")
        WORN = "worn", _("磨损")
        BROKEN = "broken", _("损坏")

    unit = models.ForeignKey(Unit, models.CASCADE, related_name="equipment", verbose_name=_("单元"))
    kind = models.CharField(_("装备"), max_length=16, choices=EquipmentKind.choices)
    quantity = models.PositiveSmallIntegerField(_("数量"), default=1)
    condition = models.CharField(
        _("状态"), max_length=8, choices=Condition.choices, default=Condition.GOOD
    )
    last_inspected = models.DateField(_("上次检查"), null=True, blank=True)
    expires = models.DateField(_("有效期至"), null=True, blank=True)
    history = HistoricalRecords(verbose_name=_("装备历史"))

    class Meta:
        verbose_name = _("装备")
        verbose_name_plural = _("装备")
        ordering = ["unit_id", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["unit", "kind"], name="equipment_unique_kind_per_unit"),
        ]
        # The readiness overview counts expired kit and overdue inspections per
        # street: range scans on these instead of reading every row.
        indexes = [
            models.Index(fields=["expires", "unit"], name="equipment_expires"),
            models.Index(fields=["last_inspected", "unit"], name="equipment_inspected"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} x{self.quantity}"


class StaffProfile(models.Model):
    """A staff account's role and the part of the roster it sees.

    Every role but the unit leader sees its ``region``'s subtree; a unit leader
    sees its own ``unit`` (its region is that unit's street). What each role may
    do is the table in ``units.scoping``.
    """

    class Role(models.TextChoices):
        CITY_ADMIN = "city_admin", _("市级管理员")
        DISTRICT_ADMIN = "district_admin", _("区级管理员")
        STREET_ADMIN = "street_admin", _("街镇管理员")
        POLICE_STATION = "police_station", _("派出所")
        POLICE_REVIEWER = "police_reviewer", _("公安复盘")
        UNIT_LEADER = "unit_leader", _("单元负责人")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="staff", verbose_name=_("账号")
    )
    role = models.CharField(_("角色"), max_length=20, choices=Role.choices)
    region = models.ForeignKey(Region, models.PROTECT, related_name="staff", verbose_name=_("辖区"))
    # A unit leader's own unit. PROTECT: deleting the unit must not silently
    # leave a leader account that sees nothing.
    unit = models.ForeignKey(
        Unit,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="leaders",
        verbose_name=_("所属单元"),
    )
    history = HistoricalRecords(verbose_name=_("工作人员历史"))

    class Meta:
        verbose_name = _("工作人员")
        verbose_name_plural = _("工作人员")
        constraints = [
            models.CheckConstraint(
                condition=~Q(role="unit_leader") | Q(unit__isnull=False),
                name="staff_unit_leader_has_unit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.get_role_display()} {self.region}"

    def clean(self) -> None:
        if self.role == self.Role.UNIT_LEADER:
            if self.unit_id is None:
                raise ValidationError({"unit": _("单元负责人必须指定所属单元。")})
            self.region_id = self.unit.region_id


class RosterChange(models.Model):
    """Append-only log of roster changes that affect dispatch ranking.

    Every process's in-memory unit index reads the rows after the last id it saw
    and reloads just those units (``unit_id`` NULL means "reload everything").
    """

    unit_id = models.BigIntegerField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("名册变更")
        verbose_name_plural = _("名册变更")

    def __str__(self) -> str:
        return f"{self.pk}: unit {self.unit_id or '*'}"


class ImportJob(models.Model):
    """One bulk import of a roster file, run by a Celery worker.

    The file is kept in the row (not on a disk the worker may not share) until
    the import is committed; a dry run keeps it so that "confirm" can commit
    exactly the file that was previewed.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("排队中")
        RUNNING = "running", _("进行中")
        DONE = "done", _("已完成")
        FAILED = "failed", _("有错误")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("导入人"),
    )
    filename = models.CharField(_("文件名"), max_length=255)
    size = models.PositiveBigIntegerField(_("大小(字节)"), default=0)
    data = models.BinaryField(_("文件内容"), null=True, editable=False)
    dry_run = models.BooleanField(_("预览(不写入)"), default=True)
    previewed = models.ForeignKey(
        "self",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("确认的预览"),
    )
    status = models.CharField(
        _("状态"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    phase = models.CharField(_("阶段"), max_length=16, blank=True)  # check / write
    progress_done = models.PositiveIntegerField(_("已处理行数"), default=0)
    progress_total = models.PositiveIntegerField(_("总行数"), default=0)
    # Counts and a sample per sheet, and every bad row: see units.importing.
    result = models.JSONField(_("结果"), default=dict, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    started_at = models.DateTimeField(_("开始时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("结束时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("导入任务")
        verbose_name_plural = _("导入任务")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.filename}"
