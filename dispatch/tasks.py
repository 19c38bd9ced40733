"""Celery edges: small, idempotent, ids in, a service call, JSON only."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

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


@shared_task(acks_late=True, ignore_result=True)
def notify_chain_advance(delivery_id: int, from_channel: str) -> int:
    """A channel failed for one member (a refused send, a "failed" receipt, an
    unanswered call): the next channel now, not at the next step's timer."""
    return notify.chain_advance(delivery_id=delivery_id, from_channel=from_channel)


@shared_task(acks_late=True, ignore_result=True, expires=300)
def sms_answer_send(phone: str, text: str) -> bool:
    """Text the answer to an SMS reply or key press back to the number."""
    return notify.send_to_phone(channel="sms", phone=phone, text=text).ok


@worker_ready.connect(dispatch_uid="dispatch.sweep_on_worker_ready")
def sweep_on_worker_ready(sender=None, **kwargs) -> None:
    """A worker that (re)starts fires what fell due while no worker ran, at once.

    A crashed worker takes its reserved ETA messages with it (unacked in Redis
    for the visibility timeout), and beat may be down too: the sweeps, run once
    through the queue (not in the prefork parent, which must not open database
    connections its children inherit), find every overdue deadline and chain step.
    Both are idempotent, so a restart beside a running beat changes nothing.
    """
    sweep_deadlines.delay()
    notify_chain_sweep.delay()
