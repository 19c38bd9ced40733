from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import pytest
from django.db import OperationalError
from django.utils import timezone

import dispatch.ranking as ranking
from dispatch.ranking import (
    Candidate,
    UnitIndex,
    kit_mask,
    rank_units,
    reset_unit_index,
    unit_index,
)
from tests.factories import EquipmentFactory, MemberFactory, UnitFactory
from units import geo
from units.models import STANDARD_KIT, Equipment, EquipmentKind, Member, RosterChange, Unit
from units.services import member_set_duty, roster_changed

DETOUR = 1.3
SPEED = 1.4
KIT_BY_KIND = {
    "knife": ["steel_fork", "shield", "stab_vest"],
    "fight": ["shield", "baton"],
    "fire": ["extinguisher"],
    "medical": ["first_aid"],
    "cardiac": ["aed"],
}
KNIFE_KIT = ("steel_fork", "shield", "stab_vest")
ALL_KINDS = tuple(EquipmentKind.values)

# The incident point for the database tests; 0.001 degree of latitude is ~111 m.
LAT, LON = 23.1300, 113.3200


@pytest.fixture(autouse=True)
def _ranking_settings(settings):
    settings.RANKING_KIT_BY_KIND = KIT_BY_KIND
    settings.RANKING_KIT_PENALTY_S = 60.0
    settings.RANKING_WALK_SPEED_MPS = SPEED
    settings.RANKING_DETOUR_FACTOR = DETOUR


@pytest.fixture(autouse=True)
def _fresh_unit_index():
    # The process-wide index outlives each test's rolled-back database.
    reset_unit_index()
    yield
    reset_unit_index()


# --- brute-force oracle ---------------------------------------------------------


@dataclass(frozen=True)
class OracleUnit:
    id: int
    lat: float
    lon: float
    active: bool
    post_min: int
    on_duty: int
    kit: int


def oracle(
    units: dict[int, OracleUnit],
    *,
    lat: float,
    lon: float,
    limit: int,
    radius_m: float | None,
    incident_kind: str | None,
    exclude: set[int],
    require_available: bool,
    penalty: float,
) -> list[Candidate]:
    need = kit_mask(KIT_BY_KIND.get(incident_kind, ())) if incident_kind else 0
    scored = []
    for u in units.values():
        if not u.active or u.id in exclude:
            continue
        if require_available and u.on_duty - u.post_min < 1:
            continue
        d = geo.haversine_m(lat, lon, u.lat, u.lon)
        if radius_m is not None and d > radius_m:
            continue
        fit = u.kit & need == need
        eta = d * DETOUR / SPEED
        candidate = Candidate(
            unit_id=u.id,
            distance_m=d,
            eta_s=math.ceil(eta),
            kit_fit=fit,
            on_duty=u.on_duty,
            available=max(0, u.on_duty - u.post_min),
        )
        scored.append(((eta + (0.0 if fit else penalty), u.id), candidate))
    scored.sort(key=lambda s: s[0])
    return [c for _, c in scored[:limit]]


def assert_same_ranking(got: list[Candidate], want: list[Candidate]) -> None:
    assert [c.unit_id for c in got] == [c.unit_id for c in want]
    for g, w in zip(got, want, strict=True):
        assert g.distance_m == pytest.approx(w.distance_m, rel=1e-9, abs=1e-6)
        assert replace(g, distance_m=0.0) == replace(w, distance_m=0.0)


def random_unit(rng: random.Random, unit_id: int, spots: list[tuple[float, float]]) -> OracleUnit:
    lat, lon = rng.choice(spots)
    return OracleUnit(
        id=unit_id,
        lat=lat,
        lon=lon,
        active=rng.random() < 0.9,
        post_min=rng.choice((0, 1, 1, 2)),
        on_duty=rng.choice((0, 1, 2, 2, 3, 4)),
        kit=kit_mask(k for k in ALL_KINDS if rng.random() < 0.75),
    )


def random_spots(rng: random.Random, count: int) -> list[tuple[float, float]]:
    # Spots over ~11 x 10 km that many units share (exact ties). Not a grid: grid
    # points equidistant from a query are ties only in exact arithmetic.
    return [(rng.uniform(23.08, 23.18), rng.uniform(113.28, 113.38)) for _ in range(count)]


def index_from(units: dict[int, OracleUnit], **kwargs) -> UnitIndex:
    rows = list(units.values())
    return UnitIndex.from_arrays(
        unit_ids=[u.id for u in rows],
        lat=[u.lat for u in rows],
        lon=[u.lon for u in rows],
        is_active=[u.active for u in rows],
        post_min=[u.post_min for u in rows],
        on_duty=[u.on_duty for u in rows],
        kit_bits=[u.kit for u in rows],
        **kwargs,
    )


