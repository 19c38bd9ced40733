"""Rows the member's phone app needs beside the roster and the dispatch core.

(The chain's ``NotificationAttempt`` moved to ``dispatch.models``, table kept.)

Kept in their own app (and migrations) so the roster and dispatch schemas stay
untouched: every class here only points at ``units`` / ``dispatch`` rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from units.models import Member


class MemberLoginCode(models.Model):
    """A one-time code that lets a rostered member set their password.

    Only a salted HMAC of the code is stored; issuing a new code retires the
    member's older unused ones.
    """

    class Channel(models.TextChoices):
        ADMIN = "admin", _("管理员下发")
        SMS = "sms", _("短信")

    member = models.ForeignKey(
        Member, models.CASCADE, related_name="login_codes", verbose_name=_("队员")
    )
    code_hash = models.CharField(max_length=128)
    channel = models.CharField(_("渠道"), max_length=8, choices=Channel.choices)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("下发人"),
    )
    created_at = models.DateTimeField(_("下发时间"), auto_now_add=True)
    expires_at = models.DateTimeField(_("有效期至"))
    used_at = models.DateTimeField(_("使用时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("一次性登录码")
        verbose_name_plural = _("一次性登录码")
        indexes = [
            models.Index(
                fields=["member", "expires_at"],
                condition=Q(used_at__isnull=True),
                name="login_code_usable",
            )
        ]

    def __str__(self) -> str:
        return f"{self.member_id} {self.channel} {self.created_at:%Y-%m-%d %H:%M}"


class SignInThrottle(models.Model):
    """Failed sign-in tries under one key, for throttling (mobile/auth.py).

    Keys: ``pair:<number>|<address>``, ``ip:<address>``, ``phone:<number>`` and
    ``code:<number>`` (wrong tries of the current one-time code). Kept for any
    number typed, rostered or not, so the answer never tells which are rostered.
    """

    # Named "phone" from when the only key was the number; it holds any key now.
    phone = models.CharField(_("键"), max_length=100, unique=True)
    failures = models.PositiveIntegerField(_("失败次数"), default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    next_try_at = models.DateTimeField(_("下次可尝试"), null=True, blank=True)

    class Meta:
        verbose_name = _("登录失败计数")
        verbose_name_plural = _("登录失败计数")

    def __str__(self) -> str:
        return f"{self.phone}: {self.failures}"


class PushSubscription(models.Model):
    """A browser's Web Push subscription (endpoint + its ECDH public key and auth secret)."""

    member = models.ForeignKey(
        Member, models.CASCADE, related_name="push_subscriptions", verbose_name=_("队员")
    )
    endpoint = models.URLField(_("推送地址"), max_length=1000, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    # The sign-in session that registered it: signing out removes it, so a
    # signed-out phone gets no more pushes.
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    user_agent = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("推送订阅")
        verbose_name_plural = _("推送订阅")

    def __str__(self) -> str:
        return f"{self.member_id} {self.endpoint[:60]}"


class AlertTest(models.Model):
    """A member's "test my alert" (测试提醒): their own chain, end to end, on a short
    timetable, every message marked as a test (mobile/alert_test.py).

    Deliberately not an ``Incident``: no dispatch, delivery, event or wave rows,
    so no report, index, drill, readiness figure or incident list can count it,
    no supervisor board shows it, and no teammate's phone hears it.
    """

    member = models.ForeignKey(
        Member, models.CASCADE, related_name="alert_tests", verbose_name=_("队员")
    )
    created_at = models.DateTimeField(_("发起时间"), auto_now_add=True, db_index=True)
    # The open page received the test frame (the app channel reached the member).
    app_delivered_at = models.DateTimeField(_("页面收到"), null=True, blank=True)
    stopped_at = models.DateTimeField(_("已停止"), null=True, blank=True)

    class Meta:
        verbose_name = _("测试提醒")
        verbose_name_plural = _("测试提醒")
        indexes = [models.Index(fields=["member", "created_at"], name="alert_test_member")]

    def __str__(self) -> str:
        return f"{self.member_id} test {self.created_at:%Y-%m-%d %H:%M}"


class AlertTestAttempt(models.Model):
    """One channel of a test run; unique per (test, channel), like the chain's claim."""

    class Status(models.TextChoices):
        SENDING = "sending", _("发送中")
        SENT = "sent", _("已发送")
        FAILED = "failed", _("失败")
        SKIPPED = "skipped", _("无可用渠道")

    test = models.ForeignKey(
        AlertTest, models.CASCADE, related_name="attempts", verbose_name=_("测试提醒")
    )
    channel = models.CharField(_("渠道"), max_length=16)
    status = models.CharField(_("结果"), max_length=8, choices=Status.choices)
    detail = models.CharField(_("详情"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("测试提醒记录")
        verbose_name_plural = _("测试提醒记录")
        constraints = [
            models.UniqueConstraint(fields=["test", "channel"], name="alert_test_once_per_channel")
        ]

    def __str__(self) -> str:
        return f"test {self.test_id} {self.channel} {self.status}"
