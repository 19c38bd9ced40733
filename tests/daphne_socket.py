"""One websocket connection of ``config.server``'s daphne, on Twisted's test
transport: daphne's and autobahn's real protocol, no socket, no reactor run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from daphne.ws_protocol import WebSocketFactory
from twisted.internet.testing import StringTransport

from config import server


@contextlib.contextmanager
def daphne_socket(**options: Any) -> Iterator[tuple[Any, Any, StringTransport]]:
    """(server, protocol, transport); ``options``: autobahn's protocol options."""
    server_class = server._lean_server()
    lean = server_class.__new__(server_class)
    lean.ws_factory = WebSocketFactory(lean, server="daphne")
    if options:
        lean.ws_factory.setProtocolOptions(**options)
    protocol = lean.ws_factory.buildProtocol(("127.0.0.1", 1))
    transport = StringTransport()
    protocol.makeConnection(transport)
    lean.connections = {protocol: {}}
    try:
        yield lean, protocol, transport
    finally:
        # The handshake timer makeConnection set (the reactor never runs here).
        if protocol.openHandshakeTimeoutCall is not None:
            protocol.openHandshakeTimeoutCall.cancel()
