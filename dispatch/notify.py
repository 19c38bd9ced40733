"""Pluggable notification backends and the escalating alert chain.

Like Django's e-mail backends: ``settings.NOTIFY_BACKENDS`` maps a channel
("push", "sms", "voice", or a new one such as "wechat" or "radio") to a dotted
path of a class with ``send(notification) -> SendResult``. The default is the
console (log) backend for SMS and voice and Web Push for push (its member side,
subscriptions and VAPID, is ``mobile.webpush.WebPushBackend``: the setting names it,
so dispatch never imports the phone app); ``LocMemBackend``
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
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from units.models import Member

from .models import Delivery, Dispatch, Incident, NotificationAttempt, Wave

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
    # Imported here: tasks imports this module at its top (cycle notify <-> tasks).
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
    # A drill not ticked "use SMS/voice" stays on the free channels (app, push).
    if channel in settings.NOTIFY_PAID_CHANNELS:
        deliveries = [d for d in deliveries if d.dispatch.incident.paid_channels]
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
