"""What every provider backend shares: settings, errors, retry with backoff.

A provider call ends one of three ways:

- accepted: ``SendResult(ok=True, provider_ref=...)`` per recipient; the receipt
  callback later says delivered / failed (SMS) or answered / unanswered (voice);
- refused for good (bad number, template not approved, no balance):
  ``SendResult(ok=False, error_code=...)``; the chain moves that member on at once;
- transient (timeout, connection refused, HTTP 5xx, the provider's own
  "busy" codes): ``TransientError``; ``send_with_retry`` tries again with
  exponential backoff and, past the last try, reports ``ok=False, transient=True``.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..notify import BaseBackend, Notification, SendResult
from . import ratelimit

log = logging.getLogger(__name__)


class TransientError(Exception):
    """The provider did not answer, or answered 5xx / busy: worth another try."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Retry:
    """One retry the backend made; the chain writes each to the incident timeline."""

    provider: str
    attempt: int
    delay_s: float
    detail: str


def gateway_settings(provider: str) -> dict[str, Any]:
    """``settings.NOTIFY_GATEWAYS[provider]`` (config/settings.py builds it from the
    environment)."""
    conf = getattr(settings, "NOTIFY_GATEWAYS", {}).get(provider)
    if conf is None:
        raise ImproperlyConfigured(f"NOTIFY_GATEWAYS has no entry for {provider!r}")
    return conf


def require(conf: dict[str, Any], prefix: str, *names: str) -> None:
    """A clear start-up error for a configured backend whose keys are missing,
    naming the environment variables to set: ``prefix`` is the variables'
    prefix (``aliyun`` for the shared keys, ``aliyun_voice`` for the voice
    template: ALIYUN_ACCESS_KEY_ID, ALIYUN_VOICE_TTS_CODE)."""
    missing = [name for name in names if not conf.get(name)]
    if missing:
        env = ", ".join(f"{prefix.upper()}_{name.upper()}" for name in missing)
        raise ImproperlyConfigured(f"{prefix}: missing {env} (see docs/deployment.md)")


class GatewayBackend(BaseBackend):
    """A provider backend: rate-limited, batched, retried.

    Subclasses set ``provider`` and ``batch_size`` and implement
    ``_call(notifications) -> list[SendResult]`` for at most ``batch_size``
    recipients, raising ``TransientError`` for what is worth another try.
    """

    provider = ""
    batch_size = 1
    # Receipts come later by callback: a sent message has not reached anyone yet.
    has_receipts = True

    def __init__(self) -> None:
        self.conf = gateway_settings(self.provider)
        self.retries: list[Retry] = []

    def send(self, notification: Notification) -> SendResult:
        return self.send_many([notification])[0]

    def batch_key(self, note: Notification) -> Any:
        """Notes with the same key may share one call (a provider whose batch API
        takes one text for all numbers groups by the text)."""
        return None

    def send_many(self, notifications: Sequence[Notification]) -> list[SendResult]:
        """Send in calls of ``batch_size``, up to ``concurrency`` calls in flight.

        A provider call is mostly waiting for the provider (tens of ms), so one
        call at a time holds a worker far below the provider's rate; the token
        bucket, taken before each call, still spaces the calls' departures,
        however many are in flight. Retries are reported to ``retry_listener``
        from this thread (it writes to the database: the worker threads open no
        connections)."""
        groups: dict[Any, list[int]] = {}
        for i, note in enumerate(notifications):
            groups.setdefault(self.batch_key(note), []).append(i)
        parts = [
            indexes[start : start + self.batch_size]
            for indexes in groups.values()
            for start in range(0, len(indexes), self.batch_size)
        ]
        results: list[SendResult | None] = [None] * len(notifications)
        retried: queue.SimpleQueue[Retry] = queue.SimpleQueue()

        def send(part: list[int]) -> tuple[list[int], list[SendResult]]:
            return part, self._send_chunk([notifications[i] for i in part], retried.put)

        workers = max(1, min(int(self.conf.get("concurrency", 8)), len(parts)))
        if workers == 1:
            done = [send(part) for part in parts]
            self._retries_report(retried)
        else:
            done = []
            with ThreadPoolExecutor(workers, thread_name_prefix=self.provider) as pool:
                pending = {pool.submit(send, part) for part in parts}
                while pending:
                    finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    done += [future.result() for future in finished]
                    self._retries_report(retried)
        for part, chunk_results in done:
            for i, result in zip(part, chunk_results, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def _send_chunk(
        self, chunk: list[Notification], on_retry: Callable[[Retry], None]
    ) -> list[SendResult]:
        return send_with_retry(
            provider=self.provider,
            call=lambda: self._call(chunk),
            size=len(chunk),
            tries=int(self.conf.get("retries", 3)) + 1,
            backoff_s=float(self.conf.get("backoff_s", 0.5)),
            qps=float(self.conf.get("qps", 10)),
            on_retry=on_retry,
        )

    def _retries_report(self, retried: queue.SimpleQueue[Retry]) -> None:
        while not retried.empty():
            retry = retried.get()
            self.retries.append(retry)
            if self.retry_listener is not None:
                self.retry_listener(retry)

    def _call(self, notifications: list[Notification]) -> list[SendResult]:  # pragma: no cover
        raise NotImplementedError


def send_with_retry(
    *,
    provider: str,
    call: Callable[[], list[SendResult]],
    size: int,
    tries: int,
    backoff_s: float,
    qps: float,
    on_retry: Callable[[Retry], None],
) -> list[SendResult]:
    """One provider API call under the provider's token bucket, retried with
    exponential backoff on transient errors only (a refused number is not retried:
    it would be refused again, and a retry could send a member the SMS twice)."""
    detail = ""
    for attempt in range(1, tries + 1):
        ratelimit.acquire(provider, qps=qps)
        try:
            return call()
        except TransientError as exc:
            detail = exc.detail[:200]
            if attempt == tries:
                break
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("%s: %s; retry %d in %.1fs", provider, detail, attempt, delay)
            on_retry(Retry(provider=provider, attempt=attempt, delay_s=delay, detail=detail))
            time.sleep(delay)
    return [SendResult(ok=False, detail=detail, transient=True, error_code="transient")] * size


def http_status_transient(status: int | None) -> bool:
    return status is None or status >= 500 or status == 429
