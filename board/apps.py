from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BoardConfig(AppConfig):
    """The police station's live command board (指挥看板): a client of dispatch's
    supervisor socket and public write API; it owns no tables."""

    name = "board"
    verbose_name = _("指挥看板")
