"""Bounds on what clients send, in one place for every edge: the REST parser
(``config.parsers``), the phone's JSON views (``mobile.views``) and both sockets
(``dispatch.consumers``).

Each bound turns input that used to crash a request or a socket (RecursionError,
an integer overflow in the database driver, NaN) into a refusal the edge
answers with a 400 or an ``error`` frame.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# The largest primary key the databases hold (a signed 64-bit integer); a
# larger id names no row, and the drivers raise instead of answering "none".
ID_MAX = 2**63 - 1


class JSONRefused(ValueError):
    """Not JSON we accept: malformed, nested too deep, or NaN/Infinity."""


def _no_constants(name: str):
    raise JSONRefused(_("JSON 不允许 %(c)s。") % {"c": name})


def json_loads(data: str | bytes) -> Any:
    """``json.loads`` with a nesting limit (``settings.JSON_MAX_DEPTH``) and without
    the NaN/Infinity extension; raises JSONRefused (a ValueError) for all three.

    The parser itself recurses per level: a body nested thousands deep raises
    RecursionError inside it, which is caught here rather than in every view.
    The depth of what did parse is then checked without recursion, so nothing
    downstream (serializers, ``repr`` in an error message) recurses either.
    """
    try:
        value = json.loads(data, parse_constant=_no_constants)
    except RecursionError as exc:
        raise JSONRefused(_("JSON 嵌套过深。")) from exc
    except UnicodeDecodeError as exc:
        raise JSONRefused(_("JSON 须为 UTF-8 编码。")) from exc
    except json.JSONDecodeError as exc:
        raise JSONRefused(_("JSON 格式错误：%(e)s") % {"e": exc.msg}) from exc
    limit = settings.JSON_MAX_DEPTH
    # Every level opens with a bracket in the text: with no more brackets than
    # levels allowed (a receipt has one), the walk below cannot find too many.
    # Skipping it is a city-wide alert's receipts' worth of daphne CPU.
    if _brackets(data) > limit and _depth_exceeds(value, limit):
        raise JSONRefused(_("JSON 嵌套过深。"))
    return value


def _brackets(data: str | bytes) -> int:
    if isinstance(data, str):
        return data.count("{") + data.count("[")
    return data.count(b"{") + data.count(b"[")


def _depth_exceeds(value: Any, limit: int) -> bool:
    if not isinstance(value, dict | list):
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def id_in_range(value: int) -> bool:
    """Could ``value`` be a row id? (Positive and within a 64-bit key.)"""
    return 0 < value <= ID_MAX


def accuracy_clean(value: Any) -> float | None:
    """A location's accuracy in metres: None, or a finite number from 0 to
    ``settings.LOCATION_ACCURACY_MAX_M``; ValidationError on ``accuracy`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError({"accuracy": _("精度须为有限的数字（米）。")})
    if not 0 <= value <= settings.LOCATION_ACCURACY_MAX_M:
        raise ValidationError(
            {
                "accuracy": _("精度须在 0 到 %(m)s 米之间。")
                % {"m": settings.LOCATION_ACCURACY_MAX_M}
            }
        )
    return float(value)
