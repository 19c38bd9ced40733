"""SMS replies, the low-tech path: a member's "1" acts like a tap on the phone.

Apart from ``notify`` because it acts through ``services.dispatch_act``, and
``services`` itself sends waves through ``notify``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Q
from django.utils.translation import gettext as _

from units import phones
from units.models import Member

from .actions import SMS_CODES, TRANSITIONS
from .models import Dispatch, Incident
from .services import ActionRefused, dispatch_act


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
    try:
        phone = phones.phone_normalize(phone)
    except phones.PhoneInvalid:
        return SmsReply(False, _("无法识别的号码。"))
    member = Member.objects.select_related("unit").filter(phone=phone).first()
    if member is None or not member.is_active:
        return SmsReply(False, _("该号码不是在册队员。"))
    match = re.fullmatch(r"\s*([1-4])(?:\s*#?\s*(\d{1,12}))?\s*", text or "")
    if match is None:
        return SmsReply(False, _("无法识别的回复。回复 1 接受，2 拒绝，3 已到场，4 处置完毕。"))
    action = SMS_CODES[match.group(1)]
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
