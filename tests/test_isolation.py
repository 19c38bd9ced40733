"""Unit tests touch no service they did not start."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings


def test_unit_tests_reach_no_redis_they_did_not_start():
    url = urlsplit(settings.REDIS_URL)
    # Not a TCP port that a running system (or anything else) may hold.
    assert url.scheme == "unix"
    assert not Path(url.path).parent.exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.3).ping()
