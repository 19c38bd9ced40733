"""The project's URLs plus one view that crashes, for the 500 handlers."""

from django.urls import path

from config.urls import handler404, handler500  # noqa: F401
from config.urls import urlpatterns as project_urlpatterns


def boom(request):
    raise RuntimeError("boom: a local variable the page must not show")


urlpatterns = [
    path("boom/", boom),
    path("api/v1/boom/", boom),
    *project_urlpatterns,
]
