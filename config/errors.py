"""Error pages: friendly HTML for people, JSON for programs under /api/.

Django's own handlers would answer an API client's unknown path with an HTML
page; a client parsing JSON then fails on the error instead of reading it. The
500 handlers use nothing that can itself fail (no database, no context
processors, a template without inheritance).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": _("未找到。")}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": _("服务器内部错误，请稍后重试。")}, status=500)
    return defaults.server_error(request)
