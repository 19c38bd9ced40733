from django.urls import path
from django.views.i18n import JavaScriptCatalog

from . import api, views

app_name = "review"

urlpatterns = [
    path("review/", views.index, name="index"),
    # gettext() for the review pages' scripts, from locale/*/djangojs.po.
    path(
        "review/jsi18n/",
        JavaScriptCatalog.as_view(packages=["review"]),
        name="jsi18n",
    ),
    path("review/incidents/", views.incident_list, name="incidents"),
    path("review/incidents/<int:incident_id>/", views.incident_detail, name="incident"),
    path("review/report/", views.report, name="report"),
    path("review/map/", views.coverage_map, name="map"),
    path("review/drills/", views.drills, name="drills"),
    path("review/index/", views.index_ranking, name="index-ranking"),
    path("review/warning/", views.warning_map, name="warning"),
    path("review/index/<str:level>/<int:key>/", views.index_explain, name="index-explain"),
    path("review/drills/<int:drill_id>/", views.drill_detail, name="drill"),
    path("review/drills/<int:drill_id>/live/", views.drill_live, name="drill-live"),
    path(
        "review/export/<str:what>.<str:fmt>",
        views.export,
        name="export",
    ),
    path(
        "api/v1/reports/response-times/",
        api.ResponseTimesView.as_view(),
        name="api-response-times",
    ),
]
