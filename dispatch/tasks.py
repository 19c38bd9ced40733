"""Celery edges: small, idempotent, ids in, a service call, JSON only."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True)
def fire_deadline(deadline_id: int) -> str:
    return services.deadline_fire(deadline_id=deadline_id)


@shared_task(acks_late=True, ignore_result=True)
def sweep_deadlines() -> int:
    return services.deadlines_sweep()
