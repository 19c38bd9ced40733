"""``demo_city_seed``: a plan written with ``bulk_create`` in one transaction,
plus the demo staff logins and the admin's API token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from tqdm import tqdm

from ..models import Equipment, Member, Region, StaffProfile, Unit
from ..services import district_shapes_reset, roster_changed
from .figures import (
    CITY_CODE,
    DB_BATCH,
    DEFAULT_SEED,
    DEFAULT_UNITS,
    DEMO_PASSWORD,
    KINDS,
    STAFF_LOGINS,
    TIANHE,
    TIANHE_STATION_STREET,
    WRITE_BATCH,
    YUEXIU,
    YUEXIU_STREET,
    SeedError,
)
from .plan import EQUIPMENT_KINDS, CityPlan, demo_city_plan, seed_options_validate

# --- writing ---------------------------------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    seeded: bool  # False: the database already had units and nothing was written
    regions: int
    units: int
    members: int
    on_duty: int
    equipment: int
    near_expiry: int
    seconds: float
    message: str = ""


def _roster_references() -> list[str]:
    """Relations outside the roster that currently point at units, members or equipment."""
    roster = (Unit, Member, Equipment)
    found = []
    for model in roster:
        for rel in model._meta.related_objects:
            if rel.related_model in roster:
                continue
            qs = rel.related_model._base_manager.filter(**{f"{rel.field.name}__isnull": False})
            if qs.exists():
                found.append(f"{rel.related_model._meta.label}.{rel.field.name}")
    return found


def roster_wipe() -> None:
    """Delete every unit, member and equipment row, fast.

    Raw DELETEs rather than ``QuerySet.delete()``: the roster models have
    post_delete receivers, so the ORM would load every row and log one
    RosterChange per row; the caller logs one "reload everything" instead.
    Refuses while incidents reference the roster, since their history would go.
    """
    refs = _roster_references()
    if refs:
        raise SeedError(
            "--reset would delete units that incidents refer to "
            f"({', '.join(sorted(refs))}); flush the database instead"
        )
    with connection.cursor() as cursor:
        for model in (Equipment, Member, Unit):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - table names from models


def _regions_write(plan: CityPlan) -> dict[str, Region]:
    """Create the regions that are missing; bring existing ones (same code) in line."""
    existing = {r.code: r for r in Region.objects.filter(code__in=[s.code for s in plan.regions])}
    by_code: dict[str, Region] = {}
    for level in (Region.Level.CITY, Region.Level.DISTRICT, Region.Level.STREET):
        specs = [s for s in plan.regions if s.level == level]
        new, changed = [], []
        for s in specs:
            region = existing.get(s.code) or Region(code=s.code)
            region.name, region.name_en, region.level = s.name, s.name_en, s.level
            region.street_type, region.lat, region.lon = s.street_type, s.lat, s.lon
            region.boundary = s.boundary
            region.parent = by_code[s.parent_code] if s.parent_code else None
            # Region.save() computes the path; bulk_create does not call it.
            region.path = (region.parent.path if region.parent else "") + s.code + "/"
            (changed if region.pk else new).append(region)
            by_code[s.code] = region
        Region.objects.bulk_create(new, batch_size=DB_BATCH)
        Region.objects.bulk_update(
            changed,
            ["name", "name_en", "level", "street_type", "lat", "lon", "boundary", "parent", "path"],
            batch_size=500,
        )
    return by_code


def _staff_region(role: str, regions: dict[str, Region]) -> Region:
    def first_street_of(district_code: str) -> Region:
        prefix = regions[district_code].path
        return next(
            r
            for r in regions.values()
            if r.level == Region.Level.STREET and r.path.startswith(prefix)
        )

    if role == StaffProfile.Role.DISTRICT_ADMIN:
        return regions[TIANHE]
    if role == StaffProfile.Role.STREET_ADMIN:
        return regions.get(YUEXIU_STREET) or first_street_of(YUEXIU)
    if role == StaffProfile.Role.POLICE_STATION:
        return regions.get(TIANHE_STATION_STREET) or first_street_of(TIANHE)
    return regions[CITY_CODE]


def demo_logins_write(*, regions: dict[str, Region], password: str, reset: bool) -> None:
    """The demo staff accounts, their roles and the admin's API token.

    Existing accounts keep their password unless ``reset``; the role and
    region are always put right.
    """
    user_model = get_user_model()
    # One hash for all five: each PBKDF2 hash costs about half a second here,
    # and they share the one documented demo password anyway.
    hashed = make_password(password)
    for username, role in STAFF_LOGINS:
        user, created = user_model.objects.get_or_create(
            username=username,
            defaults={"is_staff": True, "is_superuser": role == StaffProfile.Role.CITY_ADMIN},
        )
        if created or reset:
            user.password = hashed
            user.is_staff = True
            user.is_active = True
            user.save()
        StaffProfile.objects.update_or_create(
            user=user, defaults={"role": role, "region": _staff_region(role, regions)}
        )
        if username == "admin":
            Token.objects.get_or_create(user=user)


def _batches(n: int, size: int = WRITE_BATCH) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _units_write(plan: CityPlan, regions: dict[str, Region], bar: tqdm) -> np.ndarray:
    ids = np.empty(plan.units, dtype=np.int64)
    street_ids = {code: r.pk for code, r in regions.items()}
    for rows in _batches(plan.units):
        batch = [
            Unit(
                code=plan.unit_code[i],
                name=plan.unit_name[i],
                kind=KINDS[plan.unit_kind[i]],
                address=plan.unit_address[i],
                lat=float(plan.unit_lat[i]),
                lon=float(plan.unit_lon[i]),
                region_id=street_ids[plan.unit_street[i]],
                post_min=1,
            )
            for i in rows
        ]
        Unit.objects.bulk_create(batch, batch_size=DB_BATCH)
        ids[rows.start : rows.stop] = [u.pk for u in batch]
        bar.update(len(batch))
    return ids


def _members_write(plan: CityPlan, unit_ids: np.ndarray, now: datetime, bar: tqdm) -> None:
    leader, member = Member.Role.LEADER.value, Member.Role.MEMBER.value
    unit_of = unit_ids[plan.member_unit].tolist()
    on_duty = plan.member_on_duty.tolist()
    since = plan.member_duty_seconds.tolist()
    is_leader = plan.member_leader.tolist()
    trained = plan.member_trained.tolist()
    phones = plan.member_phone.tolist()
    for rows in _batches(plan.members):
        batch = [
            Member(
                name=plan.member_name(i),
                phone=str(phones[i]),
                unit_id=unit_of[i],
                role=leader if is_leader[i] else member,
                on_duty=on_duty[i],
                duty_since=now - timedelta(seconds=since[i]) if on_duty[i] else None,
                trained=trained[i],
            )
            for i in rows
        ]
        Member.objects.bulk_create(batch, batch_size=DB_BATCH)
        bar.update(len(batch))


def _equipment_write(plan: CityPlan, unit_ids: np.ndarray, today: date, bar: tqdm) -> None:
    good = Equipment.Condition.GOOD.value
    kinds = [str(k) for k in EQUIPMENT_KINDS]
    unit_of = unit_ids[plan.equipment_unit].tolist()
    kind = plan.equipment_kind.tolist()
    quantity = plan.equipment_quantity.tolist()
    inspected = plan.equipment_inspected_days_ago.tolist()
    expires = plan.equipment_expires_in_days.tolist()
    for rows in _batches(plan.equipment):
        batch = [
            Equipment(
                unit_id=unit_of[i],
                kind=kinds[kind[i]],
                quantity=quantity[i],
                condition=good,
                last_inspected=today - timedelta(days=inspected[i]),
                expires=today + timedelta(days=expires[i]),
            )
            for i in rows
        ]
        Equipment.objects.bulk_create(batch, batch_size=DB_BATCH)
        bar.update(len(batch))


def _counts(*, seeded: bool, seconds: float, message: str = "") -> SeedResult:
    soon = timezone.localdate() + timedelta(days=30)
    return SeedResult(
        seeded=seeded,
        regions=Region.objects.count(),
        units=Unit.objects.count(),
        members=Member.objects.count(),
        on_duty=Member.objects.filter(on_duty=True).count(),
        equipment=Equipment.objects.count(),
        near_expiry=Equipment.objects.filter(expires__lte=soon).count(),
        seconds=seconds,
        message=message,
    )


def demo_city_seed(
    *,
    units: int = DEFAULT_UNITS,
    seed: int = DEFAULT_SEED,
    password: str = DEMO_PASSWORD,
    reset: bool = False,
    geodata_dir: Path | None = None,
    progress: TextIO | None = None,
) -> SeedResult:
    """Seed the demo city in one transaction: all of it or none of it.

    A database that already has units is left alone (``seeded=False``) unless
    ``reset``, which wipes units, members and equipment first; regions and the
    demo logins are updated in place, never duplicated.
    """
    started = time.monotonic()
    seed_options_validate(units=units, seed=seed, password=password)
    if not reset and Unit.objects.exists():
        return _counts(
            seeded=False,
            seconds=time.monotonic() - started,
            message="the database already has units: nothing seeded (--reset wipes and reseeds)",
        )
    plan = demo_city_plan(units=units, seed=seed, geodata_dir=geodata_dir)
    now = timezone.now()
    today = timezone.localdate()
    with (
        tqdm(
            total=plan.units + plan.members + plan.equipment,
            unit="row",
            unit_scale=True,
            file=progress,
            disable=progress is None,
            desc="seed_demo",
        ) as bar,
        transaction.atomic(),
    ):
        if reset:
            roster_wipe()
        regions = _regions_write(plan)
        demo_logins_write(regions=regions, password=password, reset=reset)
        bar.set_description("units")
        unit_ids = _units_write(plan, regions, bar)
        bar.set_description("members")
        _members_write(plan, unit_ids, now, bar)
        bar.set_description("equipment")
        _equipment_write(plan, unit_ids, today, bar)
        roster_changed(unit_ids=None)
    # After commit: the district outlines changed under any cached copy.
    district_shapes_reset()
    return _counts(seeded=True, seconds=time.monotonic() - started)
