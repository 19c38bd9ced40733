"""A local government SMS platform (政务短信平台) over signed HTTP: our own scheme.

Such platforms differ per city and have no public SDK, so this is the contract
we offer one (docs/deployment.md names the settings):

**Signing, both directions.** Every request carries

    X-App-Id:     GOVSMS_APP_ID
    X-Timestamp:  Unix seconds
    X-Nonce:      16-64 characters of [A-Za-z0-9_-], never reused
    X-Signature:  hex(HMAC-SHA256(GOVSMS_SECRET, timestamp + "\\n" + nonce + "\\n" + body))

where ``body`` is the exact request body bytes. The receiver refuses (HTTP 403)
a wrong signature, a timestamp more than ``MAX_SKEW_S`` away from its clock, or
a nonce it has seen in that window.

**Send** ``POST {GOVSMS_URL}/send`` with ``{"messages": [{"id", "phone", "text"}]}``
(at most 500); the answer is ``{"code": 0, "results": [{"id", "msg_id", "code"}]}``
with ``code`` 0 for accepted. HTTP 5xx or no answer is retried with backoff.

**Callbacks** to ``/hooks/govsms/`` (same signing): ``{"type": "report",
"reports": [{"msg_id", "phone", "status": "DELIVERED"|"FAILED", "error_code"}]}``
and ``{"type": "reply", "phone", "text"}``; we answer ``{"code": 0}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.error
import urllib.request

from ..notify import Notification, SendResult
from .base import GatewayBackend, TransientError, http_status_transient, require

MAX_SKEW_S = 300
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(*, app_id: str, secret: str, body: bytes) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    return {
        "Content-Type": "application/json",
        "X-App-Id": app_id,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Signature": signature(secret, timestamp, nonce, body),
    }


def verify(*, secret: str, headers, body: bytes, now: float | None = None) -> str | None:
    """The nonce of a well-signed, fresh request, or None. The caller checks the
    nonce was not seen before (``ratelimit.once``)."""
    timestamp = headers.get("X-Timestamp", "")
    nonce = headers.get("X-Nonce", "")
    given = headers.get("X-Signature", "")
    if not secret or not timestamp.isdigit() or not NONCE_RE.fullmatch(nonce):
        return None
    if abs((now or time.time()) - int(timestamp)) > MAX_SKEW_S:
        return None
    if not hmac.compare_digest(signature(secret, timestamp, nonce, body), given):
        return None
    return nonce


class GovSmsBackend(GatewayBackend):
    provider = "govsms"
    batch_size = 500

    def __init__(self) -> None:
        super().__init__()
        require(self.conf, "govsms", "url", "app_id", "secret")

    def _call(self, notes: list[Notification]) -> list[SendResult]:
        body = json.dumps(
            {
                "messages": [
                    {"id": str(i), "phone": n.phone, "text": n.text} for i, n in enumerate(notes)
                ]
            },
            ensure_ascii=False,
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is a setting, http(s) only
            self.conf["url"].rstrip("/") + "/send",
            data=body,
            headers=signed_headers(
                app_id=self.conf["app_id"], secret=self.conf["secret"], body=body
            ),
            method="POST",
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=float(self.conf.get("timeout_s", 5))
            ) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if http_status_transient(exc.code):
                raise TransientError(f"HTTP {exc.code}") from exc
            return [
                SendResult(ok=False, detail=f"HTTP {exc.code}", error_code=str(exc.code))
            ] * len(notes)
        except (OSError, ValueError) as exc:  # timeout, refused, a broken answer
            raise TransientError(f"{type(exc).__name__}: {exc}"[:200]) from exc
        if answer.get("code") != 0:
            code = str(answer.get("code"))
            return [
                SendResult(ok=False, detail=str(answer.get("msg", ""))[:200], error_code=code)
            ] * len(notes)
        by_id = {str(r.get("id")): r for r in answer.get("results", [])}
        results = []
        for i in range(len(notes)):
            r = by_id.get(str(i), {})
            if r.get("code") == 0 and r.get("msg_id"):
                results.append(SendResult(ok=True, detail="govsms", provider_ref=str(r["msg_id"])))
            else:
                results.append(
                    SendResult(ok=False, detail="refused", error_code=str(r.get("code")))
                )
        return results
