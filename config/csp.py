"""Content-Security-Policy helpers for settings."""

from __future__ import annotations

from urllib.parse import urlsplit


def tile_sources(url_template: str) -> list[str]:
    """The CSP source for a Leaflet tile URL template such as
    ``https://t{s}.example.cn/{z}/{x}/{y}.png``: ``https://*.example.cn``."""
    if not url_template:
        return []
    parts = urlsplit(url_template)
    host = parts.hostname or ""
    if "{" in host:
        # A CSP wildcard may only stand for whole leftmost labels.
        host = "*." + host.split(".", 1)[1] if "." in host else ""
    if not host:
        return []
    port = f":{parts.port}" if parts.port else ""
    return [f"{parts.scheme}://{host}{port}"]
