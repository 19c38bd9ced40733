"""The board's page and its JSON commands: parse, call one board service or
selector, answer. Refusals are JSON with a message the board shows (403 outside
the area or for a watching role, 409 on a closed incident, 400 bad input)."""

from __future__ import annotations

import math
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from dispatch import inputs
from dispatch.models import Incident
from dispatch.policy import tier_labels
from units.scoping import user_may

from . import selectors, services
from .services import BoardRefused


def user_may_watch(user) -> bool:
    return user.is_active and user_may(user, "view", "dispatch.incident")


def watcher_required(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not user_may_watch(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def board_json(view):
    """A JSON command or read: 401/403 as JSON, refusals and bad input as JSON."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"code": "unauthenticated", "message": _("请先登录。")}, status=401)
        if not user_may_watch(request.user):
            return JsonResponse(
                {"code": "forbidden", "message": _("只有有权查看警情的工作人员可以使用。")},
                status=403,
            )
        try:
            return view(request, *args, **kwargs)
        except BoardRefused as exc:
            return JsonResponse({"code": exc.code, "message": exc.message}, status=exc.status)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "message_dict") else {"": exc.messages}
            return JsonResponse(
                {
                    "code": "invalid",
                    "message": " ".join(m for ms in errors.values() for m in ms),
                    "errors": errors,
                },
                status=400,
            )

    return never_cache(wrapped)


def _body(request) -> dict[str, Any]:
    try:
        body = inputs.json_loads(request.body or b"{}")
    except inputs.JSONRefused as exc:
        raise ValidationError({"body": _("请求须为 JSON。") + " " + str(exc)}) from exc
    if not isinstance(body, dict):
        raise ValidationError({"body": _("请求须为 JSON 对象。")})
    return body


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ValidationError({name: _("%(f)s 无效。") % {"f": name}})
    return float(value)


def _latlon(data: dict[str, Any]) -> tuple[float, float]:
    return _number(data.get("lat"), "lat", -90, 90), _number(data.get("lon"), "lon", -180, 180)


def _kind_severity(data: dict[str, Any]) -> tuple[str, int]:
    kind = data.get("kind")
    if kind not in Incident.Kind.values:
        raise ValidationError({"kind": _("请选择警情类型。")})
    try:
        severity = int(data.get("severity", Incident.Severity.MEDIUM))
    except (TypeError, ValueError):
        severity = 0
    if severity not in Incident.Severity.values:
        raise ValidationError({"severity": _("请选择警情等级。")})
    return kind, severity


def _unit_ids(data: dict[str, Any]) -> list[int]:
    ids = data.get("unit_ids")
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and inputs.id_in_range(i) for i in ids
    ):
        raise ValidationError({"unit_ids": _("unit_ids 须为单元编号列表。")})
    return ids


def _text(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name) or ""
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationError({name: _("%(f)s 最多 %(n)s 个字。") % {"f": name, "n": limit}})
    return value.strip()


# --- the page ----------------------------------------------------------------------------


@watcher_required
@ensure_csrf_cookie
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    config = {
        "wsPath": "/ws/supervisor/",
        "apiBase": "/board/api/",
        "mapUrl": "/board/api/map/",
        "mayCommand": services.user_may_command(request.user),
        "heartbeatS": settings.WS_HEARTBEAT_S,
        "followUpAfterS": settings.BOARD_FOLLOW_UP_AFTER_S,
        "targetsS": {**settings.RESPONSE_TARGETS_S, **settings.BOARD_RING_TARGETS_S},
        "tierLabels": tier_labels(),
        "tileUrl": settings.MAP_TILE_URL,
        "tileAttribution": settings.MAP_TILE_ATTRIBUTION,
        "tileCrs": settings.MAP_TILE_CRS,
        "kinds": [[v, str(label)] for v, label in Incident.Kind.choices],
        "severities": [[v, str(label)] for v, label in Incident.Severity.choices],
        "outcomes": [[k, str(v)] for k, v in services.OUTCOMES.items()],
        "language": get_language(),
        "timeZone": settings.TIME_ZONE,
    }
    return render(request, "board/board.html", {"config": config})


# --- reads ---------------------------------------------------------------------------------


@board_json
@require_GET
def board_map(request: HttpRequest) -> JsonResponse:
    return JsonResponse(selectors.board_map(user=request.user))


@board_json
@require_GET
def candidates(request: HttpRequest) -> JsonResponse:
    """Wave 1's ranked units for a place, kind and severity, before sending; with
    ``incident`` the next units to call for that incident (not yet on it)."""
    lat, lon = _latlon(request.GET)
    kind, severity = _kind_severity(request.GET)
    return JsonResponse(
        {
            "candidates": selectors.board_candidates(
                user=request.user, lat=lat, lon=lon, kind=kind, severity=severity
            )
        }
    )


@board_json
@require_GET
def incident_candidates(request: HttpRequest, incident_id: int) -> JsonResponse:
    incident = services.incident_for_command(user=request.user, incident_id=incident_id)
    already = set(incident.dispatches.values_list("unit_id", flat=True))
    return JsonResponse(
        {
            "candidates": selectors.board_candidates(
                user=request.user,
                lat=incident.lat,
                lon=incident.lon,
                kind=incident.kind,
                severity=incident.severity,
                exclude=already,
                limit=15,
            )
        }
    )


# --- commands ------------------------------------------------------------------------------


@board_json
@require_POST
def raise_incident(request: HttpRequest) -> JsonResponse:
    data = _body(request)
    lat, lon = _latlon(data)
    kind, severity = _kind_severity(data)
    result = services.board_raise(
        user=request.user,
        kind=kind,
        severity=severity,
        lat=lat,
        lon=lon,
        address=_text(data, "address", 255),
        description=_text(data, "description", 2000),
    )
    return JsonResponse(
        {
            "incident_id": result.incident.pk,
            "alerted": [c.unit_id for c in result.candidates],
        },
        status=201,
    )


@board_json
@require_POST
def call_units(request: HttpRequest, incident_id: int) -> JsonResponse:
    dispatches = services.board_call_units(
        user=request.user, incident_id=incident_id, unit_ids=_unit_ids(_body(request))
    )
    return JsonResponse({"alerted": [d.unit_id for d in dispatches]})


@board_json
@require_POST
def next_ring(request: HttpRequest, incident_id: int) -> JsonResponse:
    dispatches = services.board_next_ring(user=request.user, incident_id=incident_id)
    return JsonResponse({"alerted": [d.unit_id for d in dispatches]})


@board_json
@require_POST
def gather(request: HttpRequest, incident_id: int) -> JsonResponse:
    data = _body(request)
    lat, lon = _latlon(data)
    event = services.board_gather(
        user=request.user,
        incident_id=incident_id,
        lat=lat,
        lon=lon,
        note=_text(data, "note", 120),
    )
    return JsonResponse({"seq": event.seq})


@board_json
@require_POST
def stand_down(request: HttpRequest, incident_id: int) -> JsonResponse:
    n = services.board_stand_down(
        user=request.user, incident_id=incident_id, unit_ids=_unit_ids(_body(request))
    )
    return JsonResponse({"stood_down": n})


@board_json
@require_POST
def close(request: HttpRequest, incident_id: int) -> JsonResponse:
    data = _body(request)
    outcome = data.get("outcome")
    services.board_close(
        user=request.user,
        incident_id=incident_id,
        outcome=outcome if isinstance(outcome, str) else "",
    )
    return JsonResponse({"closed": True})
