from django.apps import AppConfig


class ComposeConfig(AppConfig):
    """The composing layer: settings, URLs, ASGI and Celery wiring, and the command
    that starts the whole system. It may import every app; no app imports it."""

    name = "config"
    verbose_name = "config"
