"""WhiteNoise on daphne's event loop.

WhiteNoise's middleware is sync only. Django adapts a sync middleware inside an
async chain by sending the request from the loop to a thread and back, so
every request crossed threads three times, each crossing a wait for the loop's
next turn (bench/city.py: part of every intake POST before its alerts). This
subclass answers the usual case, a URL that is not a static file, on the loop
with a dictionary lookup; serving a file, and looking at the disk when
``WHITENOISE_AUTOREFRESH`` is on (development), go to a thread.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from whitenoise import middleware

from .middleware import EitherWay


class WhiteNoiseMiddleware(EitherWay, middleware.WhiteNoiseMiddleware):
    def __init__(self, get_response=None, settings=django_settings):
        middleware.WhiteNoiseMiddleware.__init__(self, get_response, settings)
        EitherWay.__init__(self, get_response)

    _call = middleware.WhiteNoiseMiddleware.__call__

    async def _acall(self, request):
        path = request.path_info
        if self.autorefresh:
            static = any(path.startswith(prefix) for _root, prefix in self.directories)
            found = await sync_to_async(self.find_file)(path) if static else None
        else:
            found = self.files.get(path)
        if found is not None:
            return await sync_to_async(self.serve)(found, request)
        return await self.get_response(request)
