"""`./dev manage demo_responder` (the README's walkthrough) signs a member in
server-side; its socket was refused with a 500 because the session named
django-axes' backend, which cannot load a user."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from config.asgi import application
from dispatch.management.commands.demo_responder import member_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_demo_responders_session_opens_the_member_socket(near_responder):
    key = member_session(near_responder)

    async def scenario() -> bool:
        ws = WebsocketCommunicator(
            application,
            "/ws/member/",
            headers=[(b"cookie", f"sessionid={key}".encode()), (b"origin", b"http://testserver")],
        )
        connected, _ = await ws.connect(timeout=10)
        hello = await ws.receive_json_from(timeout=10) if connected else {}
        await ws.disconnect()
        return connected and hello.get("type") == "hello"

    assert async_to_sync(scenario)()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8011", "127.0.0.1:8000/ws/member/", "ws://"])
def test_a_url_that_is_not_a_websocket_url_is_refused_with_a_clear_error(near_responder, url):
    """``--url http://...`` was a traceback from the websocket library."""
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="ws://"):
        call_command("demo_responder", near_responder.phone, "--url", url)


def test_a_connection_refused_is_a_clear_error(near_responder):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="127.0.0.1:9"):
        call_command("demo_responder", near_responder.phone, "--url", "ws://127.0.0.1:9/ws/member/")
