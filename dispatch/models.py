from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from units.models import Member, Region, Unit


class Incident(models.Model):
    class Kind(models.TextChoices):
        KNIFE = "knife", _("持刀/暴力")
        FIGHT = "fight", _("打架斗殴")
        FIRE = "fire", _("火情")
        MEDICAL = "medical", _("急病救助")
        THEFT = "theft", _("盗抢")
        CROWD = "crowd", _("人群聚集")
        OTHER = "other", _("其他")

    class Severity(models.IntegerChoices):
        LOW = 1, _("一般")
        MEDIUM = 2, _("较大")
        HIGH = 3, _("重大")
        CRITICAL = 4, _("特别重大")

    class Source(models.TextChoices):
        CAD = "cad", _("110/接处警系统")
        CONSOLE = "console", _("指挥台")
        MEMBER = "member", _("队员一键报警")
        DRILL = "drill", _("拉动测试")

    class Status(models.TextChoices):
        OPEN = "open", _("处置中")
        CLOSED = "closed", _("已处置")
        CANCELLED = "cancelled", _("已撤销")

    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices)
    severity = models.PositiveSmallIntegerField(
        _("等级"), choices=Severity.choices, default=Severity.MEDIUM
    )
    lat = models.FloatField(_("纬度"))
    lon = models.FloatField(_("经度"))
    address = models.CharField(_("地址"), max_length=255, blank=True)
    description = models.TextField(_("描述"), blank=True, max_length=2000)
    source = models.CharField(_("来源"), max_length=16, choices=Source.choices)
    # NULL (not "") for "no id", so the partial unique constraint ignores it.
    external_id = models.CharField(  # noqa: DJ001
        _("外部编号"), max_length=64, null=True, blank=True
    )
    region = models.ForeignKey(
        Region,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="incidents",
        verbose_name=_("所属街镇"),
    )
    # Set on a member's report / a console intake only: indexed where set
    # (Meta.indexes), not on every CAD incident's NULL.
    reported_by = models.ForeignKey(
        Member,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="reported_incidents",
        verbose_name=_("报警队员"),
        db_index=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("录入人"),
        db_index=False,
    )
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.OPEN)
    is_drill = models.BooleanField(_("演练"), default=False)
    # Whether the chain may use the channels that cost money per message
    # (settings.NOTIFY_PAID_CHANNELS: SMS, voice). Real incidents always may; a
    # drill only when the officer ticked "use SMS/voice" on the drill form.
    paid_channels = models.BooleanField(_("使用短信/语音"), default=True)
    # The escalation policy in force at intake: settings may change later, an
    # open incident keeps the rules it was opened with.
    policy = models.JSONField(_("升级策略"))

    # The four firsts (四个第一时间): each set once, in order.
    discovered_at = models.DateTimeField(_("第一时间发现"))
    responded_at = models.DateTimeField(_("第一时间响应"), null=True, blank=True)
    controlled_at = models.DateTimeField(_("第一时间管控"), null=True, blank=True)
    handled_at = models.DateTimeField(_("第一时间处置"), null=True, blank=True)
    received_at = models.DateTimeField(_("接报时间"), auto_now_add=True)
    flagged = models.BooleanField(_("超时标记"), default=False)
    # Last IncidentEvent.seq; bumped with a conditional UPDATE, which also
    # serialises concurrent event writers on this incident's row.
    last_seq = models.PositiveIntegerField(default=0, editable=False)
    # Gathering point (区域集结) a police station sets from its board: the
    # responders' destination instead of the scene (a drill's instead of each
    # unit's own post). Both coordinates or neither (constraint below).
    gather_lat = models.FloatField(_("集结点纬度"), null=True, blank=True)
    gather_lon = models.FloatField(_("集结点经度"), null=True, blank=True)
    gather_note = models.CharField(_("集结点说明"), max_length=120, blank=True)
    gather_set_at = models.DateTimeField(_("集结点设定时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("警情")
        verbose_name_plural = _("警情")
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=Q(external_id__isnull=False),
                name="incident_unique_external_id",
            ),
            models.CheckConstraint(
                condition=Q(lat__gte=-90, lat__lte=90, lon__gte=-180, lon__lte=180),
                name="incident_latlon_in_range",
            ),
            models.CheckConstraint(
                condition=Q(gather_lat__isnull=True, gather_lon__isnull=True)
                | Q(
                    gather_lat__gte=-90,
                    gather_lat__lte=90,
                    gather_lon__gte=-180,
                    gather_lon__lte=180,
                ),
                name="incident_gather_point_whole",
            ),
            models.CheckConstraint(
                condition=Q(responded_at__isnull=True) | Q(responded_at__gte=F("discovered_at")),
                name="incident_responded_after_discovered",
            ),
            models.CheckConstraint(
                condition=Q(controlled_at__isnull=True)
                | (Q(responded_at__isnull=False) & Q(controlled_at__gte=F("responded_at"))),
                name="incident_controlled_after_responded",
            ),
            models.CheckConstraint(
                condition=Q(handled_at__isnull=True)
                | (Q(controlled_at__isnull=False) & Q(handled_at__gte=F("controlled_at"))),
                name="incident_handled_after_controlled",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="incident_status_received"),
            models.Index(fields=["discovered_at"], name="incident_discovered"),
            # Who reported / entered it (a member's or a user's deletion sets it
            # NULL through these): only the incidents that have one.
            models.Index(
                fields=["reported_by"],
                condition=Q(reported_by__isnull=False),
                name="incident_reported_by",
            ),
            models.Index(
                fields=["created_by"],
                condition=Q(created_by__isnull=False),
                name="incident_created_by",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()}"

    def destination(self, *, post: tuple[float, float] | None = None) -> tuple[str, float, float]:
        """Where a responding unit goes, and where its arrival is judged: the
        gathering point if a station set one; else, for a drill, the unit's own
        ``post`` (到岗); else the scene. The phone applies the same rule
        (static/member/js/alert.js ``destination``)."""
        if self.gather_lat is not None and self.gather_lon is not None:
            return ("gathering", self.gather_lat, self.gather_lon)
        if self.is_drill and post is not None:
            return ("own_post", *post)
        return ("scene", self.lat, self.lon)


class IncidentEvent(models.Model):
    """Append-only timeline. ``id`` is the replay cursor; ``seq`` counts per incident."""

    class Type(models.TextChoices):
        CREATED = "created", _("接报")
        ALERTED = "alerted", _("推送")
        DELIVERED = "delivered", _("送达")
        SEEN = "seen", _("已读")
        ACCEPTED = "accepted", _("接受")
        DECLINED = "declined", _("拒绝")
        ON_SITE = "on_site", _("到场管控")
        HANDLED = "handled", _("处置完毕")
        ESCALATED = "escalated", _("升级")
        NO_UNITS = "no_units", _("范围内无可用单元")
        STOOD_DOWN = "stood_down", _("解除待命")
        FLAGGED = "flagged", _("超时预警")
        GATHERING = "gathering", _("区域集结")
        CLOSED = "closed", _("结案")
        # The notification chain (dispatch/notify.py): a channel reached the member
        # (app delivered is DELIVERED above), a provider call was retried, and a
        # member no channel reached, to be called on the radio.
        REACHED = "reached", _("已触达")
        NOTIFY_RETRY = "notify_retry", _("渠道重试")
        UNREACHABLE = "unreachable", _("联系不上，需电台跟进")
        # A provider's receipt says its channel did not reach the member (SMS failed,
        # call unanswered): the boards show it per member, the chain moves on.
        NOTIFY_FAILED = "notify_failed", _("渠道未送达")

    # No index of its own: ``event_unique_seq`` (incident, seq) starts with it.
    incident = models.ForeignKey(
        Incident, models.CASCADE, related_name="events", verbose_name=_("警情"), db_index=False
    )
    seq = models.PositiveIntegerField(_("序号"))
    type = models.CharField(_("事件"), max_length=16, choices=Type.choices)
    unit = models.ForeignKey(
        Unit, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("单元")
    )
    # Set on a member's own events only (six in ten have none): indexed where
    # set (Meta.indexes).
    member = models.ForeignKey(
        Member,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("队员"),
        db_index=False,
    )
    # Set on staff actions only: indexed where set (Meta.indexes).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作人"),
        db_index=False,
    )
    data = models.JSONField(_("内容"), default=dict, blank=True)
    # Not indexed: events are read by incident (and id, the replay cursor),
    # never by time; the index was ten million entries at a million incidents.
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("警情事件")
        verbose_name_plural = _("警情事件")
        ordering = ["incident_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "seq"], name="event_unique_seq"),
        ]
        indexes = [
            # A phone's replay: an incident's events of the types phones are
            # sent, its own unit's alert among a city-wide wave's thousand,
            # without reading the receipts of every member reached.
            models.Index(fields=["incident", "type", "unit"], name="event_incident_type_unit"),
            # A member's or user's deletion sets their events' NULL through these.
            models.Index(fields=["member"], condition=Q(member__isnull=False), name="event_member"),
            models.Index(fields=["user"], condition=Q(user__isnull=False), name="event_user"),
        ]

    def __str__(self) -> str:
        return f"{self.incident_id}#{self.seq} {self.type}"


