"""Escalation policy lookup: settings hold the rules, an incident keeps a copy."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings

Policy = dict[str, Any]


def policy_for(*, kind: str, severity: int) -> Policy:
    """The policy a new incident of this kind and severity is opened with."""
    policies = settings.ESCALATION_POLICIES
    policy = copy.deepcopy(policies.get(kind) or policies["default"])
    policy["severity"] = severity
    return policy


def enough_accepts(policy: Policy) -> int:
    table = policy.get("enough_accepts", {})
    return int(table.get(str(policy.get("severity", 2)), 1))


def tier_get(policy: Policy, name: str) -> dict[str, Any] | None:
    return next((t for t in policy.get("tiers", []) if t["name"] == name), None)
