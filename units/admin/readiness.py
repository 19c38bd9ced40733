"""The readiness overview page (就绪总览), linked from every roster list.

What "ready" means is ``units.readiness``; the figures are
``units.selectors.readiness_overview``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from ..selectors import readiness_overview, region_list


def readiness_view(model_admin, request: HttpRequest) -> HttpResponse:
    """就绪总览: readiness per district or street, each figure a link to its rows."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    region = None
    if code := request.GET.get("region"):
        region = region_list(user=request.user).filter(code=code).first()
        if region is None:
            raise Http404
    overview = readiness_overview(user=request.user, region=region)
    region_code = overview.region.code if overview.region is not None else ""
    links = _readiness_links
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("就绪总览"),
        "opts": model_admin.model._meta,
        "overview": overview,
        "total_links": links(region_code),
        "rows": [(row, links(row.region.code)) for row in overview.rows],
        "drill_down": overview.region is None or overview.region.level != "street",
        "up": overview.region.parent.code
        if overview.region is not None
        and overview.region.parent_id
        and region_list(user=request.user).filter(pk=overview.region.parent_id).exists()
        else None,
        "inspection_days": settings.ROSTER_INSPECTION_INTERVAL_DAYS,
        "warning_days": settings.ROSTER_EXPIRY_WARNING_DAYS,
    }
    return TemplateResponse(request, "roster/readiness.html", context)


def _readiness_links(region_code: str) -> dict[str, str]:
    """Changelist links that show the rows behind each figure, ready to fix."""

    def link(model: str, **params) -> str:
        query = {"region": region_code, **params} if region_code else params
        return f"{reverse(f'admin:units_{model}_changelist')}?{urlencode(query)}"

    return {
        "units": link("unit"),
        "not_ready": link("unit", ready="0", is_active__exact="1"),
        "kit_incomplete": link("unit", kit_complete="0", is_active__exact="1"),
        "on_duty": link("member", on_duty__exact="1"),
        "expired": link("equipment", kit="expired"),
        "expiring": link("equipment", kit="expiring"),
        "inspection_due": link("equipment", kit="inspection_due"),
    }