def apply_to(index: UnitIndex, changed: list[OracleUnit], deleted: list[int]) -> None:
    index.apply_units(
        unit_ids=[u.id for u in changed],
        lat=[u.lat for u in changed],
        lon=[u.lon for u in changed],
        is_active=[u.active for u in changed],
        post_min=[u.post_min for u in changed],
        on_duty=[u.on_duty for u in changed],
        kit_bits=[u.kit for u in changed],
        deleted_ids=deleted,
    )


def random_query(rng: random.Random, units: dict[int, OracleUnit]) -> dict:
    roll = rng.random()
    if roll < 0.15:  # exactly at a unit (distance 0, ties with its neighbours)
        u = rng.choice(list(units.values()))
        lat, lon = u.lat, u.lon
    elif roll < 0.2:  # far outside the city: the search has to widen a lot
        lat, lon = rng.uniform(22.5, 22.7), rng.uniform(112.9, 113.0)
    else:
        lat, lon = rng.uniform(23.07, 23.19), rng.uniform(113.27, 113.39)
    nearest_ids = sorted(units, key=lambda i: geo.haversine_m(lat, lon, units[i].lat, units[i].lon))
    return {
        "lat": lat,
        "lon": lon,
        "limit": rng.choice((1, 2, 3, 5, 10, 10, 20)),
        "radius_m": rng.choice((None, None, rng.uniform(50, 4000))),
        "incident_kind": rng.choice((None, "knife", "knife", "fight", "fire", "cardiac", "theft")),
        "exclude": set(rng.sample(nearest_ids[:10], rng.randrange(4))),
        "require_available": rng.random() < 0.8,
    }


@pytest.mark.database_independent  # an index built in memory, no database
@pytest.mark.parametrize("penalty", [60.0, 600.0])
def test_nearest_matches_a_brute_force_haversine_oracle(settings, penalty):
    settings.RANKING_KIT_PENALTY_S = penalty
    rng = random.Random(20240613 + int(penalty))
    spots = random_spots(rng, 700)
    units = {i: random_unit(rng, i, spots) for i in rng.sample(range(1, 10_000), 1500)}
    index = index_from(units)

    for _ in range(300):
        q = random_query(rng, units)
        assert_same_ranking(index.nearest(**q), oracle(units, penalty=penalty, **q))


@pytest.mark.database_independent  # an index built in memory, no database
def test_nearest_matches_the_oracle_while_units_move_appear_and_disappear():
    rng = random.Random(7)
    spots = random_spots(rng, 500)
    units = {i: random_unit(rng, i, spots) for i in range(1, 1001)}
    index = index_from(units, overlay_max=60)
    first_place = {i: (u.lat, u.lon) for i, u in units.items()}
    moved: list[int] = []
    next_id = 1001
    overlay_seen = 0

    for _ in range(40):
        changed: dict[int, OracleUnit] = {}
        deleted: list[int] = []
        for _ in range(rng.randrange(1, 12)):
            roll = rng.random()
            uid = rng.choice(list(units))
            if uid in deleted:
                continue
            if roll < 0.35:  # state only: written in place
                changed[uid] = replace(
                    units[uid], on_duty=rng.randrange(5), active=rng.random() < 0.9
                )
            elif roll < 0.45 and moved:  # back to where the first tree had it
                uid = rng.choice(moved)
                if uid in units and uid not in deleted:  # (moved ids may be gone)
                    lat, lon = first_place[uid]
                    changed[uid] = replace(units[uid], lat=lat, lon=lon, on_duty=rng.randrange(5))
            elif roll < 0.7:  # moved: goes to the overlay
                lat, lon = rng.choice(spots)
                changed[uid] = replace(units[uid], lat=lat, lon=lon)
                moved.append(uid)
            elif roll < 0.85:
                changed[next_id] = random_unit(rng, next_id, spots)
                next_id += 1
            elif uid not in changed:
                deleted.append(uid)
        apply_to(index, list(changed.values()), deleted)
        units.update(changed)
        for uid in deleted:
            units.pop(uid, None)
        overlay_seen = max(overlay_seen, index.overlay_size)

        assert index.size == len(units)
        for _ in range(15):
            q = random_query(rng, units)
            assert_same_ranking(index.nearest(**q), oracle(units, penalty=60.0, **q))

    assert overlay_seen > 0
    assert index.rebuilds > 1


SCAN_LIST_MAX = ranking._SCAN_LIST_MAX


