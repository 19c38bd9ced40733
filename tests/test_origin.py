"""Hole 8: the websocket Origin check compares the port, not only the host name."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _connects(*headers: tuple[bytes, bytes]) -> bool:
    async def scenario() -> bool:
        communicator = WebsocketCommunicator(application, "/ws/member/", headers=list(headers))
        try:
            connected, _code = await communicator.connect()
            return connected
        finally:
            await communicator.disconnect()

    return async_to_sync(scenario)()


def test_a_page_from_another_port_on_the_same_host_is_refused():
    assert not _connects((b"host", b"localhost:8000"), (b"origin", b"http://localhost:9999"))


def test_a_page_on_the_default_port_is_refused_by_a_server_on_another_port():
    assert not _connects((b"host", b"localhost:8000"), (b"origin", b"http://localhost"))


def test_the_same_host_and_port_is_accepted():
    # Accepted by the origin check; the consumer then refuses the anonymous socket
    # with an error frame, which still means the handshake succeeded.
    assert _connects((b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000"))


def test_default_ports_match_an_origin_without_a_port():
    assert _connects((b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"))
    assert _connects((b"host", b"127.0.0.1:443"), (b"origin", b"https://127.0.0.1"))


def test_a_host_not_allowed_is_still_refused():
    assert not _connects((b"host", b"evil.example"), (b"origin", b"http://evil.example"))


def test_a_listed_trusted_origin_is_accepted(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://localhost:8443"]
    assert _connects((b"host", b"localhost:8000"), (b"origin", b"https://localhost:8443"))
