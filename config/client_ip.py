"""The client's address, for login lockouts and throttles.

Without declared proxies (TRUSTED_PROXY_COUNT=0) it is the socket peer: a
client can write any X-Forwarded-For it likes. With N proxies in front, each one
appends the address it received the request from, so the N-th entry from the
right of X-Forwarded-For was written by our outermost proxy and is the client;
anything left of it came from the client and is ignored. (django-ipware counts
from the left, which a client controls, so it is not used here.)
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [h for h in hops if h]
    if len(hops) < count:
        return remote  # not through our proxies: trust only the socket
    try:
        return str(ipaddress.ip_address(hops[-count]))
    except ValueError:
        return remote
