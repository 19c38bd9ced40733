"""The websocket Origin check, port included.

Channels' ``AllowedHostsOriginValidator`` compares the Origin's host name with
ALLOWED_HOSTS and ignores the port, so a page served by another program on the
same host (``http://localhost:9999``) could open a socket with the member's
cookies. Here the Origin must also name the host and port the socket was opened
on (its Host header), as a same-origin browser page does; an origin listed in
CSRF_TRUSTED_ORIGINS is accepted as it is for forms.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def origin_matches_host(scope: dict) -> bool:
    """False when the Origin's host or port differs from the Host the socket used.

    A missing Origin or Host is left to the host-name check (browsers send both).
    """
    origin = _header(scope, b"origin")
    host = None
    if settings.USE_X_FORWARDED_HOST:
        host = _header(scope, b"x-forwarded-host")
    host = host or _header(scope, b"host")
    if not origin or not host:
        return True
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    try:
        parts = urlsplit(origin)
        origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False
    domain, port = split_domain_port(host.split(",")[0].strip())
    host_port = int(port) if port else DEFAULT_PORTS.get(parts.scheme)
    return (parts.hostname or "") == domain and origin_port == host_port


class SameOriginValidator:
    """ASGI middleware: the port-aware check, then channels' host-name check."""

    def __init__(self, application) -> None:
        self.application = AllowedHostsOriginValidator(application)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_matches_host(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
