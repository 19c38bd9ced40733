"""Review pages (Chinese by default, staff only, scoped): parse, call selectors, render."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from dispatch.models import Incident
from dispatch.selectors import incident_compliance
from units.exporting import csv_row, xlsx_row
from units.models import Region
from units.scoping import staff_profile, user_scope

from . import readiness, selectors, services
from .access import reviewer_required
from .models import Drill
from .selectors import OutOfScope, ReviewInputError
from .selectors.incidents import REACH_ROWS_MAX

FILTER_PARAMS = ("district", "street", "kind", "since", "until", "compliant")


def _filters(request, *, default_days: int = 90) -> selectors.IncidentFilter:
    """The filters of the query string; bad input -> ReviewInputError, another
    district's code -> 404 (never its data)."""
    params = {k: request.GET.get(k) or None for k in FILTER_PARAMS}
    try:
        return selectors.incident_filter_build(
            user=request.user, default_days=default_days, **params
        )
    except OutOfScope as exc:
        raise Http404(_("该区域不在您的辖区内。")) from exc


def _bad_input(request, exc: ReviewInputError):
    return render(request, "review/bad_input.html", {"errors": exc.errors}, status=400)


def _filter_context(request, filters: selectors.IncidentFilter) -> dict:
    scope = user_scope(request.user)
    regions = Region.objects.filter(level__in=[Region.Level.DISTRICT, Region.Level.STREET])
    if scope is not None:
        regions = regions.filter(path__startswith=scope.path)
    regions = list(regions.only("code", "name", "level", "parent_id").order_by("path"))
    return {
        "filters": filters,
        "districts": [r for r in regions if r.level == Region.Level.DISTRICT],
        "streets": [r for r in regions if r.level == Region.Level.STREET],
        "kinds": Incident.Kind.choices,
        "query": {k: request.GET.get(k, "") for k in FILTER_PARAMS},
        "querystring": "&".join(
            f"{k}={request.GET[k]}" for k in FILTER_PARAMS if request.GET.get(k)
        ),
        "since_date": timezone.localtime(filters.since).date().isoformat() if filters.since else "",
        "until_date": (timezone.localtime(filters.until) - timezone.timedelta(seconds=1))
        .date()
        .isoformat()
        if filters.until
        else "",
        "targets": selectors.targets_s(),
    }


@reviewer_required
def index(request):
    return redirect("review:report")


@reviewer_required
def incident_list(request):
    try:
        filters = _filters(request)
    except ReviewInputError as exc:
        return _bad_input(request, exc)
    qs = selectors.incident_list(user=request.user, filters=filters)
    count = selectors.incident_count(user=request.user, filters=filters)
    page = Paginator(selectors.CountedList(qs, count), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "review/incident_list.html",
        {"page": page, **_filter_context(request, filters)},
    )


@reviewer_required
def incident_detail(request, incident_id: int):
    incident = selectors.incident_for_review(user=request.user, incident_id=incident_id)
    if incident is None:
        raise Http404(_("没有该警情，或不在您的辖区内。"))

    trails = selectors.responder_trails(incident=incident)
    arrivals = selectors.arrival_checks(incident=incident)
    district = incident.region.parent if incident.region and incident.region.parent else None
    map_data = {
        "scene": {"lat": incident.lat, "lon": incident.lon},
        "outlines": [district.boundary] if district and district.boundary else [],
        "trails": [
            {"name": f"{t.member_name} ({t.unit_code})", "points": t.points} for t in trails
        ],
        "arrival_radius_m": None if incident.is_drill else settings.REVIEW_ARRIVAL_RADIUS_M,
        "reports": [
            {
                "lat": a.lat,
                "lon": a.lon,
                "verified": a.verified,
                "title": f"{a.member_name} {a.unit_code} {a.distance_m} m",
            }
            for a in arrivals
            if a.lat is not None
        ],
    }
    return render(
        request,
        "review/incident_detail.html",
        {
            "incident": incident,
            "timeline": selectors.incident_timeline(incident=incident),
            "reach": selectors.incident_reach(incident=incident),
            "reach_max": REACH_ROWS_MAX,
            "compliance": incident_compliance(incident),
            "durations": selectors.incident_durations_s(incident),
            "trails": trails,
            "arrivals": arrivals,
            "arrival_radius": int(settings.REVIEW_ARRIVAL_RADIUS_M),
            "map_data": map_data,
            "targets": selectors.targets_s(),
        },
    )


