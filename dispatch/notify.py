"""Pluggable notification backends and the escalating alert chain.

Like Django's e-mail backends: ``settings.NOTIFY_BACKENDS`` maps a channel
("push", "sms", "voice", or a new one such as "wechat" or "radio") to a dotted
path of a class with ``send(notification) -> SendResult``. The default is the
console (log) backend for SMS and voice and Web Push for push; ``LocMemBackend``
keeps messages in ``notify.outbox`` for tests.

The chain: after a wave's alerts are pushed, each step of ``settings.NOTIFY_CHAIN``
runs ``after_s`` seconds after the wave (a Celery task per step for the whole
wave) and notifies every alerted member whose alert is still undelivered or
unanswered, whose incident is open and who is still on duty. A
``NotificationAttempt`` row per (delivery, channel) is the claim, so a step never
reaches a member twice on one channel.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from units.models import Member

from .models import Delivery, Dispatch, Incident, Wave

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    """What one backend sends to one member. ``text`` is for SMS / voice / bridges,
    ``payload`` (JSON) for apps that render it themselves (Web Push)."""

    channel: str
    member_id: int
    member_name: str
    phone: str
    text: str
    title: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    incident_id: int | None = None


@dataclass(frozen=True)
class SendResult:
    ok: bool
    detail: str = ""
    skipped: bool = False  # nothing to send to (e.g. no push subscription)


class BaseBackend:
    """Subclass and implement ``send``. Raise nothing for a failed delivery:
    return ``SendResult(ok=False, detail=...)``; the chain goes on to its next step."""

    def send(self, notification: Notification) -> SendResult:  # pragma: no cover
        raise NotImplementedError


class ConsoleBackend(BaseBackend):
    """Writes the message to the log: the default until a gateway is configured."""

    def send(self, notification: Notification) -> SendResult:
        log.info(
            "[notify:%s] to %s (%s): %s",
            notification.channel,
            notification.member_name,
            # The log is no place for whole phone numbers.
            f"{notification.phone[:3]}****{notification.phone[-4:]}",
            notification.text,
        )
        return SendResult(ok=True, detail="console")


outbox: list[Notification] = []


class LocMemBackend(BaseBackend):
    """Keeps every message in ``dispatch.notify.outbox`` (tests)."""

    def send(self, notification: Notification) -> SendResult:
        outbox.append(notification)
        return SendResult(ok=True, detail="locmem")


class WebPushBackend(BaseBackend):
    """Web Push to each of the member's browser subscriptions (VAPID, aes128gcm)."""

    def send(self, notification: Notification) -> SendResult:
        from mobile.models import PushSubscription
        from mobile.services import push_success_record

        from .webpush import push_send

        subs = list(PushSubscription.objects.filter(member_id=notification.member_id))
        if not subs:
            return SendResult(ok=False, skipped=True, detail="no subscription")
        payload = {
            "title": notification.title,
            "body": notification.text,
            **notification.payload,
        }
        sent, details = 0, []
        for sub in subs:
            result = push_send(
                endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth, payload=payload
            )
            if result.ok:
                sent += 1
                push_success_record(subscription_id=sub.pk)
            elif result.gone:
                sub.delete()  # the browser dropped it; keeping it only slows the next alert
                details.append(f"gone {result.status}")
            else:
                PushSubscription.objects.filter(pk=sub.pk).update(failures=sub.failures + 1)
                details.append(result.detail)
        return SendResult(ok=sent > 0, detail=f"{sent}/{len(subs)} sent " + "; ".join(details))


def backend_for(channel: str) -> BaseBackend:
    path = settings.NOTIFY_BACKENDS.get(channel)
    if not path:
        raise LookupError(f"no notification backend for channel {channel!r}")
    return import_string(path)()


def send_text(*, channel: str, member: Member, text: str) -> SendResult:
    """Send a plain text (a login code) through one channel's backend."""
    note = Notification(
        channel=channel, member_id=member.pk, member_name=member.name, phone=member.phone, text=text
    )
    try:
        return backend_for(channel).send(note)
    except Exception as exc:  # a broken gateway must not break the caller
        log.exception("notify %s to member %s failed", channel, member.pk)
        return SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:200])


