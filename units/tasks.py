"""Celery tasks for the roster: thin, idempotent, ids in, a service call out."""

from __future__ import annotations

from celery import shared_task

from . import importing


@shared_task(bind=True, acks_late=True, ignore_result=True)
def roster_import_run(self, job_id: int) -> None:
    """Check (and unless a dry run, write) one import job. A redelivered task
    finds the job already claimed and does nothing. Live progress (Redis) only
    in a worker: an eager run has no poller and must not touch a Redis."""
    importing.import_job_run(job_id=job_id, live_progress=not self.request.is_eager)
