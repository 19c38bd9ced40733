""" "Test my alert" (测试提醒): a member runs their own notification chain.

What it does, in order: an ``alert.test`` frame to the member's own open pages
(``member.<id>`` group, never a unit group), then each channel of
``settings.NOTIFY_CHAIN`` (Web Push, SMS, voice) through the same backends a real
alert uses, one every ``ALERT_TEST_STEP_S`` seconds, until the chain ends or
the member stops the test. Unlike a real alert it runs every channel whatever
the page answered: the point is to learn which of them reach this phone.

Why it cannot be mistaken for an incident or reach anyone else:

- It is an ``AlertTest`` row, not an ``Incident``: no dispatch, delivery, event
  or wave, so no review report, index, drill score, readiness figure, incident
  list, supervisor board or teammate ever sees it.
- Every message starts with 【测试提醒】 and says it is not a real incident;
  the push uses its own tag (``alert-test-<id>``), the page its own screen.
- It goes to the member who asked, by their id and their own phone number only.
- One test per member per ``ALERT_TEST_MIN_INTERVAL_S``, at most
  ``ALERT_TEST_PER_DAY`` a day: SMS and calls cost money.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from dispatch.events import member_group, push_on_commit
from dispatch.notify import Notification, SendResult, backend_for
from dispatch.policy import channel_label
from units.models import Member

from .models import AlertTest, AlertTestAttempt

log = logging.getLogger(__name__)


class AlertTestRefused(Exception):
    """Too soon after the last test, or too many today: ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def _timetable() -> list[dict[str, Any]]:
    """Each channel of the chain and when the test sends it (seconds after start)."""
    step = float(settings.ALERT_TEST_STEP_S)
    return [
        {"channel": spec["channel"], "after_s": round(step * (i + 1), 1)}
        for i, spec in enumerate(settings.NOTIFY_CHAIN)
    ]


def alert_test_start(*, member: Member) -> AlertTest:
    """Start a test for ``member`` (rate-limited) and schedule its channels after commit."""
    now = timezone.now()
    with transaction.atomic():
        # The member's row lock serialises two taps of the button.
        Member.objects.select_for_update().filter(pk=member.pk).first()
        recent = AlertTest.objects.filter(
            member=member, created_at__gte=now - dt.timedelta(days=1)
        ).order_by("-created_at")
        last = recent.first()
        if last is not None:
            wait = (
                last.created_at + dt.timedelta(seconds=settings.ALERT_TEST_MIN_INTERVAL_S) - now
            ).total_seconds()
            if wait > 0:
                raise AlertTestRefused(
                    _("刚刚测试过，请 %(s)d 秒后再试。") % {"s": int(wait) + 1}, int(wait) + 1
                )
            if recent.count() >= settings.ALERT_TEST_PER_DAY:
                oldest = recent.last()
                wait = (oldest.created_at + dt.timedelta(days=1) - now).total_seconds()
                raise AlertTestRefused(
                    _("今天的测试次数已用完（每天 %(n)d 次）。")
                    % {"n": settings.ALERT_TEST_PER_DAY},
                    int(wait) + 1,
                )
        test = AlertTest.objects.create(member=member)
        push_on_commit([(member_group(member.pk), alert_test_frame(test=test))])
        if settings.NOTIFY_CHAIN:
            transaction.on_commit(lambda: _step_schedule(test_id=test.pk, step=0))
    return test


def alert_test_frame(*, test: AlertTest) -> dict[str, Any]:
    return {
        "type": "alert.test",
        "test": {
            "id": test.pk,
            "created_at": test.created_at.isoformat(),
            "title": _("【测试提醒】这不是真实警情"),
            "body": _("这是你自己发起的提醒测试，无需出动。"),
            "steps": [{**row, "label": channel_label(row["channel"])} for row in _timetable()],
        },
    }


