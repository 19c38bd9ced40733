"""Escalation policy lookup: settings hold the rules, an incident keeps a copy."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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
