"""The project's URLs plus one view that crashes, for the 500 handlers."""

from django.urls import path

from config.urls import handler404, handler500, urlpatterns as project_urlpatterns  # noqa: F401


def boom(request):
    raise RuntimeError("boom: a local variable the page must not show")


urlpatterns = [
    path("boom/", boom),
    path("api/v1/boom/", boom),
    *project_urlpatterns,
]