def _answers_on_each_path(
    index: UnitIndex, q: dict, monkeypatch, paths: list[str] | None = None
) -> list[list[Candidate]]:
    """``paths`` gets, per search step of the usual mix, the path that scored it."""
    answers = []
    score = ranking._Scan.score

    def spied(scan, grid, ranges, snap, worst):
        if paths is not None:
            count = sum(b - a for a, b in ranges)
            paths.append("array" if count > ranking._SCAN_LIST_MAX else "per-slot")
        return score(scan, grid, ranges, snap, worst)

    # Every slot scored one by one, the usual mix, every slot scored by numpy.
    for list_max in (10**9, SCAN_LIST_MAX, 0):
        monkeypatch.setattr(ranking, "_SCAN_LIST_MAX", list_max)
        if list_max == SCAN_LIST_MAX:
            monkeypatch.setattr(ranking._Scan, "score", spied)
        answers.append(index.nearest(**q))
        monkeypatch.setattr(ranking._Scan, "score", score)
    return answers


@pytest.mark.database_independent  # an index built in memory, no database
def test_per_slot_and_array_scoring_give_bit_identical_answers(monkeypatch):
    # The per-slot scoring (a few dozen slots, plain Python) must give exactly
    # the answers of the array path (numpy, as nearest was first written):
    # same units, same order, same floats, over a base, a small and a large
    # overlay, masked slots, wide searches, radius, exclude and kit penalties.
    rng = random.Random(14)
    spots = random_spots(rng, 400)
    units = {i: random_unit(rng, i, spots) for i in range(1, 1201)}
    index = index_from(units, overlay_max=400)
    overlay_sizes = set()
    paths: list[str] = []
    for _ in range(12):
        changed = []
        for uid in rng.sample(list(units), 25):
            if rng.random() < 0.6:
                lat, lon = rng.choice(spots)  # moved: overlay, tree entry masked
                changed.append(replace(units[uid], lat=lat, lon=lon))
            else:
                changed.append(replace(units[uid], on_duty=rng.randrange(5)))
        apply_to(index, changed, [])
        units.update({u.id: u for u in changed})
        overlay_sizes.add(index.overlay_size)
        for i in range(25):
            q = random_query(rng, units)
            if i % 8 == 0:
                q["limit"] = 400  # a wide search: steps of more units than the per-slot limit
            each_path, mixed, array = _answers_on_each_path(index, q, monkeypatch, paths)
            assert each_path == mixed == array
            assert [c.distance_m.hex() for c in each_path] == [c.distance_m.hex() for c in array]
            assert_same_ranking(mixed, oracle(units, penalty=60.0, **q))

    # The overlay was searched at many sizes, and the usual mix took both paths
    # (a wide search, a point far outside the city: above the per-slot limit).
    assert len(overlay_sizes) > 5
    assert {"per-slot", "array"} <= set(paths)


def test_exclude_takes_any_iterable_of_unit_ids():
    index = UnitIndex.from_arrays(
        unit_ids=[1, 2, 3],
        lat=[LAT + 0.001, LAT + 0.002, LAT + 0.003],
        lon=[LON] * 3,
        is_active=[True] * 3,
        post_min=[0] * 3,
        on_duty=[1] * 3,
        kit_bits=[0] * 3,
    )

    for exclude in ([1, 1], (1,), {1}, iter([1]), [np.int64(1)], {1: None}.keys()):
        got = index.nearest(lat=LAT, lon=LON, limit=3, exclude=exclude)
        assert [c.unit_id for c in got] == [2, 3]


def test_a_fitting_unit_beyond_many_nearer_unfitting_ones_ranks_first():
    # Forty units without a steel fork 10 m away; one fully kitted 50 m away is
    # (50 - 10) * 1.3 / 1.4 = 37 s further: under the 60 s penalty, so it wins,
    # although the first tree probe (k = 10) never reaches it.
    crowd = 40
    index = UnitIndex.from_arrays(
        unit_ids=list(range(1, crowd + 2)),
        lat=[LAT + 10 / 111_195] * crowd + [LAT + 50 / 111_195],
        lon=[LON] * (crowd + 1),
        is_active=[True] * (crowd + 1),
        post_min=[1] * (crowd + 1),
        on_duty=[2] * (crowd + 1),
        kit_bits=[kit_mask(["shield", "stab_vest"])] * crowd + [kit_mask(KNIFE_KIT)],
    )

    ranked = index.nearest(lat=LAT, lon=LON, limit=1, incident_kind="knife")

    assert [c.unit_id for c in ranked] == [crowd + 1]
    assert ranked[0].kit_fit


