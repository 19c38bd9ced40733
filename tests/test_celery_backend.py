"""One result backend for every thread (``CELERY_RESULT_BACKEND_THREAD_SAFE``).

Django's ASGI handler runs each request on a thread of its own, and Celery
kept a result backend per thread unless the backend says it is thread-safe:
each intake POST that queued a task built one again, reading every installed
package's entry points (18% of the POST's time, ``bench/city.py --profile``)."""

from __future__ import annotations

import threading

from celery.backends.base import DisabledBackend

from config.celery import app


def test_every_thread_shares_one_backend_and_no_results_are_kept():
    first = app.backend
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(app.backend)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 3
    assert all(backend is first for backend in seen)
    assert isinstance(first, DisabledBackend)
