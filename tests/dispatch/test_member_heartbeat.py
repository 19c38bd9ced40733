"""The member sockets' heartbeat checks every socket of a process at once
(``selectors.members_heartbeat``): its queries do not grow with the sockets, and
it still tells each socket apart (its member, its login, its own session)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from asgiref.sync import async_to_sync
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dispatch import consumers, selectors, services
from dispatch.models import Incident
from tests.dispatch.factories import LoginMemberFactory
from tests.factories import UnitFactory
from units.models import Member

pytestmark = pytest.mark.django_db


def _socket(unit) -> tuple[int, str]:
    """A member of ``unit`` on duty, signed in: (member id, session key)."""
    member = LoginMemberFactory(unit=unit, on_duty=True)
    session = SessionStore()
    session["_auth_user_id"] = str(member.user_id)
    session.create()
    return member.pk, session.session_key


def _sockets(n: int) -> list[tuple[int, str]]:
    unit = UnitFactory()
    return [_socket(unit) for _ in range(n)]


def _queries(sockets) -> int:
    with CaptureQueriesContext(connection) as captured:
        selectors.members_heartbeat(sockets=sockets, unacked_sent_before=timezone.now())
    return len(captured)


def test_the_heartbeat_of_many_sockets_takes_as_many_queries_as_one():
    one = _queries(_sockets(1))
    many = _queries(_sockets(60))
    assert many == one <= 3


def test_the_heartbeat_tells_apart_each_socket_of_one_member():
    (member_id, key), (other_id, other_key) = _sockets(2)
    # The member signed out on one phone (its session gone); the other member's
    # login was deactivated.
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1)
    )
    second_key = SessionStore()
    second_key["_auth_user_id"] = "x"
    second_key.create()
    user = Member.objects.get(pk=other_id).user
    user.is_active = False
    user.save()

    allowed, live_keys, frames = selectors.members_heartbeat(
        sockets=[(member_id, key), (member_id, second_key.session_key), (other_id, other_key)],
        unacked_sent_before=timezone.now(),
    )
    assert allowed == {member_id}
    assert key not in live_keys and second_key.session_key in live_keys
    assert frames == {}


def _unacked(n_units: int, per_unit: int) -> list[tuple[int, str]]:
    """Sockets of ``per_unit`` members in each of ``n_units`` units, every one
    holding an alert it has not acked (a city-wide wave whose acks are late)."""
    units = [UnitFactory() for _ in range(n_units)]
    out = [_socket(unit) for unit in units for _ in range(per_unit)]
    incident = services.incident_create(
        kind=Incident.Kind.CROWD, lat=23.13, lon=113.32, source=Incident.Source.CAD
    ).incident
    services.wave_send(incident=incident, unit_ids=[u.pk for u in units], reason="board")
    return out


def _redelivered(sockets) -> tuple[int, dict[int, list[dict]]]:
    with CaptureQueriesContext(connection) as captured:
        _allowed, _keys, frames = selectors.members_heartbeat(
            sockets=sockets, unacked_sent_before=timezone.now() + dt.timedelta(seconds=1)
        )
    return len(captured), frames


def test_redelivering_many_unacked_alerts_takes_as_many_queries_as_one():
    one, _frames = _redelivered(_unacked(1, 1))
    sockets = _unacked(6, 10)
    many, frames = _redelivered(sockets)

    assert many == one
    # Each member gets its own unit's alert again, and only that.
    assert sorted(frames) == sorted(member_id for member_id, _key in sockets)
    for member_id, sent in frames.items():
        member = Member.objects.get(pk=member_id)
        assert [f["type"] for f in sent] == ["incident.alert"]
        assert sent[0]["dispatch"]["unit_id"] == member.unit_id


class _Socket:
    """What the heartbeat reads of a member socket, and its beats counted."""

    closing = False
    session_key = None

    def __init__(self, member_id: int, beats: list[int]) -> None:
        self.member = Member(pk=member_id)
        self.last_heard = time.monotonic()
        self._beats = beats

    async def _beat(self, *, allowed: bool, frames: list[dict]) -> None:
        self._beats.append(self.member.pk)

    def alerts_written_since(self, since: float) -> set[int]:
        return set()


@pytest.mark.django_db(transaction=True)
def test_a_beat_of_thousands_of_sockets_lets_the_event_loop_serve_others_meanwhile():
    """Pinging 5,000 sockets is 5,000 sends without a pause: an alert's frames
    and the intake's replies waited behind it (bench/city.py, wave 1 p99)."""
    beats: list[int] = []
    seen_mid_beat: list[int] = []

    async def scenario():
        heartbeat = consumers._MemberHeartbeat()
        for i in range(1, 2001):
            heartbeat.add(_Socket(i, beats))
        heartbeat.task.cancel()  # this test beats them all itself

        async def other_work():
            while len(beats) == 0:
                await asyncio.sleep(0)
            seen_mid_beat.append(len(beats))

        probe = asyncio.ensure_future(other_work())
        await heartbeat.beat()
        await probe

    async_to_sync(scenario)()
    assert len(beats) == 2000
    assert seen_mid_beat and seen_mid_beat[0] < 2000


