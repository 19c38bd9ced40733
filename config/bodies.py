"""Refuse request bodies that Django would read as empty.

Behind daphne a chunked body (``Transfer-Encoding: chunked``, no
``Content-Length``) reaches Django whole, but ``ASGIRequest`` reads only
``Content-Length`` bytes of it: zero. An intake POSTed that way was answered
as if it had no fields. Clients that cannot give a length get 411 and a reason
instead of a silent empty body.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.utils.translation import gettext as _

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class LengthRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return _refusal(request) or self.get_response(request)


def _refusal(request) -> JsonResponse | None:
    if (
        request.method not in _BODYLESS
        and "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        and not request.META.get("CONTENT_LENGTH")
    ):
        return JsonResponse(
            {
                "code": "length_required",
                "detail": _("请求须带 Content-Length，不支持分块传输（chunked）的请求体。"),
            },
            status=411,
        )
    return None
