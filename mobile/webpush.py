"""Web Push (RFC 8030 / 8291 / 8292): the VAPID key pair, one encrypted send, and
the ``push`` channel's backend for ``dispatch.notify`` (named in NOTIFY_BACKENDS).

The key pair is made on first use into ``VAPID_PRIVATE_KEY_FILE`` (DATA_DIR by
default) and kept: browsers bind their subscriptions to the public key, so a
new key would silently orphan every subscription.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush

from dispatch.notify import BaseBackend, Notification, SendResult

from .models import PushSubscription
from .push_endpoints import EndpointRefused, PublicPeerAdapter, endpoint_check
from .services import push_success_record

log = logging.getLogger(__name__)

_lock = threading.Lock()
_vapid: Vapid02 | None = None


def vapid() -> Vapid02:
    """The server's VAPID key, generated into the key file the first time."""
    global _vapid
    with _lock:
        if _vapid is not None:
            return _vapid
        path = settings.VAPID_PRIVATE_KEY_FILE
        if not path.exists():
            key = Vapid02()
            key.generate_keys()
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written under a temporary name and renamed, so a second process
            # starting at the same moment never reads half a key.
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_bytes(key.private_pem())
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)  # fails if another process won the race
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        _vapid = Vapid02.from_file(str(path))
        return _vapid


def vapid_reset() -> None:
    global _vapid
    _vapid = None


def application_server_key() -> str:
    """The public key as the browser's ``applicationServerKey`` (base64url, no padding)."""
    raw = vapid().public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class _NoRedirectSession(requests.Session):
    """A session that never follows a redirect (a 3xx is a failed push, not a new
    target) and whose https connections reach public addresses only."""

    def __init__(self) -> None:
        super().__init__()
        self.mount("https://", PublicPeerAdapter())

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        return super().request(*args, **kwargs)


@dataclass(frozen=True)
class PushResult:
    ok: bool
    status: int | None
    gone: bool  # 404/410: the subscription is dead and should be dropped
    detail: str = ""


def push_send(
    *, endpoint: str, p256dh: str, auth: str, payload: dict[str, Any], ttl: int | None = None
) -> PushResult:
    """Encrypt ``payload`` (aes128gcm) for one subscription and POST it to its push service.

    The endpoint is checked again here, not only when it was saved: a row may
    predate the check, and a host's DNS answer may have moved to an internal
    address since. Redirects are not followed, for the same reason.
    """
    try:
        endpoint_check(endpoint)
    except EndpointRefused as exc:
        return PushResult(False, None, False, f"refused: {exc}"[:200])
    info = {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}
    session = _NoRedirectSession()
    try:
        response = webpush(
            subscription_info=info,
            data=json.dumps(payload, ensure_ascii=False),
            vapid_private_key=vapid(),
            vapid_claims={"sub": settings.VAPID_SUBJECT},
            ttl=settings.WEBPUSH_TTL_S if ttl is None else ttl,
            timeout=settings.WEBPUSH_TIMEOUT_S,
            # An alert is urgent: push services may deliver "low" ones late.
            headers={"Urgency": "high"},
            requests_session=session,
        )
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        return PushResult(False, status, status in (404, 410), str(exc)[:200])
    except Exception as exc:  # network errors: requests' many exception types
        return PushResult(False, None, False, f"{type(exc).__name__}: {exc}"[:200])
    finally:
        session.close()
    return PushResult(True, response.status_code, False)


class WebPushBackend(BaseBackend):
    """Web Push to each of the member's browser subscriptions (VAPID, aes128gcm)."""

    # Members with a subscription, read once for a batch (``send_many``);
    # None: ``send`` asks for itself. A backend is made per call (``backend_for``).
    _subscribed: set[int] | None = None

    def send_many(self, notifications: Sequence[Notification]) -> list[SendResult]:
        # Which members have a subscription at all, in one query: a city-wide
        # wave's push step reaches thousands of members, most with none
        # (bench/city.py: a query each was a second of the worker while the
        # next alert went out). Those with one are read again just before
        # their send: a phone signed out meanwhile gets nothing more.
        self._subscribed = set(
            PushSubscription.objects.filter(
                member_id__in={n.member_id for n in notifications}
            ).values_list("member_id", flat=True)
        )
        try:
            return super().send_many(notifications)
        finally:
            self._subscribed = None

    def send(self, notification: Notification) -> SendResult:
        subscribed = self._subscribed
        subs = (
            []
            if subscribed is not None and notification.member_id not in subscribed
            else list(PushSubscription.objects.filter(member_id=notification.member_id))
        )
        if not subs:
            return SendResult(ok=False, skipped=True, detail="no subscription")
        payload = {
            "title": notification.title,
            "body": notification.text,
            **notification.payload,
        }
        sent, details = 0, []
        for sub in subs:
            result = push_send(
                endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth, payload=payload
            )
            if result.ok:
                sent += 1
                push_success_record(subscription_id=sub.pk)
            elif result.gone:
                sub.delete()  # the browser dropped it; keeping it only slows the next alert
                details.append(f"gone {result.status}")
            else:
                PushSubscription.objects.filter(pk=sub.pk).update(failures=sub.failures + 1)
                details.append(result.detail)
        return SendResult(ok=sent > 0, detail=f"{sent}/{len(subs)} sent " + "; ".join(details))
