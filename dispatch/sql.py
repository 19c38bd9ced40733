"""Small helpers for the SQL written by hand on hot paths (a reconnect storm's
replays, a city-wide alert's receipts), where building ORM queries cost more
than running them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def marks(values: Collection[Any]) -> str:
    """One ``%s`` placeholder per value, comma-separated (an IN list)."""
    return ", ".join(["%s"] * len(values))