def test_a_changed_kit_penalty_applies_to_the_next_call(settings):
    # Ranking caches its settings; a change (a deployment's settings, a test's)
    # must not leave the old penalty in force.
    index = UnitIndex.from_arrays(
        unit_ids=[1, 2],
        lat=[LAT + 10 / 111_195, LAT + 50 / 111_195],
        lon=[LON, LON],
        is_active=[True, True],
        post_min=[1, 1],
        on_duty=[2, 2],
        kit_bits=[kit_mask(["shield"]), kit_mask(KNIFE_KIT)],
    )

    def first() -> int:
        return index.nearest(lat=LAT, lon=LON, limit=1, incident_kind="knife")[0].unit_id

    assert first() == 2  # 37 s further on foot, under the 60 s penalty
    settings.RANKING_KIT_PENALTY_S = 10.0
    assert first() == 1
    settings.RANKING_KIT_BY_KIND = {**KIT_BY_KIND, "knife": ["shield"]}
    assert first() == 1  # both fit now: the nearer one
    settings.RANKING_KIT_BY_KIND = KIT_BY_KIND
    settings.RANKING_WALK_SPEED_MPS = 0.5  # 40 m is now 104 s: still the nearer one
    assert first() == 1
    settings.RANKING_KIT_PENALTY_S = 200.0
    assert first() == 2


def test_units_at_the_same_spot_are_ordered_by_unit_id():
    index = UnitIndex.from_arrays(
        unit_ids=[9, 3, 5],
        lat=[LAT + 0.001] * 3,
        lon=[LON] * 3,
        is_active=[True] * 3,
        post_min=[0] * 3,
        on_duty=[1] * 3,
        kit_bits=[0] * 3,
    )

    assert [c.unit_id for c in index.nearest(lat=LAT, lon=LON, limit=3)] == [3, 5, 9]


@pytest.mark.database_independent  # an index built in memory, no database
def test_readers_in_threads_never_see_a_half_applied_change():
    rng = random.Random(3)
    spots = random_spots(rng, 300)
    units = {i: random_unit(rng, i, spots) for i in range(1, 801)}
    index = index_from(units, overlay_max=30)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for c in index.nearest(lat=23.13, lon=113.33, limit=20, require_available=False):
                    # Each unit's state is written as one element: its fields agree.
                    assert c.available == max(0, c.on_duty - units_post_min[c.unit_id])
        except BaseException as e:  # reported below
            errors.append(e)

    # post_min never changes below, so it is known for every version of a unit.
    units_post_min = {i: u.post_min for i, u in units.items()}
    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for _ in range(150):
            changed = []
            for uid in rng.sample(list(units), 5):
                lat, lon = (
                    rng.choice(spots) if rng.random() < 0.5 else (units[uid].lat, units[uid].lon)
                )
                changed.append(replace(units[uid], lat=lat, lon=lon, on_duty=rng.randrange(5)))
            apply_to(index, changed, [])
            units.update({u.id: u for u in changed})
    finally:
        stop.set()
        for t in readers:
            t.join()

    assert errors == []
    q = {"lat": 23.13, "lon": 113.33, "limit": 20, "radius_m": None, "incident_kind": None}
    want = oracle(units, exclude=set(), require_available=False, penalty=60.0, **q)
    assert_same_ranking(index.nearest(require_available=False, **q), want)


def test_detached_index_refresh_does_not_touch_the_database():
    index = UnitIndex.from_arrays(
        unit_ids=[1],
        lat=[LAT],
        lon=[LON],
        is_active=[True],
        post_min=[0],
        on_duty=[1],
        kit_bits=[0],
    )

    index.refresh()  # no db fixture: any query would fail the test

    assert [c.unit_id for c in index.nearest(lat=LAT, lon=LON, limit=5)] == [1]


def test_bad_coordinates_are_refused():
    index = UnitIndex()

    with pytest.raises(ValueError):
        index.nearest(lat=91, lon=LON, limit=5)
    with pytest.raises(ValueError):
        index.nearest(lat=LAT, lon=LON, limit=5, radius_m=float("nan"))


# --- database-backed: freshness through RosterChange ---------------------------------


def make_unit(
    *,
    north_m: float,
    on_duty: int = 2,
    post_min: int = 1,
    kit: tuple[str, ...] = ALL_KINDS,
) -> Unit:
    unit = UnitFactory(lat=LAT + north_m / 111_195, lon=LON, post_min=post_min)
    for _ in range(on_duty):
        MemberFactory(unit=unit, on_duty=True)
    MemberFactory(unit=unit, on_duty=False)
    for kind in kit:
        EquipmentFactory(unit=unit, kind=kind, quantity=STANDARD_KIT.get(kind, 1))
    return unit


def ranked_ids(**kwargs) -> list[int]:
    kwargs = {"lat": LAT, "lon": LON, "limit": 10, **kwargs}
    return [c.unit_id for c in rank_units(**kwargs)]


@pytest.mark.django_db
def test_a_moved_unit_is_ranked_at_its_new_place_by_the_next_call():
    a = make_unit(north_m=100)
    b = make_unit(north_m=300)
    assert ranked_ids() == [a.pk, b.pk]

    a.lat = LAT + 1000 / 111_195
    a.save()

    ranked = rank_units(lat=LAT, lon=LON, limit=10)
    assert [c.unit_id for c in ranked] == [b.pk, a.pk]
    assert ranked[1].distance_m == pytest.approx(1000, abs=1)


