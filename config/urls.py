from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView, TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from dispatch import api as dispatch_api
from units import api as units_api

router = DefaultRouter()
router.register("units/nearby", dispatch_api.NearbyUnitsView, basename="unit-nearby")
router.register("units", units_api.UnitViewSet, basename="unit")
router.register("incidents", dispatch_api.IncidentViewSet, basename="incident")

api_v1 = [
    path("auth/token/", units_api.TokenView.as_view(), name="auth-token"),
    path("auth/login/", units_api.LoginView.as_view(), name="auth-login"),
    path("auth/logout/", units_api.LogoutView.as_view(), name="auth-logout"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its script as a file: the CSP forbids inline scripts.
    path("schema/swagger/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    # Browsers ask every site for /favicon.ico; answer with the app's icon.
    path("favicon.ico", RedirectView.as_view(url="/static/member/icon-192.png", permanent=True)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("review.urls")),  # police review pages and /api/v1/reports/
    path("m/", include("mobile.urls")),  # the member's phone app
    path("board/", include("board.urls")),  # the police station's live command board
    path("hooks/", include("dispatch.hooks")),  # SMS / voice provider callbacks
]

# Friendly pages for people, JSON under /api/ (config/errors.py).
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
