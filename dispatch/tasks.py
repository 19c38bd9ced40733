"""Celery edges: small, idempotent, ids in, a service call, JSON only."""

from __future__ import annotations

from celery import shared_task

from . import notify, services


@shared_task(acks_late=True, ignore_result=True)
def fire_deadline(deadline_id: int) -> str:
    return services.deadline_fire(deadline_id=deadline_id)


@shared_task(acks_late=True, ignore_result=True)
def sweep_deadlines() -> int:
    return services.deadlines_sweep()


# --- Member app: the escalating notification chain (dispatch/notify.py) ---------------


@shared_task(acks_late=True, ignore_result=True)
def notify_chain_step(wave_id: int, step: int) -> int:
    return notify.chain_step(wave_id=wave_id, step=step)


@shared_task(acks_late=True, ignore_result=True)
def notify_chain_sweep() -> int:
    return notify.chain_sweep()