@pytest.mark.django_db
def test_a_deactivated_unit_drops_out_on_the_next_call():
    a = make_unit(north_m=100)
    b = make_unit(north_m=300)
    assert ranked_ids() == [a.pk, b.pk]

    a.is_active = False
    a.save()

    assert ranked_ids() == [b.pk]
    assert ranked_ids(require_available=False) == [b.pk]


@pytest.mark.django_db
def test_a_member_clocking_out_drops_a_unit_that_would_go_below_post_min():
    a = make_unit(north_m=100, on_duty=2, post_min=1)
    b = make_unit(north_m=300)
    first = rank_units(lat=LAT, lon=LON, limit=10)[0]
    assert (first.unit_id, first.on_duty, first.available) == (a.pk, 2, 1)

    member_set_duty(member=a.members.filter(on_duty=True).first(), on_duty=False)

    assert ranked_ids() == [b.pk]
    listed = rank_units(lat=LAT, lon=LON, limit=10, require_available=False)[0]
    assert (listed.unit_id, listed.on_duty, listed.available) == (a.pk, 1, 0)


@pytest.mark.django_db
def test_new_and_deleted_units_show_on_the_next_call():
    a = make_unit(north_m=100)
    assert ranked_ids() == [a.pk]

    b = make_unit(north_m=50)
    assert ranked_ids() == [b.pk, a.pk]

    a.delete()
    assert ranked_ids() == [b.pk]


@pytest.mark.django_db
def test_two_indexes_each_see_a_change_made_after_they_loaded():
    a = make_unit(north_m=100)
    b = make_unit(north_m=300)
    first, second = UnitIndex(), UnitIndex()  # as in two processes
    first.refresh()
    second.refresh()

    Member.objects.filter(unit=a, on_duty=True).first().delete()  # a: 1 on duty, post_min 1
    b.lat = LAT + 30 / 111_195
    b.save()

    for index in (first, second):
        index.refresh()
        assert [c.unit_id for c in index.nearest(lat=LAT, lon=LON, limit=10)] == [b.pk]


@pytest.mark.django_db
def test_a_unit_keeps_post_min_people_on_its_own_post():
    short = make_unit(north_m=100, on_duty=2, post_min=2)
    spare = make_unit(north_m=200, on_duty=3, post_min=2)
    no_post = make_unit(north_m=300, on_duty=1, post_min=0)

    ranked = rank_units(lat=LAT, lon=LON, limit=10)

    assert [(c.unit_id, c.available) for c in ranked] == [(spare.pk, 1), (no_post.pk, 1)]
    assert short.pk in ranked_ids(require_available=False)


@pytest.mark.django_db
def test_a_unit_with_the_kit_for_the_incident_outranks_a_slightly_nearer_one_without():
    bare = make_unit(north_m=100, kit=("radio", "shield"))
    kitted = make_unit(north_m=150, kit=KNIFE_KIT)
    far_kitted = make_unit(north_m=400, kit=KNIFE_KIT)  # 300 m * 1.3 / 1.4 = 279 s further

    ranked = rank_units(lat=LAT, lon=LON, limit=10, incident_kind="knife")

    assert [(c.unit_id, c.kit_fit) for c in ranked] == [
        (kitted.pk, True),
        (bare.pk, False),
        (far_kitted.pk, True),
    ]
    assert ranked_ids() == [bare.pk, kitted.pk, far_kitted.pk]  # no kind: no penalty
    assert ranked_ids(incident_kind="theft") == [bare.pk, kitted.pk, far_kitted.pk]


@pytest.mark.django_db
def test_broken_expired_or_short_kit_does_not_fit_but_one_aed_does():
    today = timezone.localdate()
    broken = make_unit(north_m=100, kit=("steel_fork", "stab_vest", "aed"))
    EquipmentFactory(unit=broken, kind="shield", quantity=2, condition=Equipment.Condition.BROKEN)
    expired = make_unit(north_m=200, kit=("steel_fork", "shield"))
    EquipmentFactory(unit=expired, kind="stab_vest", quantity=2, expires=today - timedelta(days=1))
    short = make_unit(north_m=300, kit=("steel_fork", "stab_vest"))
    EquipmentFactory(unit=short, kind="shield", quantity=1)  # the standard kit says 2
    fine = make_unit(north_m=400, kit=KNIFE_KIT)
    EquipmentFactory(unit=fine, kind="aed", quantity=1, expires=today)

    knife = {
        c.unit_id: c.kit_fit for c in rank_units(lat=LAT, lon=LON, limit=10, incident_kind="knife")
    }
    cardiac = {
        c.unit_id: c.kit_fit
        for c in rank_units(lat=LAT, lon=LON, limit=10, incident_kind="cardiac")
    }

    assert knife == {broken.pk: False, expired.pk: False, short.pk: False, fine.pk: True}
    assert cardiac == {broken.pk: True, expired.pk: False, short.pk: False, fine.pk: True}