# --- The escalating chain --------------------------------------------------------------


def chain_start_on_commit(*, wave_id: int) -> None:
    """Called where a wave is sent: after commit, schedule the chain's first step."""
    if settings.NOTIFY_CHAIN:
        transaction.on_commit(lambda: _step_schedule(wave_id=wave_id, step=0))


def _step_schedule(*, wave_id: int, step: int) -> None:
    from .tasks import notify_chain_step

    chain = settings.NOTIFY_CHAIN
    delay = float(chain[step]["after_s"]) - (float(chain[step - 1]["after_s"]) if step else 0.0)
    try:
        notify_chain_step.apply_async(
            (wave_id, step),
            countdown=max(0.0, delay),
            # A stale reminder is worse than none: drop it if it cannot run soon.
            expires=max(0.0, delay) + 120,
        )
    except Exception:
        log.exception("could not enqueue notification step %s of wave %s", step, wave_id)


def _pending(*, wave_id: int, condition: str):
    qs = Delivery.objects.filter(
        dispatch__wave_id=wave_id,
        dispatch__status=Dispatch.Status.ALERTED,
        dispatch__incident__status=Incident.Status.OPEN,
        member__on_duty=True,
        member__is_active=True,
    )
    if condition == "undelivered":
        qs = qs.filter(delivered_at=None)
    return qs


def chain_step(*, wave_id: int, step: int, schedule_next: bool = True) -> int:
    """Run one step of the chain for a wave; returns how many members it notified."""
    chain = settings.NOTIFY_CHAIN
    if step >= len(chain):
        return 0
    spec = chain[step]
    channel = spec["channel"]
    condition = spec.get("while", "unanswered")
    deliveries = list(
        _pending(wave_id=wave_id, condition=condition)
        .exclude(notification_attempts__channel=channel)
        .select_related("member", "dispatch__incident")
    )
    sent = 0
    if deliveries:
        backend = backend_for(channel)
        for delivery in deliveries:
            sent += _notify_one(backend=backend, channel=channel, delivery=delivery)
    # Later steps only while someone of this wave may still need them.
    if (
        schedule_next
        and step + 1 < len(chain)
        and _pending(wave_id=wave_id, condition="unanswered").exists()
    ):
        _step_schedule(wave_id=wave_id, step=step + 1)
    return sent


def chain_sweep(*, now: dt.datetime | None = None, grace_s: float = 5.0) -> int:
    """Run every step that is overdue by more than ``grace_s`` (a worker died, the
    broker was down when it should have been enqueued). Beat calls it every few
    seconds; the per-(delivery, channel) claim keeps it from sending twice."""
    chain = settings.NOTIFY_CHAIN
    if not chain:
        return 0
    now = now or timezone.now()
    horizon = max(float(s["after_s"]) for s in chain) + 300
    waves = Wave.objects.filter(
        created_at__gte=now - dt.timedelta(seconds=horizon),
        incident__status=Incident.Status.OPEN,
    ).values_list("pk", "created_at")
    sent = 0
    for wave_id, created_at in waves:
        for step, spec in enumerate(chain):
            if created_at + dt.timedelta(seconds=float(spec["after_s"]) + grace_s) <= now:
                sent += chain_step(wave_id=wave_id, step=step, schedule_next=False)
    return sent


def _notify_one(*, backend: BaseBackend, channel: str, delivery: Delivery) -> int:
    from mobile.models import NotificationAttempt

    try:
        with transaction.atomic():
            attempt = NotificationAttempt.objects.create(
                delivery=delivery, channel=channel, status=NotificationAttempt.Status.SENDING
            )
    except IntegrityError:
        return 0  # another worker claimed this step for this member
    note = alert_notification(channel=channel, delivery=delivery)
    try:
        result = backend.send(note)
    except Exception as exc:
        log.exception("notify %s for delivery %s failed", channel, delivery.pk)
        result = SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:200])
    status = (
        NotificationAttempt.Status.SENT
        if result.ok
        else NotificationAttempt.Status.SKIPPED
        if result.skipped
        else NotificationAttempt.Status.FAILED
    )
    NotificationAttempt.objects.filter(pk=attempt.pk).update(
        status=status, detail=result.detail[:255]
    )
    return 1 if result.ok else 0