class Wave(models.Model):
    # No index of its own: ``wave_unique_number`` (incident, number) starts with it.
    incident = models.ForeignKey(Incident, models.CASCADE, related_name="waves", db_index=False)
    number = models.PositiveSmallIntegerField(_("批次"))
    radius_m = models.PositiveIntegerField(_("半径(米)"))
    reason = models.CharField(_("原因"), max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("推送批次")
        verbose_name_plural = _("推送批次")
        ordering = ["incident_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "number"], name="wave_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} wave {self.number}"


class Dispatch(models.Model):
    """One unit called to one incident."""

    class Status(models.TextChoices):
        ALERTED = "alerted", _("已推送")
        ACCEPTED = "accepted", _("已接受")
        DECLINED = "declined", _("已拒绝")
        STOOD_DOWN = "stood_down", _("已解除")
        ON_SITE = "on_site", _("已到场")
        HANDLED = "handled", _("已处置")

    # No index of its own: ``dispatch_unique_unit`` (incident, unit) starts with it.
    incident = models.ForeignKey(
        Incident, models.CASCADE, related_name="dispatches", db_index=False
    )
    wave = models.ForeignKey(Wave, models.CASCADE, related_name="dispatches")
    unit = models.ForeignKey(Unit, models.CASCADE, related_name="dispatches")
    rank = models.PositiveSmallIntegerField(_("排名"))
    distance_m = models.PositiveIntegerField(_("距离(米)"))
    eta_s = models.PositiveIntegerField(_("预计到达(秒)"))
    status = models.CharField(
        _("状态"), max_length=16, choices=Status.choices, default=Status.ALERTED
    )
    # Set on the accepting unit's dispatch only: indexed where set (Meta.indexes).
    accepted_by = models.ForeignKey(
        Member, models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    on_site_at = models.DateTimeField(null=True, blank=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("调度")
        verbose_name_plural = _("调度")
        constraints = [
            models.UniqueConstraint(fields=["incident", "unit"], name="dispatch_unique_unit"),
        ]
        indexes = [
            models.Index(
                fields=["accepted_by"],
                condition=Q(accepted_by__isnull=False),
                name="dispatch_accepted_by",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} -> unit {self.unit_id} ({self.status})"


class Delivery(models.Model):
    """Per-member receipt of an alert."""

    dispatch = models.ForeignKey(Dispatch, models.CASCADE, related_name="deliveries")
    member = models.ForeignKey(Member, models.CASCADE, related_name="deliveries")
    delivered_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("送达回执")
        verbose_name_plural = _("送达回执")
        constraints = [
            models.UniqueConstraint(fields=["dispatch", "member"], name="delivery_unique_member"),
        ]

    def __str__(self) -> str:
        return f"dispatch {self.dispatch_id} -> member {self.member_id}"


class Deadline(models.Model):
    """A timer of the escalation policy, as a row: claimed once, swept if missed."""

    incident = models.ForeignKey(Incident, models.CASCADE, related_name="deadlines")
    tier = models.CharField(_("层级"), max_length=32)
    due_at = models.DateTimeField(_("到期"))
    fired_at = models.DateTimeField(_("已触发"), null=True, blank=True)
    outcome = models.CharField(_("结果"), max_length=32, blank=True)

    class Meta:
        verbose_name = _("时限")
        verbose_name_plural = _("时限")
        constraints = [
            models.UniqueConstraint(fields=["incident", "tier"], name="deadline_unique_tier"),
        ]
        indexes = [
            models.Index(
                fields=["due_at"], condition=Q(fired_at__isnull=True), name="deadline_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.tier} @ {self.due_at:%H:%M:%S}"


class MemberLocation(models.Model):
    member = models.ForeignKey(Member, models.CASCADE, related_name="locations")
    # No index of its own: ``location_trail`` (incident, member, created_at) starts with it.
    incident = models.ForeignKey(
        Incident, models.CASCADE, null=True, blank=True, related_name="locations", db_index=False
    )
    lat = models.FloatField()
    lon = models.FloatField()
    accuracy_m = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("队员位置")
        verbose_name_plural = _("队员位置")
        indexes = [models.Index(fields=["incident", "member", "created_at"], name="location_trail")]

    def __str__(self) -> str:
        return f"{self.member_id} ({self.lat:.5f}, {self.lon:.5f})"


class HeldReceipt(models.Model):
    """A provider receipt naming a message id we have not recorded yet.

    A receipt can outrun its own send: the ids of a chunk of calls are written
    when the chunk's calls return, and a quick "failed" report may arrive first.
    It waits here and is applied when the id is recorded (``notify``), so a
    failed SMS still moves the member on at once; after ``RECEIPT_HOLD_S`` it is
    dropped (a forged or foreign id never matches anything)."""

    channel = models.CharField(max_length=16)
    provider_ref = models.CharField(max_length=64, db_index=True)
    phone = models.CharField(max_length=20)
    reached = models.BooleanField()
    answered = models.BooleanField(null=True)
    error_code = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("待匹配回执")
        verbose_name_plural = _("待匹配回执")

    def __str__(self) -> str:
        return f"{self.channel} {self.provider_ref}"


class NotificationAttempt(models.Model):
    """One step of the escalating chain (push, SMS, voice) for one alerted member.

    The unique (delivery, channel) row is the claim: a retried or duplicated
    task cannot send the same step twice.
    """

    class Status(models.TextChoices):
        SENDING = "sending", _("发送中")
        SENT = "sent", _("已发送")
        FAILED = "failed", _("失败")
        SKIPPED = "skipped", _("无可用渠道")
        # Not a channel: the once-only flag "no channel reached this member", kept as
        # an attempt of channel "radio" so the (delivery, channel) claim makes it once.
        RADIO = "radio", _("需电台跟进")

    delivery = models.ForeignKey(
        Delivery, models.CASCADE, related_name="notification_attempts", verbose_name=_("送达回执")
    )
    channel = models.CharField(_("渠道"), max_length=16)
    status = models.CharField(_("结果"), max_length=8, choices=Status.choices)
    detail = models.CharField(_("详情"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)
    # The provider's message or call id (Alibaba BizId / CallId, Tencent SerialNo /
    # CallId): receipts and key presses name it. Alibaba's SendBatchSms gives one id
    # to a whole call, so a receipt is matched on (id, phone number).
    provider_ref = models.CharField(_("渠道流水号"), max_length=64, blank=True, db_index=True)
    # When the channel reached the member: SMS delivered, call answered, push sent.
    reached_at = models.DateTimeField(_("触达时间"), null=True, blank=True)
    answered = models.BooleanField(_("已接听"), null=True, blank=True)  # voice only
    error_code = models.CharField(_("错误码"), max_length=64, blank=True)
    # The worker that inserted the row (bulk claims: INSERT ... ON CONFLICT DO NOTHING
    # cannot say which rows were its own).
    claim = models.CharField(max_length=32, blank=True, editable=False)

    class Meta:
        # Born in the phone app; dispatch's chain writes it, so it lives here now.
        db_table = "mobile_notificationattempt"
        verbose_name = _("提醒记录")
        verbose_name_plural = _("提醒记录")
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "channel"], name="notification_once_per_channel"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.channel} {self.status}"
