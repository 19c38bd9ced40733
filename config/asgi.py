from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.handler import get_asgi_application  # noqa: E402

# Populate the app registry before importing consumers (they import models).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from config.origin import SameOriginValidator  # noqa: E402
from dispatch.checks import heartbeat_timing  # noqa: E402
from dispatch.routing import websocket_urlpatterns  # noqa: E402

# daphne runs no system checks: a socket timing that would fail every phone's
# socket stops the server here, at its start, instead.
_timing_errors = [m.msg for m in heartbeat_timing() if m.is_serious()]
if _timing_errors:
    raise ImproperlyConfigured("; ".join(_timing_errors))

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The Origin must match the socket's host and port (config/origin.py).
        # Each socket route brings its own auth (dispatch/routing.py).
        "websocket": SameOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
