from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UnitsConfig(AppConfig):
    name = "units"
    verbose_name = _("应急单元名册")

    def ready(self) -> None:
        # Receivers connect on import, once the models are loaded (Django's idiom).
        from . import signals  # noqa: F401
