"""Which push endpoints the worker may POST to (issue 10, hole 1: SSRF).

A browser hands us its push service's URL, and the worker later POSTs to it.
Left open, any member could point the worker at 127.0.0.1, Redis or the
office network. So an endpoint must be https, on a known push service
(``WEBPUSH_ALLOWED_HOSTS``), and every address its host resolves to must be a
public one. The check runs when the subscription is saved (a 400 with the
reason) and again right before each send, because DNS answers can change;
at send time the connection itself also checks the address it reached
(``PublicPeerAdapter``), which closes the window between the two lookups.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError


class EndpointRefused(ValueError):
    """The endpoint is not one the worker may POST to; ``str()`` is the reason."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to now (the one DNS seam; tests stub it)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def _host_allowed(host: str) -> bool:
    # Match on label boundaries only: "notify.windows.com" admits
    # "wns2-by3p.notify.windows.com" but never "evilnotify.windows.com" or
    # "notify.windows.com.evil.net".
    for entry in settings.WEBPUSH_ALLOWED_HOSTS:
        entry = entry.strip().lower().strip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def _address_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global is False for loopback, private, link-local, shared (CGNAT),
    # reserved and unspecified ranges; multicast is never a push service.
    return ip.is_global and not ip.is_multicast


def endpoint_check(endpoint: object) -> str:
    """Return ``endpoint`` if the worker may POST to it now, else raise EndpointRefused."""
    if not isinstance(endpoint, str) or not endpoint:
        raise EndpointRefused(_("推送地址须为 https URL。"))
    if len(endpoint) > 1000:
        raise EndpointRefused(_("推送地址过长。"))
    try:
        parts = urlsplit(endpoint)
        port = parts.port or 443
    except ValueError:
        raise EndpointRefused(_("推送地址须为 https URL。")) from None
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused(_("推送地址不能包含用户名或密码。"))
    if parts.hostname and f"{parts.scheme}://{parts.hostname}" in settings.WEBPUSH_TEST_ORIGINS:
        return endpoint  # a local push service the e2e tests run; empty in production
    if parts.scheme != "https" or not parts.hostname:
        raise EndpointRefused(_("推送地址须为 https URL。"))
    host = parts.hostname.rstrip(".")
    if not _host_allowed(host):
        raise EndpointRefused(_("推送地址不属于已知的推送服务。"))
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        raise EndpointRefused(_("推送服务的域名无法解析。")) from None
    if not addresses:
        raise EndpointRefused(_("推送服务的域名无法解析。"))
    if not all(_address_public(a) for a in addresses):
        raise EndpointRefused(_("推送地址指向内部或保留网络地址。"))
    return endpoint


class _PublicPeerHTTPSConnection(HTTPSConnection):
    """An HTTPS connection that checks the address it actually reached.

    ``endpoint_check`` resolves the name, then the connection resolves it again:
    a DNS answer that moved in between (DNS rebinding) would aim the worker
    inside. The connected peer is checked before TLS begins, so not a byte goes
    to an internal address.
    """

    def _new_conn(self):
        sock = super()._new_conn()
        peer = sock.getpeername()[0]
        if not _address_public(peer):
            sock.close()
            raise NewConnectionError(self, f"refused: {self.host} connected to {peer}")
        return sock


class _PublicPeerHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PublicPeerHTTPSConnection


class PublicPeerAdapter(HTTPAdapter):
    """A requests adapter whose https connections reach public addresses only
    (mounted on the push session for ``https://``)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme,
            "https": _PublicPeerHTTPSPool,
        }