@pytest.mark.django_db
def test_kit_repaired_later_fits_on_the_next_call():
    unit = make_unit(north_m=100, kit=("steel_fork", "stab_vest"))
    shield = EquipmentFactory(unit=unit, kind="shield", quantity=2, condition="broken")
    assert not rank_units(lat=LAT, lon=LON, limit=1, incident_kind="knife")[0].kit_fit

    shield.condition = Equipment.Condition.GOOD
    shield.save()

    assert rank_units(lat=LAT, lon=LON, limit=1, incident_kind="knife")[0].kit_fit


@pytest.mark.django_db
def test_radius_filters_on_the_true_distance():
    a = make_unit(north_m=100)
    make_unit(north_m=300)

    assert ranked_ids(radius_m=200) == [a.pk]
    assert ranked_ids(radius_m=50) == []


@pytest.mark.django_db
def test_excluded_units_are_skipped():
    a = make_unit(north_m=100)
    b = make_unit(north_m=200)
    c = make_unit(north_m=300)

    assert ranked_ids(exclude={a.pk, c.pk}) == [b.pk]


@pytest.mark.django_db
def test_candidates_carry_distance_eta_and_counts():
    a = make_unit(north_m=500, on_duty=3, post_min=1)

    (c,) = rank_units(lat=LAT, lon=LON, limit=5, incident_kind="fire")

    assert c.unit_id == a.pk
    assert c.distance_m == pytest.approx(geo.haversine_m(LAT, LON, a.lat, a.lon), rel=1e-12)
    assert c.eta_s == math.ceil(c.distance_m * DETOUR / SPEED)
    assert (c.kit_fit, c.on_duty, c.available) == (True, 3, 2)


@pytest.mark.django_db
def test_ranking_an_unchanged_roster_costs_one_query(django_assert_num_queries):
    make_unit(north_m=100)
    make_unit(north_m=200)
    rank_units(lat=LAT, lon=LON, limit=10)

    with django_assert_num_queries(1):
        ranked = rank_units(lat=LAT, lon=LON, limit=10, incident_kind="knife")
    assert len(ranked) == 2


@pytest.mark.django_db
def test_changed_units_come_back_in_the_same_single_query(django_assert_num_queries):
    units = [make_unit(north_m=100 * i) for i in range(1, 6)]
    rank_units(lat=LAT, lon=LON, limit=10)
    for unit in units:
        unit.post_min = 0
        unit.save()

    with django_assert_num_queries(1):
        ranked = rank_units(lat=LAT, lon=LON, limit=10)
    assert [c.available for c in ranked] == [2] * 5


@pytest.mark.django_db
def test_a_roster_change_without_a_unit_reloads_everything():
    make_unit(north_m=100)
    make_unit(north_m=200)
    assert len(ranked_ids()) == 2

    Unit.objects.update(is_active=False)  # bulk: no signals
    assert len(ranked_ids()) == 2
    roster_changed(unit_ids=None)

    assert ranked_ids() == []


@pytest.mark.django_db
def test_a_change_committed_out_of_id_order_is_still_applied():
    a = make_unit(north_m=100)
    assert ranked_ids() == [a.pk]
    last = RosterChange.objects.order_by("-id").values_list("id", flat=True).first()

    # Another writer's change took id last + 1 but commits after id last + 2.
    RosterChange.objects.create(id=last + 2, unit_id=a.pk)
    unit_index().refresh()
    Unit.objects.filter(pk=a.pk).update(is_active=False)
    RosterChange.objects.create(id=last + 1, unit_id=a.pk)

    assert ranked_ids() == []


@pytest.mark.django_db
def test_unit_index_is_built_once_per_process():
    make_unit(north_m=100)

    assert unit_index() is unit_index()


@pytest.mark.django_db
def test_kit_expiring_today_stops_fitting_tomorrow_without_a_roster_change(monkeypatch):
    today = timezone.localdate()
    unit = make_unit(north_m=100, kit=("steel_fork", "shield"))
    EquipmentFactory(unit=unit, kind="stab_vest", quantity=2, expires=today)
    assert rank_units(lat=LAT, lon=LON, limit=1, incident_kind="knife")[0].kit_fit

    monkeypatch.setattr(timezone, "localdate", lambda *a, **kw: today + timedelta(days=1))

    assert not rank_units(lat=LAT, lon=LON, limit=1, incident_kind="knife")[0].kit_fit


