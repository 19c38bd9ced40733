"""The plan the check pass makes, and the write pass: the plan written in one
transaction, with history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Model
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from ..models import Unit
from ..services import roster_bulk_deactivated, roster_changed
from .columns import EQUIPMENT, KINDS, MEMBER, MODELS, UNIT, WRITE_BATCH, ProgressCallback


@dataclass
class Planned:
    """One row that will be written: a new object, or an existing one with changes."""

    row: int
    obj: Model
    changes: dict[str, tuple[Any, Any]]
    unit_code: str = ""  # members and kit: the unit, resolved to an id at write time


@dataclass
class Plan:
    creates: dict[str, list[Planned]] = field(default_factory=lambda: {k: [] for k in KINDS})
    updates: dict[str, list[Planned]] = field(default_factory=lambda: {k: [] for k in KINDS})


def plan_write(plan: Plan, *, user, reason: str, progress: ProgressCallback) -> None:
    """Write every planned row, with history, in one transaction."""
    total = sum(len(plan.creates[k]) + len(plan.updates[k]) for k in KINDS)
    done = 0
    progress("write", 0, total)
    history = {"default_user": user, "default_change_reason": reason[:100]}
    with transaction.atomic():
        unit_ids = (
            {
                code: pk
                for code, pk in Unit.objects.values_list("code", "pk").iterator(chunk_size=5000)
            }
            if any(plan.creates[k] or plan.updates[k] for k in (MEMBER, EQUIPMENT))
            else {}
        )
        for kind in KINDS:
            model = MODELS[kind]
            creates = [p.obj for p in plan.creates[kind]]
            for planned in plan.creates[kind] + plan.updates[kind]:
                if planned.unit_code:
                    planned.obj.unit_id = unit_ids[planned.unit_code]
            for start in range(0, len(creates), WRITE_BATCH):
                batch = creates[start : start + WRITE_BATCH]
                bulk_create_with_history(batch, model, batch_size=WRITE_BATCH, **history)
                done += len(batch)
                progress("write", done, total)
            if kind == UNIT:
                unit_ids.update({u.code: u.pk for u in creates})
            updates = plan.updates[kind]
            fields = sorted({_attname(model, f) for p in updates for f in p.changes})
            if kind == UNIT and updates:
                fields.append("updated_at")
            for start in range(0, len(updates), WRITE_BATCH):
                batch = [p.obj for p in updates[start : start + WRITE_BATCH]]
                bulk_update_with_history(
                    batch, model, fields, batch_size=WRITE_BATCH // 4, **history
                )
                done += len(batch)
                progress("write", done, total)
        roster_changed(unit_ids=None)
        roster_bulk_deactivated.send(
            sender=Unit,
            member_ids=_deactivated(plan.updates[MEMBER]),
            unit_ids=_deactivated(plan.updates[UNIT]),
        )


def _deactivated(updates: list[Planned]) -> list[int]:
    return [p.obj.pk for p in updates if p.changes.get("is_active", (None, True))[1] is False]


def _attname(model: type[Model], name: str) -> str:
    return model._meta.get_field(name).attname
