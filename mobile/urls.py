from django.urls import path

from . import views

app_name = "member"

urlpatterns = [
    path("", views.app, name="app"),
    path("login/", views.sign_in, name="sign-in"),
    path("logout/", views.sign_out, name="sign-out"),
    path("sw.js", views.service_worker, name="sw"),
    path("manifest.webmanifest", views.manifest, name="manifest"),
    path("api/me/", views.api_me, name="api-me"),
    path("api/duty/", views.api_duty, name="api-duty"),
    path("api/alerts/", views.api_alerts, name="api-alerts"),
    path("api/incidents/<int:incident_id>/", views.api_incident, name="api-incident"),
    path("api/push/", views.api_push, name="api-push"),
    path("api/alert-test/", views.api_alert_test, name="api-alert-test"),
    path("api/alert-test/<int:test_id>/", views.api_alert_test_one, name="api-alert-test-one"),
    path("sms/reply/", views.sms_reply, name="sms-reply"),
]
