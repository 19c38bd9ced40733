"""Under daphne a request crosses from the event loop to its thread once, for
all its middleware and its view (``config/handler.py``), and never hands work
back to the loop midway: every crossing is a wait for a thread or for the
loop's next turn, part of every intake POST's time before the alerts went out
(bench/city.py, wave one).
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import AsyncToSync, SyncToAsync

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


@pytest.fixture
def thread_crossings(monkeypatch) -> list:
    """Each time the event loop hands work to a thread (``sync_to_async``)."""
    calls: list = []
    real = SyncToAsync.__call__

    def counting(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", repr(self.func)))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return calls


@pytest.mark.django_db(transaction=True)
def test_an_api_request_crosses_to_a_thread_once_for_its_middleware_and_view(thread_crossings):
    """Django's middleware (sessions, CSRF, locale, ...) is sync code: in an
    async chain each of its hooks crossed from the loop to a thread and back,
    a wait for a thread and for the loop's next turn each (bench/city.py: 4.5
    ms of the intake POST before its view began). The chain and the view now
    run in the request's thread in one crossing, as under WSGI; the other two
    are Django's request_started and the response's close."""
    response = asyncio.run(
        asgi_request("GET", "/api/v1/incidents/", headers=[(b"accept", b"application/json")])
    )

    assert response["status"] == 401  # reached DRF's view: no token
    assert len(thread_crossings) <= 3, thread_crossings


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
    from config.handler import get_asgi_application

    (tmp_path / "probe.txt").write_text("served")
    settings.STATIC_ROOT = tmp_path
    settings.WHITENOISE_AUTOREFRESH = autorefresh
    app = get_asgi_application()  # its middleware built with these settings

    response = asyncio.run(asgi_request("GET", "/static/probe.txt", app=app))
    assert response["status"] == 200
    assert response["body"] == b"served"
    missing = asyncio.run(asgi_request("GET", "/static/absent.txt", app=app))
    assert missing["status"] == 404
