"""Writes of the member's phone app: duty with location, push subscriptions, sign-out."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from dispatch.events import member_control_on_commit
from dispatch.inputs import accuracy_clean
from dispatch.services import member_location_record
from units.models import Member
from units.services import member_set_duty

from .models import PushSubscription


def _latlon_check(lat, lon, accuracy_m) -> None:
    errors: dict[str, str] = {}
    for name, value, limit in (("lat", lat, 90), ("lon", lon, 180)):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not -limit <= value <= limit:
            errors[name] = _("坐标无效。")
    try:
        accuracy_clean(accuracy_m)
    except ValidationError as exc:
        errors.update({k: v[0] for k, v in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)


def member_clock(
    *,
    member: Member,
    on_duty: bool,
    lat: float | None = None,
    lon: float | None = None,
    accuracy_m: float | None = None,
) -> Member:
    """Clock in or out (打卡), keeping where the phone was when it happened.

    The location is optional (a phone may refuse to give it) but, when given,
    must be a valid coordinate; duty and location are written together or not
    at all.
    """
    if lat is not None or lon is not None:
        _latlon_check(lat, lon, accuracy_m)
    with transaction.atomic():
        member_set_duty(member=member, on_duty=on_duty)
        if lat is not None:
            member_location_record(member=member, lat=lat, lon=lon, accuracy_m=accuracy_m)
    return member


def push_subscription_save(
    *,
    member: Member,
    endpoint: str,
    p256dh: str,
    auth: str,
    session_key: str = "",
    user_agent: str = "",
) -> PushSubscription:
    """Store (or move to this member) a browser's push subscription."""
    errors: dict[str, str] = {}
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        errors["endpoint"] = _("推送地址须为 http(s) URL。")
    elif len(endpoint) > 1000:
        errors["endpoint"] = _("推送地址过长。")
    for name, value, size in (("p256dh", p256dh, 200), ("auth", auth, 100)):
        if not isinstance(value, str) or not value or len(value) > size:
            errors[name] = _("缺少或无效的订阅密钥。")
    if errors:
        raise ValidationError(errors)
    sub, _created = PushSubscription.objects.update_or_create(
        endpoint=endpoint,
        defaults={
            "member": member,
            "p256dh": p256dh,
            "auth": auth,
            "session_key": session_key or "",
            "user_agent": (user_agent or "")[:255],
            "failures": 0,
        },
    )
    return sub


def push_subscription_delete(*, member: Member, endpoint: str) -> int:
    deleted, _rows = PushSubscription.objects.filter(member=member, endpoint=endpoint).delete()
    return deleted


@transaction.atomic
def member_sign_out(*, member: Member, session_key: str | None) -> None:
    """End this phone's session: no more alerts to it, by socket or by push.

    Clocks the member out (off duty means no alerts through any channel),
    drops the push subscriptions this session registered and, after commit,
    tells the member's open sockets to close (``member.session_end``).
    """
    if session_key:
        PushSubscription.objects.filter(member=member, session_key=session_key).delete()
    member_set_duty(member=member, on_duty=False)
    member_control_on_commit(member_id=member.pk, message={"type": "member.session_end"})


def push_success_record(*, subscription_id: int) -> None:
    PushSubscription.objects.filter(pk=subscription_id).update(
        last_success_at=timezone.now(), failures=0
    )
