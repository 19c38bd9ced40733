"""Celery tasks of the member app: the steps of a member's "test my alert"."""

from __future__ import annotations

from celery import shared_task

from . import alert_test


@shared_task(acks_late=True, ignore_result=True)
def alert_test_step(test_id: int, step: int) -> bool:
    return alert_test.alert_test_step(test_id=test_id, step=step)