def _step_schedule(*, test_id: int, step: int) -> None:
    # Imported here: the tasks module imports this one at its top.
    from .tasks import alert_test_step

    delay = float(settings.ALERT_TEST_STEP_S)
    try:
        # A test step that cannot run within a minute is no longer a useful test.
        alert_test_step.apply_async((test_id, step), countdown=delay, expires=delay + 60)
    except Exception:
        log.exception("could not enqueue step %s of alert test %s", step, test_id)


def alert_test_step(*, test_id: int, step: int) -> bool:
    """Send one channel of a test; schedule the next. Returns whether it was sent."""
    chain = settings.NOTIFY_CHAIN
    test = AlertTest.objects.select_related("member").filter(pk=test_id).first()
    if test is None or step >= len(chain) or test.stopped_at is not None:
        return False
    channel = chain[step]["channel"]
    try:
        with transaction.atomic():
            attempt = AlertTestAttempt.objects.create(
                test=test, channel=channel, status=AlertTestAttempt.Status.SENDING
            )
    except IntegrityError:
        return False  # a retried task: this channel was already tried
    try:
        result = backend_for(channel).send(alert_test_notification(test=test, channel=channel))
    except Exception as exc:
        log.exception("alert test %s on %s failed", test_id, channel)
        result = SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:200])
    status = (
        AlertTestAttempt.Status.SENT
        if result.ok
        else AlertTestAttempt.Status.SKIPPED
        if result.skipped
        else AlertTestAttempt.Status.FAILED
    )
    AlertTestAttempt.objects.filter(pk=attempt.pk).update(status=status, detail=result.detail[:255])
    if step + 1 < len(chain):
        _step_schedule(test_id=test_id, step=step + 1)
    return result.ok


def alert_test_notification(*, test: AlertTest, channel: str) -> Notification:
    member = test.member
    title = _("【测试提醒】这不是真实警情")
    text = _("【测试提醒】%(name)s，这是你自己发起的提醒测试，不是真实警情，无需出动。") % {
        "name": member.name
    }
    if channel == "sms":
        text += " " + _("无需回复。")
    elif channel == "voice":
        text += " " + _("如听到本电话，说明语音提醒可以送达。")
    return Notification(
        channel=channel,
        member_id=member.pk,
        member_name=member.name,
        phone=member.phone,
        text=text,
        title=title,
        payload={
            "type": "alert.test",
            "test_id": test.pk,
            "url": f"/m/#alert-test-{test.pk}",
            # Its own tag: a test never replaces (or is replaced by) a real alert.
            "tag": f"alert-test-{test.pk}",
            "test": True,
        },
    )


def alert_test_app_received(*, member: Member, test_id: int) -> bool:
    """The open page got the test frame: the app channel reached the member."""
    return bool(
        AlertTest.objects.filter(pk=test_id, member=member, app_delivered_at=None).update(
            app_delivered_at=timezone.now()
        )
    )


def alert_test_stop(*, member: Member, test_id: int) -> bool:
    """Stop the member's test: no further channel is tried."""
    return bool(
        AlertTest.objects.filter(pk=test_id, member=member, stopped_at=None).update(
            stopped_at=timezone.now()
        )
    )


def alert_test_status(*, test: AlertTest) -> dict[str, Any]:
    """Which channels the test has tried and with what result, for the page."""
    attempts = {a.channel: a for a in test.attempts.all()}
    rows = [
        {
            "channel": "app",
            "label": channel_label("app"),
            "status": "sent" if test.app_delivered_at else "pending",
            "at": test.app_delivered_at.isoformat() if test.app_delivered_at else None,
        }
    ]
    for row in _timetable():
        attempt = attempts.get(row["channel"])
        rows.append(
            {
                "channel": row["channel"],
                "label": channel_label(row["channel"]),
                "after_s": row["after_s"],
                "status": attempt.status
                if attempt
                else ("stopped" if test.stopped_at else "pending"),
                "at": attempt.created_at.isoformat() if attempt else None,
            }
        )
    return {"id": test.pk, "stopped": test.stopped_at is not None, "channels": rows}
