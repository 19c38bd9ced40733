"""Celery edges for the review: ids in, one service call, JSON only."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True, expires=600)
def coverage_refresh() -> int:
    """Recompute the coverage-gap grid (beat, every REVIEW_GAP_REFRESH_S)."""
    return services.coverage_compute().pk


@shared_task(acks_late=True, ignore_result=True)
def drill_send_batch(drill_id: int, after_unit_id: int) -> int:
    """Alert the next batch of a drill's units; enqueues the batch after it."""
    return services.drill_send_batch(drill_id=drill_id, after_unit_id=after_unit_id)


@shared_task(acks_late=True, ignore_result=True, expires=300)
def facts_refresh() -> int:
    """Bring the review's incident and dispatch facts up to date (beat)."""
    return services.facts_sync()


@shared_task(acks_late=True, ignore_result=True, expires=600)
def index_refresh() -> int:
    """Store the readiness index of the city and each district (beat)."""
    return services.index_snapshots_refresh()
