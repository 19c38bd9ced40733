"""One HTTP request through the project's ASGI application, as daphne hands it
over (a chunked body, the middleware chain on the event loop)."""

from __future__ import annotations

from channels.testing import ApplicationCommunicator

from config.asgi import application


async def asgi_request(
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    app=application,
) -> dict:
    """``{"status", "body"}`` of the answer."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(5)
    content = b""
    while True:
        message = await communicator.receive_output(5)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    return {"status": start["status"], "body": content}
