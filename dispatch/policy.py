"""Escalation policy lookup: settings hold the rules, an incident keeps a copy."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

Policy = dict[str, Any]

# Incident fields a tier's "unless" may name.
UNLESS_FIELDS = frozenset({"responded_at", "controlled_at", "handled_at"})


def policy_for(*, kind: str, severity: int) -> Policy:
    """The policy a new incident of this kind and severity is opened with.

    A malformed policy is refused here, at intake, rather than by a deadline
    that would then fail on every sweep.
    """
    policies = settings.ESCALATION_POLICIES
    name = kind if kind in policies else "default"
    policy = copy.deepcopy(policies[name])
    policy_check(policy, name=name)
    policy["severity"] = severity
    return policy


def policy_check(policy: Policy, *, name: str = "default") -> None:
    """Raise ImproperlyConfigured naming the first thing wrong with ``policy``."""

    def fail(what: str) -> None:
        raise ImproperlyConfigured(f"ESCALATION_POLICIES[{name!r}]: {what}")

    def wave_check(spec: Any, where: str) -> None:
        if not isinstance(spec, dict):
            fail(f"{where} must be an object with units and radius_m")
        units = spec.get("units")
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            fail(f"{where}.units must be a positive integer")
        radius = spec.get("radius_m")
        if radius is not None and not (isinstance(radius, int | float) and radius > 0):
            fail(f"{where}.radius_m must be a positive number or null")

    if not isinstance(policy, dict):
        fail("must be an object")
    wave_check(policy.get("wave1"), "wave1")
    if not isinstance(policy.get("enough_accepts", {}), dict):
        fail("enough_accepts must map a severity to a number of units")
    seen: set[str] = set()
    for i, tier in enumerate(policy.get("tiers", [])):
        where = f"tiers[{i}]"
        if not isinstance(tier, dict) or not isinstance(tier.get("name"), str):
            fail(f"{where} needs a name")
        if tier["name"] in seen:
            fail(f"{where}: duplicate tier name {tier['name']!r}")
        seen.add(tier["name"])
        after = tier.get("after_s")
        if not isinstance(after, int | float) or isinstance(after, bool) or after < 0:
            fail(f"{where}.after_s must be a number of seconds")
        if tier.get("unless") not in UNLESS_FIELDS | {None}:
            fail(f"{where}.unless must be one of {sorted(UNLESS_FIELDS)} or null")
        if tier.get("wave") is not None:
            wave_check(tier["wave"], f"{where}.wave")


def enough_accepts(policy: Policy) -> int:
    table = policy.get("enough_accepts", {})
    return int(table.get(str(policy.get("severity", 2)), 1))


def tier_get(policy: Policy, name: str) -> dict[str, Any] | None:
    return next((t for t in policy.get("tiers", []) if t["name"] == name), None)


# What people call the default policy's tiers (boards, banners): the ring of the
# 1-3-5 / 10 / 20-minute circle a tier brings in, never its name in settings.
# The notification channels, as people name them (timeline, phone, admin).
CHANNEL_LABELS = {
    "app": gettext_lazy("应用页面"),
    "push": gettext_lazy("推送通知"),
    "sms": gettext_lazy("短信"),
    "voice": gettext_lazy("语音电话"),
}


def channel_label(channel: str) -> str:
    return str(CHANNEL_LABELS.get(channel, channel))


TIER_LABELS = {
    "respond_1min": gettext_lazy("1 分钟响应圈"),
    "control_3min": gettext_lazy("3 分钟互助圈"),
    "handle_5min": gettext_lazy("5 分钟增援圈"),
    "street_10min": gettext_lazy("10 分钟街镇力量"),
    "professional_20min": gettext_lazy("20 分钟专业力量"),
}


def tier_label(tier: dict[str, Any]) -> str:
    """A tier in words, in the active language: its known label, else the policy's
    own ``label`` (a setting, as written), else its minute mark."""
    if tier["name"] in TIER_LABELS:
        return str(TIER_LABELS[tier["name"]])
    if isinstance(tier.get("label"), str) and tier["label"]:
        return tier["label"]
    return _("%(m)s 分钟升级") % {"m": round(float(tier.get("after_s", 0)) / 60, 1)}


def tier_labels() -> dict[str, str]:
    """Every tier of every configured policy, by name, in words."""
    return {
        tier["name"]: tier_label(tier)
        for policy in settings.ESCALATION_POLICIES.values()
        for tier in policy.get("tiers", [])
    }
