"""Issue 10, hole 1: a member's push endpoint must not turn the worker into an SSRF proxy.

No test here touches the network: DNS goes through ``mobile.push_endpoints.resolve``,
which the tests feed with a stub for hostnames only; IP-literal hosts never reach it.
The send-time tests listen on a local socket to prove nothing was POSTed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.test import Client

from mobile import push_endpoints, webpush
from mobile.auth import member_activate, member_login_code_issue
from mobile.models import PushSubscription

PASSWORD = "Resp0nd-now"
FCM = "https://fcm.googleapis.com/fcm/send/abc"


@pytest.fixture
def dns(monkeypatch):
    """A resolver stub: hostname -> addresses. Unknown names fail as DNS would."""
    table: dict[str, list[str]] = {
        "fcm.googleapis.com": ["142.250.72.10"],
        "updates.push.services.mozilla.com": ["34.117.10.20"],
        "wns2-by3p.notify.windows.com": ["20.42.1.2"],
    }

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown host")
        return table[host]

    monkeypatch.setattr(push_endpoints, "resolve", resolve)
    return table


@pytest.fixture
def phone_client(near_member) -> Client:
    issued = member_login_code_issue(member=near_member)
    member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    client = Client()
    response = client.post(
        "/m/login/", {"form": "password", "phone": near_member.phone, "password": PASSWORD}
    )
    assert response.status_code == 302
    return client


def _subscribe(client: Client, endpoint: str):
    return client.post(
        "/m/api/push/",
        json.dumps({"endpoint": endpoint, "keys": {"p256dh": "BBBB", "auth": "AAAA"}}),
        content_type="application/json",
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:18999/x",  # the report's case: plain http to loopback
        "https://127.0.0.1:6379/",  # Redis, even over https
        "https://[::1]/x",
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "https://10.0.0.5/x",
        "http://fcm.googleapis.com/fcm/send/abc",  # a known service, but not https
        "https://evil.example/x",  # not a push service
        "https://fcm.googleapis.com.evil.example/x",  # suffix tricks
        "https://evilfcm.googleapis.com.example/x",
        "https://xnotify.windows.com/x",
        "https://user:pw@fcm.googleapis.com/x",
        "javascript:alert(1)",
    ],
)
def test_push_endpoint_outside_known_public_push_services_is_a_400(phone_client, dns, endpoint):
    response = _subscribe(phone_client, endpoint)
    assert response.status_code == 400
    assert response.json()["errors"]["endpoint"][0]  # the reason, for the phone's log
    assert not PushSubscription.objects.exists()


def test_push_endpoint_whose_name_resolves_to_a_private_address_is_a_400(phone_client, dns):
    dns["fcm.googleapis.com"] = ["142.250.72.10", "192.168.1.20"]  # one bad answer is enough
    response = _subscribe(phone_client, FCM)
    assert response.status_code == 400
    assert "内部" in response.json()["errors"]["endpoint"][0]
    dns["fcm.googleapis.com"] = ["::ffff:127.0.0.1"]  # loopback dressed as IPv6
    assert _subscribe(phone_client, FCM).status_code == 400
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    "endpoint",
    [
        FCM,
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
        "https://wns2-by3p.notify.windows.com/w/?token=BQYAAA",
    ],
)
def test_push_endpoint_on_a_known_push_service_is_stored(phone_client, dns, endpoint):
    assert _subscribe(phone_client, endpoint).status_code == 201
    assert PushSubscription.objects.get().endpoint == endpoint


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.hits.append(self.path)
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def listener():
    """A local HTTP server that records every POST it receives."""
    handler = type("Recorder", (_Recorder,), {"hits": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler.hits
    server.shutdown()
    server.server_close()


def _browser_keys() -> tuple[str, str]:
    """A real subscription key pair, so an unchecked send would get as far as the POST."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return b64(raw), b64(os.urandom(16))


def test_worker_refuses_to_post_to_a_stored_internal_endpoint(listener, settings, tmp_path):
    # A row saved before the check existed (or written around it) must still not be sent to.
    settings.VAPID_PRIVATE_KEY_FILE = tmp_path / "vapid.pem"
    webpush.vapid_reset()
    port, hits = listener
    p256dh, auth = _browser_keys()
    try:
        result = webpush.push_send(
            endpoint=f"http://127.0.0.1:{port}/x", p256dh=p256dh, auth=auth, payload={"a": 1}
        )
    finally:
        webpush.vapid_reset()
    assert hits == []
    assert not result.ok and "refused" in result.detail


def test_worker_checks_dns_again_at_send_time(dns, settings, tmp_path):
    # Saved while the name pointed at the push service; it now points inside.
    settings.VAPID_PRIVATE_KEY_FILE = tmp_path / "vapid.pem"
    dns["fcm.googleapis.com"] = ["127.0.0.1"]
    p256dh, auth = _browser_keys()
    result = webpush.push_send(endpoint=FCM, p256dh=p256dh, auth=auth, payload={})
    webpush.vapid_reset()
    assert not result.ok and "refused" in result.detail


def test_push_session_does_not_follow_redirects(listener):
    port, hits = listener

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{port}/followed")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with webpush._NoRedirectSession() as session:
            response = session.post(f"http://127.0.0.1:{server.server_address[1]}/", data=b"x")
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 307
    assert hits == []


def test_a_named_test_origin_is_exempt_but_only_that_origin(phone_client, dns, settings):
    settings.WEBPUSH_TEST_ORIGINS = ["http://127.0.0.1"]
    assert _subscribe(phone_client, "http://127.0.0.1:18999/x").status_code == 201
    # Userinfo cannot smuggle another host past the origin match.
    assert _subscribe(phone_client, "http://127.0.0.1:80@10.0.0.5/x").status_code == 400
    assert _subscribe(phone_client, "http://127.0.0.2:18999/x").status_code == 400


def test_a_dns_answer_that_moves_between_check_and_connect_is_refused(
    dns, monkeypatch, settings, tmp_path
):
    # DNS rebinding: the check sees the push service's public address, then the
    # connection's own lookup gets an internal one. The worker must not send a
    # byte there: the connected peer is checked before TLS or HTTP begins.
    settings.VAPID_PRIVATE_KEY_FILE = tmp_path / "vapid.pem"
    received: list[bytes] = []
    inside = socket.socket()
    inside.bind(("127.0.0.1", 0))
    inside.listen(1)
    inside.settimeout(5)

    def accept() -> None:
        try:
            conn, _ = inside.accept()
        except OSError:
            return
        conn.settimeout(2)
        with contextlib.suppress(OSError):
            received.append(conn.recv(1024))
        conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    real_getaddrinfo = socket.getaddrinfo
    inside_port = inside.getsockname()[1]

    def rebinding_getaddrinfo(host, port, *args, **kwargs):
        if host == "fcm.googleapis.com":
            return real_getaddrinfo("127.0.0.1", inside_port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    p256dh, auth = _browser_keys()
    try:
        result = webpush.push_send(endpoint=FCM, p256dh=p256dh, auth=auth, payload={})
    finally:
        webpush.vapid_reset()
        thread.join(timeout=5)
        inside.close()
    assert not result.ok
    assert received in ([], [b""]), received  # not a byte of TLS or HTTP went inside
