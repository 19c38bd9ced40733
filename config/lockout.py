"""What a locked-out staff login gets (django-axes' AXES_LOCKOUT_CALLABLE).

One answer whether the username exists or not. API clients get JSON; every
caller gets 429 with Retry-After, so a script knows when to try again.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from config.errors import API_PREFIX


def cooloff_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_response(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    seconds = cooloff_seconds()
    minutes = max(1, -(-seconds // 60))
    message = _("登录失败次数过多，请 %(minutes)d 分钟后再试。") % {"minutes": minutes}
    if request.path.startswith(API_PREFIX):
        response: HttpResponse = JsonResponse({"detail": message}, status=429)
    else:
        page = render_to_string("locked_out.html", {"message": message}, request=request)
        response = HttpResponse(page, status=429)
    response["Retry-After"] = str(seconds)
    return response
