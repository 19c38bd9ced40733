"""Django's ASGI handler with each request's middleware and view in one thread.

Django's middleware (security, CSP, sessions, locale, CSRF, auth, messages,
history, axes) is sync code. In the async chain Django builds for ASGI, each of
its hooks crossed from daphne's event loop to the request's thread and back:
21 crossings for one API request, each a wait for the thread and for the
loop's next turn (bench/city.py: 4.5 ms of an intake POST before its view
began, on a loaded machine). Here the chain is built sync, as under WSGI, and
a request crosses once for all of it: ``tests/test_middleware_async.py``.
Every view of the project is sync; the request's thread is the one Django
would give its view (thread-sensitive, per request), so connections and
signals behave as before.
"""

from __future__ import annotations

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class ThreadedChainASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_asgi_application() -> ThreadedChainASGIHandler:
    """``django.core.asgi.get_asgi_application`` with this handler."""
    django.setup(set_prefix=False)
    return ThreadedChainASGIHandler()