def alert_notification(*, channel: str, delivery: Delivery) -> Notification:
    incident = delivery.dispatch.incident
    member = delivery.member
    where = incident.address or f"{incident.lat:.5f},{incident.lon:.5f}"
    title = _("【应急警情】%(kind)s（%(sev)s）") % {
        "kind": incident.get_kind_display(),
        "sev": incident.get_severity_display(),
    }
    text = _("%(title)s 地点：%(where)s，距你单元约 %(d)d 米。") % {
        "title": title,
        "where": where,
        "d": delivery.dispatch.distance_m,
    }
    if channel == "sms":
        text += " " + _("回复 1 接受，2 拒绝。")
    elif channel == "voice":
        text += " " + _("请打开手机应用接受或拒绝。")
    return Notification(
        channel=channel,
        member_id=member.pk,
        member_name=member.name,
        phone=member.phone,
        text=text,
        title=title,
        incident_id=incident.pk,
        payload={
            "type": "incident.alert",
            "incident_id": incident.pk,
            "kind": incident.kind,
            "severity": incident.severity,
            "url": f"/m/#incident-{incident.pk}",
            "tag": f"incident-{incident.pk}",
        },
    )


# --- SMS replies (the low-tech path) ---------------------------------------------------

SMS_ACTIONS = {"1": "accept", "2": "decline", "3": "on_site", "4": "handled"}


@dataclass(frozen=True)
class SmsReply:
    ok: bool
    text: str  # what to text back to the member
    incident_id: int | None = None
    action: str | None = None


def sms_reply_handle(*, phone: str, text: str) -> SmsReply:
    """A member's SMS reply: "1" accept, "2" decline, "3" on site, "4" handled,
    optionally followed by the incident number ("1 42").

    Goes through the same ``dispatch_act`` as the app, so an out-of-order or
    repeated reply is refused and changes nothing.
    """
    from units.member_auth import SignInError, phone_normalize

    from .services import ActionRefused, dispatch_act

    try:
        phone = phone_normalize(phone)
    except SignInError:
        return SmsReply(False, _("无法识别的号码。"))
    member = Member.objects.select_related("unit").filter(phone=phone).first()
    if member is None or not member.is_active:
        return SmsReply(False, _("该号码不是在册队员。"))
    match = re.fullmatch(r"\s*([1-4])(?:\s*#?\s*(\d{1,12}))?\s*", text or "")
    if match is None:
        return SmsReply(False, _("无法识别的回复。回复 1 接受，2 拒绝，3 已到场，4 处置完毕。"))
    action = SMS_ACTIONS[match.group(1)]
    incident_id = (
        int(match.group(2)) if match.group(2) else _sms_target(member=member, action=action)
    )
    if incident_id is None:
        return SmsReply(False, _("没有需要你回复的警情。"), action=action)
    try:
        dispatch_act(incident_id=incident_id, member=member, action=action)
    except ActionRefused as exc:
        return SmsReply(False, exc.message, incident_id=incident_id, action=action)
    labels = {
        "accept": _("已接受警情 #%(id)d，请尽快赶往现场。"),
        "decline": _("已拒绝警情 #%(id)d。"),
        "on_site": _("已登记到场：警情 #%(id)d。"),
        "handled": _("已登记处置完毕：警情 #%(id)d。"),
    }
    return SmsReply(True, labels[action] % {"id": incident_id}, incident_id, action)


def _sms_target(*, member: Member, action: str) -> int | None:
    """The newest open incident of the member's unit that this action applies to."""
    wanted = {
        "accept": [Dispatch.Status.ALERTED, Dispatch.Status.DECLINED],
        "decline": [Dispatch.Status.ALERTED],
        "on_site": [Dispatch.Status.ACCEPTED],
        "handled": [Dispatch.Status.ON_SITE],
    }[action]
    return (
        Dispatch.objects.filter(
            Q(unit_id=member.unit_id),
            status__in=wanted,
            incident__status=Incident.Status.OPEN,
        )
        .order_by("-created_at")
        .values_list("incident_id", flat=True)
        .first()
    )
