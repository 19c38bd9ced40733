"""Under daphne a request's middleware runs on the event loop and only the view
goes to a thread. A sync-only middleware in the chain made each request cross
from the loop to a thread, back to the loop and into a thread again, every
crossing a wait for the loop's next turn: part of every intake POST's time
before the alerts went out (bench/city.py, wave one).
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import AsyncToSync
from django.conf import settings

from tests.asgi_http import asgi_request


@pytest.fixture
def loop_to_thread_returns(monkeypatch) -> list:
    """Each time a thread hands work back to the event loop (``async_to_sync``)."""
    calls: list = []
    real = AsyncToSync.__call__

    def counting(self, *args, **kwargs):
        calls.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AsyncToSync, "__call__", counting)
    return calls


def test_every_middleware_can_run_on_the_event_loop():
    from django.utils.module_loading import import_string

    sync_only = [
        path
        for path in settings.MIDDLEWARE
        if not getattr(import_string(path), "async_capable", False)
    ]
    assert sync_only == []


@pytest.mark.django_db(transaction=True)
def test_an_api_request_never_hands_back_to_the_loop_midway(loop_to_thread_returns):
    response = asyncio.run(
        asgi_request("GET", "/api/v1/incidents/", headers=[(b"accept", b"application/json")])
    )

    assert response["status"] == 401  # reached DRF's view: no token
    assert loop_to_thread_returns == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("autorefresh", [False, True])
def test_static_files_are_still_served_through_asgi(settings, tmp_path, autorefresh):
    from django.core.asgi import get_asgi_application

    (tmp_path / "probe.txt").write_text("served")
    settings.STATIC_ROOT = tmp_path
    settings.WHITENOISE_AUTOREFRESH = autorefresh
    app = get_asgi_application()  # its middleware built with these settings

    response = asyncio.run(asgi_request("GET", "/static/probe.txt", app=app))
    assert response["status"] == 200
    assert response["body"] == b"served"
    missing = asyncio.run(asgi_request("GET", "/static/absent.txt", app=app))
    assert missing["status"] == 404