@reviewer_required
def report(request):
    try:
        filters = _filters(request)
    except ReviewInputError as exc:
        return _bad_input(request, exc)
    report = selectors.response_report(user=request.user, filters=filters)
    chart = {
        "areas": [a.as_dict() for a in report.areas],
        "weeks": [w.as_dict() for w in report.weeks],
    }
    return render(
        request,
        "review/report.html",
        {
            "report": report,
            "units": report.units or [],
            "unit_count": report.unit_count,
            "chart": chart,
            **_filter_context(request, filters),
        },
    )


# --- export -------------------------------------------------------------------------------


class _Echo:
    def write(self, value):
        return value


def _csv_response(filename: str, header: list[str], rows: Iterable[list]):
    writer = csv.writer(_Echo())

    def stream():
        yield "\ufeff"  # BOM: Excel opens UTF-8 CSV with Chinese text correctly
        yield writer.writerow(csv_row(header))
        for row in rows:
            yield writer.writerow(csv_row(row))

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def _xlsx_response(filename: str, header: list[str], rows: Iterable[list]):
    # openpyxl is loaded only when someone exports a workbook (startup cost).
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(filename)
    sheet.append(xlsx_row(sheet, header))
    for row in rows:
        sheet.append(xlsx_row(sheet, row))
    buffer = io.BytesIO()
    book.save(buffer)
    response = HttpResponse(
        buffer.getvalue(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.xlsx"'
    return response


@reviewer_required
def export(request, what: str, fmt: str):
    if fmt not in ("csv", "xlsx"):
        raise Http404
    try:
        filters = _filters(request)
    except ReviewInputError as exc:
        return _bad_input(request, exc)
    if what == "incidents":
        header, rows = selectors.incident_export_rows(user=request.user, filters=filters)
    elif what == "areas":
        rep = selectors.response_report(user=request.user, filters=filters, with_units=False)
        header, rows = selectors.stats_export_rows([*rep.areas, rep.total])
    elif what == "weeks":
        rep = selectors.response_report(user=request.user, filters=filters, with_units=False)
        header, rows = selectors.stats_export_rows(rep.weeks)
    elif what == "units":
        header, rows = selectors.unit_export_rows(
            selectors.unit_stats(user=request.user, filters=filters)
        )
    else:
        raise Http404
    name = f"review-{what}-{timezone.localdate():%Y%m%d}"
    if fmt == "csv":
        return _csv_response(name, header, rows)
    return _xlsx_response(name, header, rows)


@reviewer_required
def coverage_map(request):
    try:
        filters = _filters(request, default_days=30)
    except ReviewInputError as exc:
        return _bad_input(request, exc)
    districts = selectors.scope_districts(user=request.user, region=filters.region)
    coverage = selectors.coverage_cells(user=request.user, region=filters.region)
    points = selectors.map_points(user=request.user, filters=filters)
    data = {
        "outlines": [
            {"geometry": d.boundary, "title": d.name, "label": d.name}
            for d in districts
            if d.boundary
        ],
        "coverage": coverage,
        **points,
    }
    return render(
        request,
        "review/map.html",
        {"map_data": data, "coverage": coverage, **_filter_context(request, filters)},
    )


# --- drills -------------------------------------------------------------------------------


def _may_start_drill(user) -> bool:

    profile = staff_profile(user)
    return user.is_superuser or (
        profile is not None and profile.role in services.DRILL_STARTER_ROLES
    )


@reviewer_required
def drills(request):
    paid_form = None
    if request.method == "POST":
        if not _may_start_drill(request.user):
            raise PermissionDenied
        scope, code = request.POST.get("scope", ""), request.POST.get("code") or None
        paid = request.POST.get("paid_channels") == "1"
        try:
            # SMS and calls cost money: the officer sees their number and cost
            # (this same page, with the estimate) and confirms before any is sent.
            if request.POST.get("estimate") or (paid and request.POST.get("confirm") != "1"):
                region = services.drill_region_resolve(user=request.user, scope=scope, code=code)
                paid_form = {
                    "scope": scope,
                    "code": code or "",
                    "paid": paid,
                    "region": region,
                    "estimate": selectors.drill_paid_estimate(region=region),
                }
            else:
                drill = services.drill_start(
                    user=request.user, scope=scope, code=code, paid_channels=paid
                )
                messages.success(request, _("拉动测试已发起，正在分批通知单元。"))
                return redirect("review:drill", drill_id=drill.pk)
        except services.DrillRefused as exc:
            messages.error(request, exc.message)
            return redirect("review:drills")
    try:
        filters = _filters(request, default_days=365)
    except ReviewInputError as exc:
        return _bad_input(request, exc)
    league = selectors.drill_leagues(
        user=request.user,
        by=("station", "street", "unit"),
        since=filters.since,
        until=filters.until,
    )
    return render(
        request,
        "review/drills.html",
        {
            "drills": selectors.drills_visible(user=request.user)[:50],
            "league": league,
            "may_start": _may_start_drill(request.user),
            "scopes": Drill.Scope.choices,
            "paid_form": paid_form,
            "costs": settings.NOTIFY_COST_CNY,
            **_filter_context(request, filters),
        },
    )


@reviewer_required
def drill_detail(request, drill_id: int):
    drill = selectors.drills_visible(user=request.user).filter(pk=drill_id).first()
    if drill is None:
        raise Http404(_("没有该演练，或不在您的辖区内。"))
    if request.method == "POST" and request.POST.get("close"):
        if not _may_start_drill(request.user):
            raise PermissionDenied
        services.drill_close(user=request.user, drill_id=drill.pk)
        return redirect("review:drill", drill_id=drill.pk)
    total, lines = selectors.drill_report(user=request.user, drill=drill)
    if request.GET.get("format") == "csv":
        header = [
            _("单元编码"), _("单元名称"), _("街道/镇"), _("在岗被通知人数"), _("已送达人数"),
            _("首次送达(秒)"), _("响应(秒)"), _("到位(秒)"), _("到位核验"), _("状态"),
        ]  # fmt: skip
        rows = (
            [
                x.unit_code,
                x.unit_name,
                x.street,
                x.on_duty_alerted,
                x.received,
                x.first_received_s,
                x.acknowledged_s,
                x.arrived_s,
                {True: _("是"), False: _("否"), None: ""}[x.arrival_verified],
                x.status,
            ]  # fmt: skip
            for x in lines
        )
        return _csv_response(f"drill-{drill.pk}", header, rows)
    return render(
        request,
        "review/drill_detail.html",
        {
            "drill": drill,
            "total": total,
            "lines": lines[:500],
            "line_count": len(lines),
            "may_close": _may_start_drill(request.user) and drill.status != Drill.Status.CLOSED,
            "targets": selectors.targets_s(),
        },
    )


@reviewer_required
def drill_live(request, drill_id: int):
    """The drill page's figures as JSON: the page fetches them when the supervisor
    socket says the drill's incident moved (static/review/drill-live.js)."""
    drill = selectors.drills_visible(user=request.user).filter(pk=drill_id).first()
    if drill is None:
        raise Http404(_("没有该演练，或不在您的辖区内。"))
    total, _lines = selectors.drill_report(user=request.user, drill=drill)
    return JsonResponse(
        {
            "status": drill.status,
            "status_display": drill.get_status_display(),
            "units_alerted": drill.units_alerted,
            "units_total": drill.units_total,
            "kpis": {
                "delivered_pct": total.delivered_pct,
                "ack_pct": total.ack_pct,
                "arrived_pct": total.arrived_pct,
                "ack_median_s": total.ack_median_s,
                "arrival_median_s": total.arrival_median_s,
                "score": total.score,
            },
        }
    )


# --- the readiness-and-response index ----------------------------------------------------


def _level(request, filters) -> str:
    level = request.GET.get("level") or (
        "street" if filters.region is not None and filters.region.level != "city" else "district"
    )
    if level not in readiness.LEVELS:
        raise ReviewInputError({"level": _("level 只能是 district、street 或 unit。")})
    return level


def _sample(user, filters: selectors.IncidentFilter) -> dict:
    """How many real incidents the period's scores rest on, and whether that is too
    few to compare areas by their response times (the page then says so)."""
    needed = settings.REVIEW_INDEX_MIN_INCIDENTS
    period = selectors.IncidentFilter(
        region=filters.region, since=filters.since, until=filters.until
    )
    found = selectors.incident_list(user=user, filters=period)[:needed].count()
    return {
        "sample": found,
        "sample_needed": needed,
        "sample_unit_needed": settings.REVIEW_INDEX_MIN_UNIT_ALERTS,
        "sample_drill_needed": settings.REVIEW_INDEX_MIN_DRILL_ALERTS,
        "little_data": found < needed,
    }


@reviewer_required
def index_ranking(request):
    try:
        filters = _filters(request)
        level = _level(request, filters)
    except ReviewInputError as exc:
        return _bad_input(request, exc)
    rows, row_count = readiness.index_page(
        user=request.user,
        level=level,
        region=filters.region,
        since=filters.since,
        until=filters.until,
        limit=300,
    )
    return render(
        request,
        "review/index.html",
        {
            "rows": rows,
            "row_count": row_count,
            "level": level,
            "levels": [("district", _("区")), ("street", _("街道/镇")), ("unit", _("单元"))],
            **_sample(request.user, filters),
            **_filter_context(request, filters),
        },
    )


@reviewer_required
def index_explain(request, level: str, key: int):
    if level not in readiness.LEVELS:
        raise Http404
    try:
        filters = _filters(request)
    except ReviewInputError as exc:
        return _bad_input(request, exc)
    rows = readiness.index_scores(
        user=request.user,
        level=level,
        region=filters.region,
        since=filters.since,
        until=filters.until,
    )
    row = next((r for r in rows if r.key == key), None)
    if row is None:
        raise Http404(_("没有该对象，或不在您的辖区内。"))
    trend = readiness.index_trend(user=request.user, level=level, key=key, region=filters.region)
    return render(
        request,
        "review/index_explain.html",
        {
            "row": row,
            "of": len(rows),
            "level": level,
            "trend": {"labels": [t[0] for t in trend], "scores": [t[1] for t in trend]},
            **_filter_context(request, filters),
        },
    )


# --- three-colour warning map ------------------------------------------------------------

COLOURS = {"green": "#2e9d5b", "amber": "#f0ad4e", "red": "#d9534f", "grey": "#9aa4ae"}


def _warning_up(user, region: Region | None) -> tuple[str, str] | None:
    """(href, label) one level up from ``region``, never above the user's own
    jurisdiction: a station scoped to one street has nothing above (a link to
    "the whole city" would show it the same street again)."""
    scope = user_scope(user)
    if scope is not None and scope.level == Region.Level.CITY:
        scope = None  # city-wide: the way up ends at the whole city
    if region is None or region.level == Region.Level.CITY:
        return None
    if scope is not None and region.path == scope.path:
        return None
    parent = region.parent if region.level == Region.Level.STREET else None
    inside = parent is not None and (scope is None or parent.path.startswith(scope.path))
    if inside and (scope is None or parent.path != scope.path):
        return f"?district={parent.code}", _("返回上一级")
    return "?", _("返回全市") if scope is None else _("返回本辖区")


@reviewer_required
def warning_map(request):
    try:
        filters = _filters(request)
    except ReviewInputError as exc:
        return _bad_input(request, exc)
    region = filters.region
    level, areas = readiness.warning_areas(user=request.user, region=region)
    districts = selectors.scope_districts(user=request.user, region=region)
    param = {"district": "district", "street": "street"}.get(level)
    outlines, points = [], []
    if level == "district":
        outlines = [
            {
                "geometry": a.boundary,
                "fill": COLOURS[a.colour],
                "title": f"{a.label} {a.score if a.score is not None else '—'}",
                "href": f"?district={a.code}",
            }
            for a in areas
            if a.boundary
        ]
        points = [
            {"lat": a.lat, "lon": a.lon, "r": 0.1, "label": a.label}
            for a in areas
            if a.lat is not None
        ]
    else:
        outlines = [{"geometry": d.boundary} for d in districts if d.boundary]
        points = [
            {
                "lat": a.lat,
                "lon": a.lon,
                "r": 9 if level == "street" else 5,
                "fill": COLOURS[a.colour],
                "title": f"{a.label} {a.score if a.score is not None else '—'}",
                "href": f"?street={a.code}" if param == "street" else None,
                "label": a.label if level == "street" else None,
            }
            for a in areas
            if a.lat is not None
        ]
    counts = {c: sum(1 for a in areas if a.colour == c) for c in COLOURS}
    return render(
        request,
        "review/warning.html",
        {
            "up": _warning_up(request.user, region),
            "areas": areas,
            "level": level,
            "counts": counts,
            "colours": COLOURS,
            "map_data": {"outlines": outlines, "points": points},
            **_sample(request.user, filters),
            **_filter_context(request, filters),
        },
    )
