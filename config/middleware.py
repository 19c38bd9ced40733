"""Middleware that runs either way: on daphne's event loop (async) or in a
thread (sync, the test client). Every middleware in ``MIDDLEWARE`` is one
(``tests/test_middleware_async.py``): a sync-only one sends each request from
the loop to a thread and back before the view, a wait for the loop's next turn
each way."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class EitherWay:
    """A middleware base: ``_call`` for a sync chain, ``_acall`` for an async one
    (Django builds the chain, ``get_response`` says which)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self._call(request)

    def _call(self, request):
        raise NotImplementedError

    async def _acall(self, request):
        raise NotImplementedError
