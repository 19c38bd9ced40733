from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("emergency")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect(dispatch_uid="config.celery.connections_release_before")
@task_postrun.connect(dispatch_uid="config.celery.connections_release_after")
def connections_release(sender=None, **kwargs) -> None:
    """At each task's start and end, what Django does at a request's: a
    connection goes back to its pool (PostgreSQL) or stays open up to
    ``CONN_MAX_AGE`` (SQLite), and one that broke is dropped.

    In place of Celery's Django fixup, which closes every connection there and,
    in a prefork worker, Django's whole connection pool (celery/celery#10554):
    each task then opened new PostgreSQL connections. ``CELERY_DB_REUSE_MAX``
    (config/settings.py) turns the fixup's closing off; it still drops what a
    child process inherits at fork. Not for eager tasks (tests): they run
    inside the caller's transaction.
    """
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
