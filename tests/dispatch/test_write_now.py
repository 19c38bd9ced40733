"""A pushed frame written from the channel layer's reader (``write_now``),
through daphne's own protocol on a Twisted test transport: written when the
socket has nothing else to do, left to the inbox otherwise, never written to a
socket being closed."""

from __future__ import annotations

import json

import pytest

from config import server
from dispatch.consumers import MemberConsumer
from tests.daphne_socket import daphne_socket

pytestmark = pytest.mark.database_independent


@pytest.fixture
def socket():
    with daphne_socket() as (lean, protocol, transport):
        protocol.state = protocol.STATE_OPEN  # past the handshake
        consumer = MemberConsumer()
        consumer.base_send = server._Reply(lean, protocol)
        yield consumer, transport


def _texts(wire: bytes) -> list[str]:
    """The text frames on the wire (unmasked server frames under 126 bytes)."""
    out = []
    while wire:
        assert wire[0] == 0x81
        length = wire[1]
        out.append(wire[2 : 2 + length].decode())
        wire = wire[2 + length :]
    return out


ALERT = {"type": "incident.alert", "id": 7, "incident": {"id": 41}}


def _push(*frames):
    return {"type": "push", "texts": [json.dumps(f) for f in frames], "payloads": list(frames)}


def test_an_idle_socket_writes_a_push_at_once_and_notes_its_alerts(socket):
    consumer, transport = socket
    update = {"type": "incident.update", "id": 8, "incident_id": 41}
    assert consumer.write_now(_push(ALERT, update)) is True
    assert [json.loads(t) for t in _texts(transport.value())] == [ALERT, update]
    assert set(consumer.written) == {41}


def test_a_busy_socket_leaves_the_push_to_its_inbox(socket):
    """A resume's replay is being written: a live frame must come after it."""
    consumer, transport = socket
    consumer.handling = True
    assert consumer.write_now(_push(ALERT)) is False
    assert transport.value() == b""
    assert consumer.written is None


def test_other_messages_go_to_the_inbox(socket):
    consumer, transport = socket
    assert consumer.write_now({"type": "member.duty", "on_duty": False}) is False
    assert transport.value() == b""


def test_a_closing_socket_drops_the_push(socket):
    """Signed out or deactivated: nothing more is forwarded, as ``push`` does."""
    consumer, transport = socket
    consumer.closing = True
    assert consumer.write_now(_push(ALERT)) is True
    assert transport.value() == b""
