"""SMS replies and call key presses, the low-tech path: a member's "1" acts like a
tap on the phone (the same ``dispatch_act``, so timestamps and the timeline cannot
tell the channels apart).

Apart from ``notify`` because it acts through ``services.dispatch_act``, and
``services`` itself sends waves through ``notify``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from units import phones
from units.models import Member

from . import notify
from .actions import SMS_CODES, TRANSITIONS
from .gateways import ratelimit
from .models import Dispatch, Incident
from .services import ActionRefused, dispatch_act


@dataclass(frozen=True)
class SmsReply:
    ok: bool
    text: str  # what to text back to the member
    incident_id: int | None = None
    action: str | None = None
    # Why it was refused: "unknown_text" (the help text, rate-limited per number),
    # "not_member", "not_alerted", "too_late", "refused"; "" when it acted.
    reason: str = ""


def sms_reply_handle(*, phone: str, text: str) -> SmsReply:
    """A member's SMS reply: "1" accept, "2" decline, "3" on site, "4" handled,
    optionally followed by the incident number ("1 42").

    Goes through the same ``dispatch_act`` as the app, so an out-of-order or
    repeated reply is refused and changes nothing.
    """
    try:
        phone = phones.phone_normalize(phone)
    except phones.PhoneInvalid:
        return SmsReply(False, _("无法识别的号码。"), reason="not_member")
    member = Member.objects.select_related("unit").filter(phone=phone).first()
    if member is None or not member.is_active:
        return SmsReply(False, _("该号码不是在册队员。"), reason="not_member")
    match = re.fullmatch(r"\s*([1-4])(?:\s*#?\s*(\d{1,12}))?\s*", text or "")
    if match is None:
        return SmsReply(False, HELP_TEXT(), reason="unknown_text")
    action = SMS_CODES[match.group(1)]
    incident_id = (
        int(match.group(2)) if match.group(2) else _sms_target(member=member, action=action)
    )
    if incident_id is None:
        return SmsReply(False, _("没有需要你回复的警情。"), action=action, reason="not_alerted")
    if too_late(incident_id=incident_id):
        return SmsReply(
            False,
            _("警情 #%(id)d 已结束或回复已超时，本次回复未生效。") % {"id": incident_id},
            incident_id=incident_id,
            action=action,
            reason="too_late",
        )
    try:
        dispatch_act(incident_id=incident_id, member=member, action=action)
    except ActionRefused as exc:
        return SmsReply(
            False, exc.message, incident_id=incident_id, action=action, reason="refused"
        )
    labels = {
        "accept": _("已接受警情 #%(id)d，请尽快赶往现场。"),
        "decline": _("已拒绝警情 #%(id)d。"),
        "on_site": _("已登记到场：警情 #%(id)d。"),
        "handled": _("已登记处置完毕：警情 #%(id)d。"),
    }
    return SmsReply(True, labels[action] % {"id": incident_id}, incident_id, action)


def HELP_TEXT() -> str:  # noqa: N802 - a translated constant, read per call
    return _("无法识别的回复。回复 1 接受，2 拒绝，3 已到场，4 处置完毕。")


def too_late(*, incident_id: int) -> bool:
    """The incident is over, or the alert older than the reply window."""
    incident = Incident.objects.filter(pk=incident_id).values("status", "received_at").first()
    if incident is None:
        return False  # dispatch_act answers "not alerted" for it
    if incident["status"] != Incident.Status.OPEN:
        return True
    window = dt.timedelta(seconds=settings.NOTIFY_REPLY_WINDOW_S)
    return incident["received_at"] < timezone.now() - window


def keypress_handle(*, provider_ref: str, phone: str, keys: str) -> SmsReply:
    """A key press on an alert call ("按1接受，按2拒绝"): the call names the
    incident, so the press acts on exactly that one, through ``sms_reply_handle``
    like a text reply. A call we did not make changes nothing."""
    attempt = notify.attempt_for(channel="voice", provider_ref=provider_ref, phone=phone)
    if attempt is None:
        return SmsReply(False, _("该号码未收到此警情的呼叫。"), reason="not_alerted")
    key = (keys or "").strip().rstrip("#")[:1]
    if key not in ("1", "2"):
        return SmsReply(False, _("按1接受，按2拒绝。"), reason="unknown_text")
    incident_id = attempt.delivery.dispatch.incident_id
    return sms_reply_handle(phone=attempt.delivery.member.phone, text=f"{key} {incident_id}")


def answer_allowed(*, phone: str, reply: SmsReply) -> bool:
    """Whether to text the answer back: always when it acted; a refusal or the help
    text at most once per number per ``NOTIFY_HELP_INTERVAL_S`` (a stranger or a
    loop of auto-replies must not make us pay for an SMS each time)."""
    if reply.ok:
        return True
    return ratelimit.once(f"answer:{phone}", ttl_s=settings.NOTIFY_HELP_INTERVAL_S)


def _sms_target(*, member: Member, action: str) -> int | None:
    """The newest open incident of the member's unit that this action applies to."""
    wanted = TRANSITIONS[action][0]
    return (
        Dispatch.objects.filter(
            Q(unit_id=member.unit_id),
            status__in=list(wanted),
            incident__status=Incident.Status.OPEN,
        )
        .order_by("-created_at")
        .values_list("incident_id", flat=True)
        .first()
    )