@pytest.mark.django_db
def test_a_failed_reload_leaves_the_change_for_the_next_refresh(monkeypatch):
    a = make_unit(north_m=100)
    assert ranked_ids() == [a.pk]
    a.is_active = False
    a.save()

    def broken(*args, **kwargs):
        raise ConnectionError("database went away")

    monkeypatch.setattr("dispatch.ranking._changes_fetch", broken)
    with pytest.raises(ConnectionError):
        rank_units(lat=LAT, lon=LON, limit=10)
    monkeypatch.undo()

    assert ranked_ids() == []


@pytest.mark.django_db
def test_a_member_moved_to_another_unit_changes_both_units_counts():
    a = make_unit(north_m=100, on_duty=2, post_min=1)
    b = make_unit(north_m=300, on_duty=1, post_min=1)
    assert ranked_ids() == [a.pk]

    member = a.members.filter(on_duty=True).first()
    member.unit = b
    member.save()

    assert ranked_ids() == [b.pk]


@pytest.mark.django_db
def test_kit_moved_to_another_unit_changes_both_units_fit():
    a = make_unit(north_m=100, kit=KNIFE_KIT)
    b = make_unit(north_m=150, kit=("steel_fork", "stab_vest"))
    knife = {"lat": LAT, "lon": LON, "limit": 10, "incident_kind": "knife"}
    assert [c.kit_fit for c in rank_units(**knife)] == [True, False]

    shield = Equipment.objects.get(unit=a, kind="shield")
    shield.unit = b
    shield.save()

    assert {c.unit_id: c.kit_fit for c in rank_units(**knife)} == {a.pk: False, b.pk: True}


# --- property: the incrementally kept index equals a full rebuild --------------------


def _churn_step(rng: random.Random) -> None:
    """One random roster write of the kinds a day brings: duty, members and units
    (de)activated, moved, added and deleted, kit broken, repaired, moved."""
    units = list(Unit.objects.order_by("pk"))
    members = list(Member.objects.order_by("pk"))
    kit = list(Equipment.objects.order_by("pk"))
    op = rng.choice(
        ["duty"] * 6
        + ["member_active", "member_move", "member_new", "member_delete"]
        + ["unit_active", "unit_post_min", "unit_move", "unit_new", "unit_delete"]
        + ["kit_condition", "kit_quantity", "kit_expiry", "kit_move", "kit_delete", "kit_new"]
    )
    if op == "duty" and members:
        member = rng.choice(members)
        if member.on_duty or (member.is_active and member.unit.is_active):
            member_set_duty(member=member, on_duty=not member.on_duty)
    elif op == "member_active" and members:
        member = rng.choice(members)
        member.is_active = not member.is_active
        member.save()
    elif op == "member_move" and members and units:
        member = rng.choice(members)
        member.unit = rng.choice(units)
        member.save()
    elif op == "member_new" and units:
        MemberFactory(unit=rng.choice(units), on_duty=rng.random() < 0.7)
    elif op == "member_delete" and members:
        rng.choice(members).delete()
    elif op == "unit_active" and units:
        unit = rng.choice(units)
        unit.is_active = not unit.is_active
        unit.save()
    elif op == "unit_post_min" and units:
        unit = rng.choice(units)
        unit.post_min = rng.randint(0, 3)
        unit.save()
    elif op == "unit_move" and units:
        unit = rng.choice(units)
        unit.lat = LAT + rng.uniform(-0.02, 0.02)
        unit.save()
    elif op == "unit_new":
        make_unit(north_m=rng.uniform(-2000, 2000), on_duty=rng.randint(0, 3))
    elif op == "unit_delete" and len(units) > 3:
        rng.choice(units).delete()
    elif op == "kit_condition" and kit:
        item = rng.choice(kit)
        item.condition = rng.choice(Equipment.Condition.values)
        item.save()
    elif op == "kit_quantity" and kit:
        item = rng.choice(kit)
        item.quantity = rng.randint(1, 3)
        item.save()
    elif op == "kit_expiry" and kit:
        item = rng.choice(kit)
        item.expires = rng.choice([None, timezone.localdate() - timedelta(days=1)])
        item.save()
    elif op == "kit_move" and kit and units:
        item = rng.choice(kit)
        target = rng.choice(units)
        if not Equipment.objects.filter(unit=target, kind=item.kind).exists():
            item.unit = target
            item.save()
    elif op == "kit_delete" and kit:
        rng.choice(kit).delete()
    elif op == "kit_new" and units:
        unit = rng.choice(units)
        kind = rng.choice(ALL_KINDS)
        if not Equipment.objects.filter(unit=unit, kind=kind).exists():
            EquipmentFactory(unit=unit, kind=kind, quantity=STANDARD_KIT.get(kind, 1))


