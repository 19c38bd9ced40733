from django.urls import path
from django.views.i18n import JavaScriptCatalog

from . import views

app_name = "board"

urlpatterns = [
    path("", views.board, name="board"),
    # gettext() for the board's scripts, from locale/*/djangojs.po.
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["board"]), name="jsi18n"),
    path("api/map/", views.board_map, name="map"),
    path("api/candidates/", views.candidates, name="candidates"),
    path("api/incidents/", views.raise_incident, name="raise"),
    path(
        "api/incidents/<int:incident_id>/candidates/",
        views.incident_candidates,
        name="incident-candidates",
    ),
    path("api/incidents/<int:incident_id>/call/", views.call_units, name="call"),
    path("api/incidents/<int:incident_id>/next-ring/", views.next_ring, name="next-ring"),
    path("api/incidents/<int:incident_id>/gather/", views.gather, name="gather"),
    path("api/incidents/<int:incident_id>/stand-down/", views.stand_down, name="stand-down"),
    path("api/incidents/<int:incident_id>/close/", views.close, name="close"),
]
