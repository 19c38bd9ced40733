from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MobileConfig(AppConfig):
    """The member's phone app: sign-in codes and lockout, push subscriptions,
    the notification chain's attempts, duty clock-ins and the alert history."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "mobile"
    verbose_name = _("队员手机端")

    def ready(self) -> None:
        # Connects the member lockout to failed logins on every path. Imported
        # here, not at the top: mobile.auth imports models, which the app
        # registry only allows once it is ready.
        from . import auth  # noqa: F401