@pytest.mark.django_db
@pytest.mark.parametrize(("seed", "overlay_max"), [(1, 2000), (2, 4), (3, 0)])
def test_the_incrementally_kept_index_equals_a_full_rebuild_after_random_churn(
    settings, seed, overlay_max
):
    settings.RANKING_OVERLAY_MAX = overlay_max  # 4 and 0: tree rebuilds along the way
    rng = random.Random(seed)
    for _ in range(25):
        make_unit(north_m=rng.uniform(-2000, 2000), on_duty=rng.randint(0, 3))
    kept = unit_index()
    loads = kept.rebuilds

    for step in range(200):
        _churn_step(rng)
        if rng.random() < 0.5:
            continue  # several writes between two calls, as between two incidents
        kept.refresh()
        if step % 10 == 0 or step > 190:
            fresh = UnitIndex()
            fresh.refresh()
            assert kept.unit_states() == fresh.unit_states(), f"step {step}"
            for kind in (None, "knife", "cardiac"):
                query = {"lat": LAT, "lon": LON, "limit": 8, "incident_kind": kind}
                for available in (True, False):
                    assert kept.nearest(**query, require_available=available) == fresh.nearest(
                        **query, require_available=available
                    )
    kept.refresh()
    fresh = UnitIndex()
    fresh.refresh()
    assert kept.unit_states() == fresh.unit_states()
    if overlay_max == 2000:
        assert kept.rebuilds == loads  # every change was applied in memory, no reload


# --- the refresher: roster changes applied off the ranking path -----------------------


def _wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "the refresher did not apply the change"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_with_the_refresher_on_ranking_asks_the_database_nothing(
    settings, django_assert_num_queries
):
    settings.RANKING_REFRESH_S = 0.05
    unit = make_unit(north_m=100, on_duty=2)
    assert ranked_ids() == [unit.pk]

    # Another process clocks a third member in: its rows and log entry are
    # committed there, this process's transactions saw nothing of it.
    member = Member.objects.filter(unit=unit, on_duty=False).get()
    Member.objects.filter(pk=member.pk).update(on_duty=True, duty_since=timezone.now())
    RosterChange.objects.create(unit_id=unit.pk)
    _wait_for(lambda: unit_index().unit_states()[unit.pk][4] == 3)

    with django_assert_num_queries(0):
        (c,) = rank_units(lat=LAT, lon=LON, limit=10)
    assert c.on_duty == 3


@pytest.mark.django_db(transaction=True)
def test_a_change_made_in_this_process_is_in_the_very_next_answer(settings):
    settings.RANKING_REFRESH_S = 30  # the refresher would come far too late
    unit = make_unit(north_m=100, on_duty=1, post_min=1)  # not ready: 1 on duty, post needs 1
    assert ranked_ids() == []

    member = Member.objects.filter(unit=unit, on_duty=False).get()
    member_set_duty(member=member, on_duty=True)

    assert ranked_ids() == [unit.pk]


@pytest.mark.django_db(transaction=True)
def test_a_stalled_refresher_leaves_ranking_to_refresh_itself(settings, monkeypatch):
    settings.RANKING_REFRESH_S = 0.05
    unit = make_unit(north_m=100, on_duty=1, post_min=1)
    assert ranked_ids() == []
    # The refresher's refreshes fail from now on (its database away).
    failing = threading.Event()
    real_refresh = ranking.UnitIndex.refresh

    def refresh(self):
        if threading.current_thread().name == "ranking-refresher" and failing.is_set():
            raise OperationalError("database away")
        return real_refresh(self)

    monkeypatch.setattr(ranking.UnitIndex, "refresh", refresh)
    failing.set()

    Member.objects.filter(unit=unit, on_duty=False).update(on_duty=True)
    RosterChange.objects.create(unit_id=unit.pk)  # another process's change
    time.sleep(1.1)  # longer than the index may be left unrefreshed

    assert ranked_ids() == [unit.pk]


@pytest.mark.django_db(transaction=True)
def test_a_refresher_that_ended_is_started_again_once_the_index_goes_stale(settings):
    settings.RANKING_REFRESH_S = 0.05
    unit = make_unit(north_m=100, on_duty=1, post_min=1)
    assert ranked_ids() == []
    _, thread, stop = ranking._refresher
    stop.set()  # as if the thread had died
    thread.join(5)
    assert not thread.is_alive()

    Member.objects.filter(unit=unit, on_duty=False).update(on_duty=True)
    RosterChange.objects.create(unit_id=unit.pk)  # another process's change
    time.sleep(1.1)  # longer than the index may be left unrefreshed

    assert ranked_ids() == [unit.pk]  # refreshed on its own call
    _, again, _ = ranking._refresher
    assert again is not thread and again.is_alive()
