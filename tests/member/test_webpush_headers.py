"""What the Web Push backend sends to a push service: ``Urgency: high`` and an
explicit ``TTL`` from settings, an encrypted payload the service worker shows as
a notification tagged per incident (or per test). A local HTTP server plays the
push service; the browser side is a real ECDH key pair that decrypts the body."""

from __future__ import annotations

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dispatch import notify
from dispatch.models import Delivery, Incident
from dispatch.services import incident_create
from mobile import alert_test, webpush
from mobile.models import AlertTest, PushSubscription
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


class _PushService(BaseHTTPRequestHandler):
    received: list[dict]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(
            {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        )
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def push_service(settings, tmp_path):
    settings.VAPID_PRIVATE_KEY_FILE = tmp_path / "vapid.pem"
    settings.WEBPUSH_TEST_ORIGINS = ["http://127.0.0.1"]
    settings.WEBPUSH_TTL_S = 123
    webpush.vapid_reset()
    handler = type("PushService", (_PushService,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], handler.received
    server.shutdown()
    server.server_close()
    webpush.vapid_reset()


def _subscribe(member, port: int):
    """A browser's subscription: its key pair decrypts what the service receives."""
    receiver = ec.generate_private_key(ec.SECP256R1())
    raw = receiver.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    secret = os.urandom(16)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    PushSubscription.objects.create(
        member=member,
        endpoint=f"http://127.0.0.1:{port}/push/{member.pk}",
        p256dh=b64(raw),
        auth=b64(secret),
    )
    return receiver, secret


def _open(push: dict, receiver, secret) -> dict:
    clear = http_ece.decrypt(
        push["body"], private_key=receiver, auth_secret=secret, version="aes128gcm"
    )
    return json.loads(clear)


def test_an_alert_push_is_urgent_with_an_explicit_ttl_and_a_tag_per_incident(
    push_service, near_member
):
    port, received = push_service
    MemberFactory(unit=near_member.unit, on_duty=True)
    receiver, secret = _subscribe(near_member, port)
    incident = incident_create(
        kind=Incident.Kind.FIRE, lat=23.1303, lon=113.3203, source="console"
    ).incident
    delivery = Delivery.objects.select_related("member", "dispatch__incident").get(
        member=near_member
    )
    result = webpush.WebPushBackend().send(
        notify.alert_notification(channel="push", delivery=delivery)
    )
    assert result.ok, result.detail
    (push,) = received
    headers = push["headers"]
    assert headers["urgency"] == "high"
    assert headers["ttl"] == "123"
    assert headers["content-encoding"] == "aes128gcm"
    payload = _open(push, receiver, secret)
    assert payload["tag"] == f"incident-{incident.pk}"
    assert payload["title"] and payload["body"]  # the worker always has something to show


def test_a_test_alert_push_is_marked_and_tagged_apart_from_incidents(
    push_service, near_member, settings
):
    port, received = push_service
    settings.NOTIFY_BACKENDS = {"push": "mobile.webpush.WebPushBackend"}
    settings.NOTIFY_CHAIN = [{"channel": "push", "after_s": 5, "while": "undelivered"}]
    receiver, secret = _subscribe(near_member, port)
    test = AlertTest.objects.create(member=near_member)
    assert alert_test.alert_test_step(test_id=test.pk, step=0)
    (push,) = received
    assert push["headers"]["urgency"] == "high" and push["headers"]["ttl"] == "123"
    payload = _open(push, receiver, secret)
    assert payload["tag"] == f"alert-test-{test.pk}" and payload["test"] is True
    assert "测试" in payload["title"] and "不是真实警情" in payload["body"]
