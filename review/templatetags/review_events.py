"""The incident timeline in words: an event's ``data`` holds internals (``wave=1
rank=1 distance_m=30``) that a reviewer should read as sentences."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dispatch.models import Incident
from dispatch.policy import channel_label

register = template.Library()

# Escalation tiers (settings.DISPATCH_ESCALATION) by name: which target was missed.
_TIERS = {
    "respond_1min": lambda: _("1 分钟内无人响应"),
    "control_3min": lambda: _("3 分钟内无人到场"),
    "handle_5min": lambda: _("5 分钟内未处置完毕"),
    "street_10min": lambda: _("10 分钟：街镇接管"),
    "professional_20min": lambda: _("20 分钟：专业力量接管"),
}
_OUTCOMES = {
    "closed": lambda: _("结案"),
    "drill_ended": lambda: _("演练结束"),
}
_DRILL_SCOPES = {
    "area": lambda: _("本辖区"),
    "street": lambda: _("街道"),
    "district": lambda: _("区"),
    "city": lambda: _("全市"),
}
# Reading order of the known keys. PostgreSQL's jsonb stores keys in its own
# order, so the stored order cannot be the order of the sentence.
_ORDER = [
    "source",
    "tier",
    "wave",
    "rank",
    "distance_m",
    "radius_m",
    "eta_s",
    "units",
    "closed",
    "outcome",
    "drill_scope",
    "channel",
    "channels",
    "provider",
    "attempt",
    "delay_s",
    "error_code",
    "detail",
    "phone_tail",
    "note",
    "clock_skew_s",
]
# Keys that help machines only (the timeline shows the member in its own column).
# ``at`` is the event's own time (its column); the reported discovery time goes
# with the clock skew.
_HIDDEN = {"seeded", "member_name", "notify", "drill", "at", "discovered_at_reported"}


def _part(key: str, value: Any) -> str | None:
    if key in _HIDDEN or value is None:
        return None
    if key == "wave":
        return _("第 %(n)s 轮") % {"n": value}
    if key == "rank":
        return _("距离排第 %(n)s") % {"n": value}
    if key in ("distance_m", "radius_m"):
        label = _("距离 %(m)s 米") if key == "distance_m" else _("范围 %(m)s 米")
        return label % {"m": value}
    if key == "eta_s":
        return _("预计 %(s)s 秒到达") % {"s": value}
    if key == "source":
        return str(dict(Incident.Source.choices).get(value, value))
    if key == "closed":
        return _("警情已结案") if value else _("已有足够单元响应")
    if key == "tier":
        return str(_TIERS[value]()) if value in _TIERS else str(value)
    if key == "outcome":
        return str(_OUTCOMES[value]()) if value in _OUTCOMES else str(value)
    if key == "drill_scope":
        return _("演练范围：%(s)s") % {
            "s": _DRILL_SCOPES[value]() if value in _DRILL_SCOPES else value
        }
    if key == "units":
        return ngettext("%(n)s 个单元", "%(n)s 个单元", int(value)) % {"n": value}
    if key == "ring_sent_early":
        return _("该圈已由指挥台提前推送") if value else None
    if key == "channel":
        return _("渠道：%(c)s") % {"c": channel_label(value)}
    if key == "channels":
        return _("已试：%(c)s") % {"c": "、".join(channel_label(c) for c in value)}
    if key == "provider":
        return _("服务商：%(p)s") % {"p": value}
    if key == "attempt":
        return _("第 %(n)s 次重试") % {"n": value}
    if key == "delay_s":
        return _("%(s)s 秒后") % {"s": value}
    if key == "error_code":
        return _("错误码 %(code)s") % {"code": value}
    if key == "detail":
        return str(value)
    if key == "phone_tail":
        return _("手机尾号 %(tail)s") % {"tail": value}
    if key == "note":
        return str(value) or None
    if key == "clock_skew_s":
        return _("报警方时钟快了 %(s)s 秒，按收到时间记录") % {"s": value}
    if key in ("lat", "lon"):
        return None  # shown together below
    return f"{key}: {value}"


@register.filter
def event_text(data: dict[str, Any] | None) -> str:
    """One line of human text for an event's data; unknown keys stay visible."""
    if not data:
        return ""
    keys = sorted(data, key=lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k))
    parts = [p for k in keys if (p := _part(k, data[k]))]
    if data.get("lat") is not None and data.get("lon") is not None:
        parts.append(_("已上报位置"))
    return " · ".join(parts)