def _run_heartbeat(sockets: int, beats: list[int], *, until, after_beat) -> None:
    """A heartbeat of ``sockets`` sockets on its own task until ``until()``;
    ``after_beat(new)`` is awaited after each beat with the socket ids it beat."""

    async def scenario():
        heartbeat = consumers._MemberHeartbeat()
        original = heartbeat.beat

        async def watched(**kwargs):
            before = len(beats)
            await original(**kwargs)
            await after_beat(beats[before:])

        heartbeat.beat = watched
        for i in range(1, sockets + 1):
            heartbeat.add(_Socket(i, beats))
        # Each slice makes a database call: on a loaded machine a round may
        # take longer than the period, so wait for the rounds themselves.
        for _ in range(400):
            if until():
                break
            await asyncio.sleep(0.025)
        heartbeat.task.cancel()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_a_slice_every_slice_period_however_long_the_period(settings):
    """Every socket is pinged (and checked) once per WS_HEARTBEAT_S, but a slice
    at a time. All at once, 4,000 pings and their 4,000 pongs held an alert's
    frames back (wave 1 p99 over a second). A tenth of 5,000 sockets every 2 s
    was still 500 pings, 500 pongs and a database call for 500 in one burst
    (bench/city.py at 10,000 sockets: wave 1 p99 60-120 ms with the heartbeat,
    32 ms without). A slice comes every WS_HEARTBEAT_SLICE_S instead."""
    settings.WS_HEARTBEAT_S = 1.0
    settings.WS_HEARTBEAT_SLICE_S = 0.05
    beats: list[int] = []
    per_beat: list[int] = []

    async def count(new: list[int]) -> None:
        per_beat.append(len(new))

    _run_heartbeat(400, beats, until=lambda: len(beats) >= 400, after_beat=count)
    # Every socket once in a round, before any socket's next beat.
    assert sorted(beats[:400]) == list(range(1, 401))
    assert max(per_beat) <= 20  # 400 sockets in 20 slices of 0.05 s


@pytest.mark.django_db(transaction=True)
def test_a_slow_database_call_does_not_space_a_sockets_beats_further_apart(settings):
    """Each socket is pinged once per WS_HEARTBEAT_S even when every beat's
    database call takes a while (daphne's database thread busy with a city-wide
    alert's receipts). Slept after each beat, a round took WS_HEARTBEAT_S plus
    every slice's call: past two heartbeats the page takes its socket for dead
    and reconnects."""
    settings.WS_HEARTBEAT_S = 0.4
    settings.WS_HEARTBEAT_SLICE_S = 0.05
    beats: list[int] = []
    first_socket_at: list[float] = []

    async def slow(new: list[int]) -> None:
        if 1 in new:
            first_socket_at.append(time.monotonic())
        await asyncio.sleep(0.045)  # the database call, slow (a slice is 0.05 s)

    _run_heartbeat(8, beats, until=lambda: len(first_socket_at) >= 4, after_beat=slow)
    assert len(first_socket_at) >= 4
    # Three rounds: 1.2 s at a fixed rate; 2.28 s if each beat's call delayed the
    # rest. The bound between leaves a loaded machine half a second of stalls.
    assert first_socket_at[3] - first_socket_at[0] < 1.7


@pytest.mark.django_db(transaction=True)
def test_a_socket_added_twice_is_beaten_once_a_round_and_forgotten_when_it_leaves(settings):
    settings.WS_HEARTBEAT_S = 0.2
    settings.WS_HEARTBEAT_SLICE_S = 0.05
    beats: list[int] = []

    async def scenario():
        heartbeat = consumers._MemberHeartbeat()
        twice = _Socket(1, beats)
        heartbeat.add(twice)
        heartbeat.add(twice)
        heartbeat.add(_Socket(2, beats))
        heartbeat.task.cancel()  # the test beats every slice itself, a round each
        for _round in range(2):
            for slot in range(len(heartbeat.slices)):
                await heartbeat.beat(slot=slot)
            heartbeat.discard(twice)

    async_to_sync(scenario)()
    assert sorted(beats) == [1, 2, 2]
