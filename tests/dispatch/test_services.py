"""Dispatch services: intake and wave 1, member actions and the four firsts,
stand-down, the event timeline, escalation deadlines."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import sqlite3
import threading
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dispatch import payloads, services
from dispatch.events import SUPERVISORS_GROUP, incident_group, unit_group
from dispatch.models import (
    Deadline,
    Delivery,
    Dispatch,
    Incident,
    IncidentEvent,
    NotificationAttempt,
    Wave,
)
from dispatch.services import ActionRefused, members
from tests.dispatch.conftest import MID, SPOT
from tests.dispatch.factories import LoginMemberFactory, give_full_kit
from tests.factories import MemberFactory, StaffFactory, UnitFactory
from units import geo
from units.models import Member, StaffProfile, Unit

pytestmark = pytest.mark.django_db


def raise_incident(**overrides) -> services.IntakeResult:
    args = {
        "kind": Incident.Kind.KNIFE,
        "lat": SPOT[0],
        "lon": SPOT[1],
        "source": Incident.Source.CAD,
    }
    args.update(overrides)
    return services.incident_create(**args)


def act(incident: Incident, member, action: str) -> Dispatch:
    return services.dispatch_act(incident_id=incident.pk, member=member, action=action)


def make_due(incident: Incident, tier: str) -> Deadline:
    deadline = Deadline.objects.get(incident=incident, tier=tier)
    deadline.due_at = timezone.now() - dt.timedelta(seconds=1)
    deadline.save(update_fields=["due_at"])
    return deadline


def event_types(incident: Incident) -> list[str]:
    return list(incident.events.order_by("seq").values_list("type", flat=True))


# --- intake and wave 1 ----------------------------------------------------------------


def test_intake_alerts_the_near_unit_and_not_the_far_one(
    near_responder, far_responder, layer_spy, django_capture_on_commit_callbacks
):
    near_unit, far_unit = near_responder.unit, far_responder.unit
    with django_capture_on_commit_callbacks(execute=True):
        result = raise_incident()

    assert result.created
    assert (result.wave.number, result.wave.radius_m) == (1, 1500)
    assert [c.unit_id for c in result.candidates] == [near_unit.pk]
    candidate = result.candidates[0]
    expected = geo.haversine_m(*SPOT, near_unit.lat, near_unit.lon)
    assert candidate.distance_m == pytest.approx(expected, abs=0.01)
    assert candidate.eta_s > 0

    dispatch = Dispatch.objects.get(incident=result.incident)
    assert (dispatch.unit_id, dispatch.rank, dispatch.status) == (near_unit.pk, 1, "alerted")
    assert dispatch.distance_m == round(expected)
    alerts = layer_spy.to(unit_group(near_unit.pk))
    assert [a["type"] for a in alerts] == ["incident.alert"]
    assert alerts[0]["dispatch"]["distance_m"] == dispatch.distance_m
    assert alerts[0]["dispatch"]["eta_s"] == dispatch.eta_s
    assert alerts[0]["incident"]["id"] == result.incident.pk
    assert layer_spy.to(unit_group(far_unit.pk)) == []
    assert "incident.opened" in layer_spy.types(SUPERVISORS_GROUP)


def test_intake_records_created_and_alerted_events(near_responder):
    result = raise_incident()
    assert event_types(result.incident) == ["created", "alerted"]
    alerted = result.incident.events.get(type="alerted")
    assert alerted.unit_id == near_responder.unit_id
    assert alerted.data["wave"] == 1


def test_intake_creates_one_deadline_per_policy_tier(near_responder):
    result = raise_incident()
    incident = result.incident
    tiers = {t["name"]: t["after_s"] for t in incident.policy["tiers"]}
    deadlines = {d.tier: d for d in incident.deadlines.all()}
    assert set(deadlines) == set(tiers)
    for name, after_s in tiers.items():
        assert deadlines[name].due_at == incident.received_at + dt.timedelta(seconds=after_s)
        assert deadlines[name].fired_at is None


def test_repeated_intake_with_the_same_external_id_returns_the_same_incident(
    near_responder, layer_spy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = raise_incident(external_id="110-0001")
    layer_spy.clear()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = raise_incident(external_id="110-0001")

    assert again.incident.pk == first.incident.pk
    assert not again.created
    assert again.wave is None and again.candidates == []
    assert callbacks == []
    assert layer_spy.sent == []
    assert Incident.objects.count() == 1
    assert Dispatch.objects.count() == 1


def test_intake_keeps_a_given_discovery_time_beside_the_intake_time(near_responder):
    called_at = timezone.now() - dt.timedelta(seconds=40)
    incident = raise_incident(discovered_at=called_at).incident
    incident.refresh_from_db()
    assert incident.discovered_at == called_at
    assert incident.received_at > called_at


def test_the_same_external_id_with_another_place_is_refused_and_sends_nothing(
    near_responder, layer_spy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        raise_incident(external_id="110-0001")
    layer_spy.clear()
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(services.IntakeRefused) as exc,
    ):
        raise_incident(external_id="110-0001", lat=MID[0], lon=MID[1])

    assert exc.value.code == "external_id_conflict"
    assert callbacks == [] and layer_spy.sent == []
    assert Incident.objects.get().lat == SPOT[0]


def test_intake_clamps_a_discovery_time_in_the_future_to_the_receipt_time(near_responder):
    ahead = timezone.now() + dt.timedelta(minutes=5)
    incident = raise_incident(discovered_at=ahead).incident
    incident.refresh_from_db()
    assert incident.discovered_at <= incident.received_at < ahead
    created = incident.events.get(type=IncidentEvent.Type.CREATED)
    assert created.data["clock_skew_s"] == pytest.approx(300, abs=2)
    assert Dispatch.objects.filter(incident=incident).exists()


def test_intake_refuses_a_naive_discovery_time(near_responder):
    with pytest.raises(ValidationError) as exc:
        raise_incident(discovered_at=dt.datetime(2024, 5, 1, 12, 0))  # noqa: DTZ001
    assert "discovered_at" in exc.value.message_dict
    assert not Incident.objects.exists()


def test_intake_refuses_a_point_outside_the_service_area(service_area, near_responder):
    with pytest.raises(ValidationError) as exc:
        raise_incident(lat=22.50, lon=113.90)
    assert set(exc.value.message_dict) >= {"lat"}
    assert not Incident.objects.exists()
    assert not IncidentEvent.objects.exists()


def test_intake_inside_the_service_area_records_the_street(service_area, near_responder):
    incident = raise_incident().incident
    assert incident.region.code == "440106001"


def test_intake_with_no_unit_in_range_records_no_units(
    far_responder, layer_spy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = raise_incident()
    assert result.candidates == []
    assert result.wave.number == 1
    assert not Dispatch.objects.exists()
    assert event_types(result.incident) == ["created", "no_units"]
    assert "incident.no_units" in layer_spy.types(SUPERVISORS_GROUP)


# --- ranking as used by intake ----------------------------------------------------------


def test_a_unit_whose_only_on_duty_member_is_its_post_min_is_not_alerted(
    near_member, neighbour_responder
):
    assert near_member.unit.post_min == 1
    result = raise_incident()
    alerted = set(Dispatch.objects.values_list("unit_id", flat=True))
    assert alerted == {neighbour_responder.unit_id}
    assert near_member.unit_id not in {c.unit_id for c in result.candidates}


def test_off_duty_and_inactive_members_get_no_delivery_rows(near_responder):
    unit = near_responder.unit
    MemberFactory(unit=unit, on_duty=False)
    MemberFactory(unit=unit, on_duty=True, is_active=False)
    raise_incident()
    on_duty = set(unit.members.filter(on_duty=True, is_active=True).values_list("pk", flat=True))
    assert len(on_duty) == 2
    assert set(Delivery.objects.values_list("member_id", flat=True)) == on_duty


def test_wave_one_prefers_units_whose_kit_fits_the_incident(near_responder):
    # 222 m away with the knife kit beats 200 m away without it (a 60 s penalty).
    kitted = UnitFactory(lat=SPOT[0] + 0.002, lon=SPOT[1])
    LoginMemberFactory.create_batch(2, unit=kitted)
    give_full_kit(kitted)
    result = raise_incident(kind=Incident.Kind.KNIFE)
    assert [c.unit_id for c in result.candidates] == [kitted.pk, near_responder.unit_id]
    assert [c.kit_fit for c in result.candidates] == [True, False]
    ranked = Dispatch.objects.order_by("rank").values_list("unit_id", "rank")
    assert list(ranked) == [(kitted.pk, 1), (near_responder.unit_id, 2)]


# --- member actions: the four firsts ------------------------------------------------------


@pytest.fixture
def incident(near_responder, neighbour_responder) -> Incident:
    """An open incident (severity 3: three accepts before stand-down) with two units alerted."""
    return raise_incident(severity=Incident.Severity.HIGH).incident


def test_accept_sets_responded_at(incident, near_responder):
    dispatch = act(incident, near_responder, "accept")
    incident.refresh_from_db()
    assert incident.responded_at is not None
    assert dispatch.status == Dispatch.Status.ACCEPTED
    assert dispatch.accepted_by == near_responder
    assert dispatch.accepted_at == incident.responded_at
    assert incident.controlled_at is None and incident.handled_at is None


def test_second_accept_does_not_move_responded_at(incident, near_responder, neighbour_responder):
    act(incident, near_responder, "accept")
    incident.refresh_from_db()
    first = incident.responded_at
    dispatch = act(incident, neighbour_responder, "accept")
    incident.refresh_from_db()
    assert incident.responded_at == first
    assert dispatch.status == Dispatch.Status.ACCEPTED
    assert dispatch.accepted_at > first
    assert event_types(incident).count("accepted") == 2


def test_on_site_sets_controlled_at_once(incident, near_responder, neighbour_responder):
    act(incident, near_responder, "accept")
    act(incident, neighbour_responder, "accept")
    act(incident, near_responder, "on_site")
    incident.refresh_from_db()
    first = incident.controlled_at
    assert first is not None
    act(incident, neighbour_responder, "on_site")
    incident.refresh_from_db()
    assert incident.controlled_at == first


def test_handled_sets_handled_at_and_closes_the_incident(
    incident, near_responder, neighbour_responder, layer_spy, django_capture_on_commit_callbacks
):
    act(incident, near_responder, "accept")
    act(incident, near_responder, "on_site")
    with django_capture_on_commit_callbacks(execute=True):
        dispatch = act(incident, near_responder, "handled")
    incident.refresh_from_db()
    assert incident.handled_at is not None
    assert incident.status == Incident.Status.CLOSED
    assert dispatch.status == Dispatch.Status.HANDLED
    assert event_types(incident)[-3:] == ["handled", "closed", "stood_down"]
    # The neighbour, alerted but no longer needed, is released.
    other = Dispatch.objects.get(incident=incident, unit=neighbour_responder.unit)
    assert other.status == Dispatch.Status.STOOD_DOWN
    for group in (
        unit_group(near_responder.unit_id),
        unit_group(neighbour_responder.unit_id),
        incident_group(incident.pk),
        SUPERVISORS_GROUP,
    ):
        assert "incident.closed" in layer_spy.types(group), group
    closed = layer_spy.to(incident_group(incident.pk))[-2]
    assert closed["type"] == "incident.closed"
    assert closed["status"] == "closed"
    assert closed["handled_at"] == timezone.localtime(incident.handled_at).isoformat()


def test_the_four_firsts_are_in_order(incident, near_responder):
    for action in ("accept", "on_site", "handled"):
        act(incident, near_responder, action)
    incident.refresh_from_db()
    assert (
        incident.discovered_at
        <= incident.responded_at
        <= incident.controlled_at
        <= incident.handled_at
    )


@pytest.mark.parametrize(
    ("done", "action"),
    [([], "on_site"), ([], "handled"), (["accept"], "handled"), (["accept"], "accept")],
)
def test_an_action_out_of_order_is_refused_and_changes_nothing(
    incident, near_responder, done, action
):
    for step in done:
        act(incident, near_responder, step)
    incident.refresh_from_db()
    dispatch = Dispatch.objects.get(incident=incident, unit=near_responder.unit)
    before = (
        incident.responded_at,
        incident.controlled_at,
        incident.handled_at,
        incident.status,
        incident.last_seq,
        dispatch.status,
    )
    with pytest.raises(ActionRefused) as exc:
        act(incident, near_responder, action)
    assert exc.value.code == "out_of_order"
    incident.refresh_from_db()
    dispatch.refresh_from_db()
    after = (
        incident.responded_at,
        incident.controlled_at,
        incident.handled_at,
        incident.status,
        incident.last_seq,
        dispatch.status,
    )
    assert after == before
    assert incident.events.count() == incident.last_seq


def test_an_action_on_a_closed_incident_is_refused(incident, near_responder, neighbour_responder):
    for action in ("accept", "on_site", "handled"):
        act(incident, near_responder, action)
    incident.refresh_from_db()
    seq = incident.last_seq
    for member, action in ((neighbour_responder, "accept"), (near_responder, "handled")):
        with pytest.raises(ActionRefused) as exc:
            act(incident, member, action)
        assert exc.value.code == "closed"
    incident.refresh_from_db()
    assert incident.last_seq == seq


def test_a_member_whose_unit_was_not_alerted_is_refused(incident, far_responder):
    with pytest.raises(ActionRefused) as exc:
        act(incident, far_responder, "accept")
    assert exc.value.code == "not_alerted"
    incident.refresh_from_db()
    assert incident.responded_at is None
    assert not Dispatch.objects.filter(unit=far_responder.unit).exists()


def test_an_unknown_action_is_refused(incident, near_responder):
    with pytest.raises(ActionRefused) as exc:
        act(incident, near_responder, "teleport")
    assert exc.value.code == "unknown_action"


def test_an_inactive_member_is_refused(incident, near_responder):
    near_responder.is_active = False
    near_responder.save()
    with pytest.raises(ActionRefused) as exc:
        act(incident, near_responder, "accept")
    assert exc.value.code == "inactive"


def test_a_member_deactivated_after_being_loaded_is_refused(incident, near_responder):
    """A socket keeps its Member from connect time; the action re-reads it."""
    Member.objects.filter(pk=near_responder.pk).update(is_active=False)
    assert near_responder.is_active  # the stale object
    with pytest.raises(ActionRefused) as exc:
        act(incident, near_responder, "accept")
    assert exc.value.code == "inactive"
    incident.refresh_from_db()
    assert incident.responded_at is None


def test_a_member_may_accept_after_declining(incident, near_responder):
    act(incident, near_responder, "decline")
    dispatch = act(incident, near_responder, "accept")
    assert dispatch.status == Dispatch.Status.ACCEPTED
    assert event_types(incident)[-2:] == ["declined", "accepted"]


def test_the_first_time_claim_is_a_conditional_update(incident):
    """Two accepts racing: only the first conditional update sets responded_at."""
    t1 = timezone.now()
    t2 = t1 + dt.timedelta(seconds=1)
    assert members._first_time_set(incident=incident, action="accept", now=t1) == "responded_at"
    assert members._first_time_set(incident=incident, action="accept", now=t2) is None
    incident.refresh_from_db()
    assert incident.responded_at == t1


def _accept_at_once(incident: Incident, members: list) -> list[BaseException]:
    """Each member accepts from their own thread and connection, released together."""
    barrier = threading.Barrier(len(members))
    errors: list[BaseException] = []

    def accept(member):
        try:
            barrier.wait(timeout=5)
            act(incident, member, "accept")
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return errors


def _in_own_thread(fn):
    """``fn()`` on a fresh connection (another thread), as another request would run it."""
    out: list = []

    def run():
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            out.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


@contextlib.contextmanager
def _racing_database(tmp_path):
    """New connections (other threads) open a database where writers really race.

    PostgreSQL: the test database itself. SQLite: the in-memory test database
    would serialise threads on its shared-cache table lock, so it is copied to a
    file that new connections open with the production settings (WAL, BEGIN
    IMMEDIATE, the busy timeout): the same locks a deployed system races on.
    """
    if connection.vendor != "sqlite":
        yield
        return
    path = tmp_path / "race.sqlite3"
    connection.ensure_connection()
    with contextlib.closing(sqlite3.connect(path)) as copy:
        connection.connection.backup(copy)
    settings_dict = connections.settings[connection.alias]  # what new connections read
    in_memory = settings_dict["NAME"]
    settings_dict["NAME"] = str(path)
    try:
        yield
    finally:
        settings_dict["NAME"] = in_memory


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("severity", [Incident.Severity.LOW, Incident.Severity.HIGH])
def test_concurrent_accepts_by_two_units_set_responded_at_exactly_once(
    near_responder, neighbour_responder, severity, tmp_path
):
    with _racing_database(tmp_path):
        for round_ in range(5):
            spot = SPOT[0] + 0.0001 * round_
            incident = _in_own_thread(
                lambda spot=spot: raise_incident(severity=severity, lat=spot).incident
            )
            errors = _accept_at_once(incident, [near_responder, neighbour_responder])
            if severity == Incident.Severity.LOW:
                # One is enough: the other was stood down, before or after its accept.
                assert all(isinstance(e, ActionRefused) for e in errors), errors
                assert len(errors) <= 1
            else:
                assert errors == []

            def outcome(incident_id=incident.pk):
                incident = Incident.objects.get(pk=incident_id)
                accepted = list(
                    Dispatch.objects.filter(incident=incident, accepted_at__isnull=False)
                )
                seqs = list(incident.events.order_by("seq").values_list("seq", flat=True))
                events = incident.events.filter(type="accepted").count()
                return incident, accepted, seqs, events

            incident, accepted, seqs, accepted_events = _in_own_thread(outcome)
            assert len(accepted) + len(errors) == 2  # every accept landed or was refused
            assert incident.responded_at == min(d.accepted_at for d in accepted)
            assert accepted_events == len(accepted)
            assert seqs == list(range(1, len(seqs) + 1))


# --- stand-down ---------------------------------------------------------------------------


def test_first_accept_stands_down_the_others_when_one_is_enough(
    near_responder, neighbour_responder, layer_spy, django_capture_on_commit_callbacks
):
    incident = raise_incident(severity=Incident.Severity.LOW).incident
    layer_spy.clear()
    with django_capture_on_commit_callbacks(execute=True):
        act(incident, near_responder, "accept")

    other = Dispatch.objects.get(incident=incident, unit=neighbour_responder.unit)
    assert other.status == Dispatch.Status.STOOD_DOWN
    stood = incident.events.get(type="stood_down")
    assert stood.unit_id == neighbour_responder.unit_id
    neighbour_frames = layer_spy.to(unit_group(neighbour_responder.unit_id))
    assert [(f["type"], f["event"]) for f in neighbour_frames] == [
        ("incident.update", "accepted"),
        ("incident.update", "stood_down"),
    ]
    near_events = [f["event"] for f in layer_spy.to(unit_group(near_responder.unit_id))]
    assert near_events == ["accepted"]
    with pytest.raises(ActionRefused) as exc:
        act(incident, neighbour_responder, "accept")
    assert exc.value.code == "out_of_order"


def test_units_are_not_stood_down_before_enough_have_accepted(near_responder, neighbour_responder):
    incident = raise_incident(severity=Incident.Severity.MEDIUM).incident  # two accepts
    act(incident, near_responder, "accept")
    assert not Dispatch.objects.filter(status=Dispatch.Status.STOOD_DOWN).exists()
    act(incident, neighbour_responder, "accept")
    assert not Dispatch.objects.filter(status=Dispatch.Status.STOOD_DOWN).exists()


# --- the event timeline -------------------------------------------------------------------


def test_every_change_appends_events_with_consecutive_seq(
    near_responder, neighbour_responder, mid_responder
):
    incident = raise_incident(severity=Incident.Severity.HIGH).incident
    services.delivery_ack(incident_id=incident.pk, member=near_responder)
    act(incident, neighbour_responder, "decline")
    services.deadline_fire(deadline_id=make_due(incident, "respond_1min").pk)
    act(incident, near_responder, "accept")
    act(incident, near_responder, "on_site")
    act(incident, near_responder, "handled")

    incident.refresh_from_db()
    events = list(incident.events.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, incident.last_seq + 1))
    assert [(e.type, e.unit_id) for e in events] == [
        ("created", None),
        ("alerted", near_responder.unit_id),
        ("alerted", neighbour_responder.unit_id),
        ("delivered", near_responder.unit_id),
        ("declined", neighbour_responder.unit_id),
        ("alerted", mid_responder.unit_id),
        ("escalated", None),
        ("accepted", near_responder.unit_id),
        ("on_site", near_responder.unit_id),
        ("handled", near_responder.unit_id),
        ("closed", near_responder.unit_id),
        ("stood_down", neighbour_responder.unit_id),
        ("stood_down", mid_responder.unit_id),
    ]
    # The ids (the replay cursor) follow the seq order within one incident.
    ids = [e.pk for e in events]
    assert ids == sorted(ids)


@pytest.mark.parametrize("count", [1, 3])
def test_appending_events_claims_their_seqs_with_their_insert(
    near_responder, django_assert_num_queries, count
):
    """The seq claim is the UPDATE that takes the incident's row lock. On
    PostgreSQL it is one statement with the events' insert (a CTE): every event
    the system writes (each receipt, tap and wave) paid a round trip for the
    claim, two in each intake. Elsewhere the claim returns the new last seq,
    then the insert."""
    from dispatch.events import events_record

    incident = raise_incident().incident
    statements = 1 if connection.vendor == "postgresql" else 2
    with django_assert_num_queries(statements):
        events = events_record(
            incident_id=incident.pk,
            events=[
                IncidentEvent(type=IncidentEvent.Type.FLAGGED, data={"i": i}) for i in range(count)
            ],
        )
    incident.refresh_from_db()
    assert [e.seq for e in events] == list(range(3, 3 + count))
    assert all(e.pk is not None and not e._state.adding for e in events)
    assert incident.last_seq == 2 + count
    stored = list(incident.events.order_by("seq").values_list("seq", "pk", "data"))
    assert [seq for seq, _pk, _data in stored] == list(range(1, 3 + count))
    assert stored[2:] == [(e.seq, e.pk, {"i": i}) for i, e in enumerate(events)]


def test_appending_events_to_an_incident_that_is_not_there_is_refused(db):
    from dispatch.events import events_record

    with pytest.raises(Incident.DoesNotExist):
        events_record(
            incident_id=987654, events=[IncidentEvent(type=IncidentEvent.Type.FLAGGED, data={})]
        )
    assert not IncidentEvent.objects.exists()


WRITE = re.compile(r"(INSERT|UPDATE|DELETE|WITH \w+ AS \((INSERT|UPDATE))")


def test_intake_writes_an_incident_and_its_wave_in_one_statement_on_postgresql(
    near_responder, mid_responder
):
    """Between the intake's savepoint and its release: the incident with its
    created event and deadlines, the wave with its dispatches, their
    deliveries and its alerted events with their seqs. Each statement is a
    round trip on the path to the phones; elsewhere (SQLite) nine."""
    with CaptureQueriesContext(connection) as queries:
        result = raise_incident(address="天河路 1 号")
    sql = [q["sql"] for q in queries.captured_queries]
    begin = next(i for i, s in enumerate(sql) if s.startswith("SAVEPOINT"))
    end = next(i for i, s in enumerate(sql) if s.startswith("RELEASE SAVEPOINT"))
    # The ranking's reads (tests refresh it on every call) are not the intake's.
    writes = [s for s in sql[begin + 1 : end] if WRITE.match(s)]
    assert len(writes) == (1 if connection.vendor == "postgresql" else 9), writes

    incident = Incident.objects.get(pk=result.incident.pk)
    alerted = len(result.candidates)
    assert alerted >= 1
    assert incident.last_seq == 1 + alerted
    events = list(incident.events.order_by("seq").values_list("seq", "type"))
    assert events == [(1, "created")] + [(2 + i, "alerted") for i in range(alerted)]
    assert result.incident.received_at == incident.received_at
    deadlines = list(incident.deadlines.order_by("due_at"))
    assert [d.pk for d in deadlines] and all(d.fired_at is None for d in deadlines)
    assert deadlines[0].due_at == incident.received_at + dt.timedelta(
        seconds=incident.policy["tiers"][0]["after_s"]
    )
    assert Delivery.objects.filter(dispatch__incident=incident).count() >= 2


def test_intake_frames_carry_the_stored_ids_and_seqs(
    near_responder, mid_responder, layer_spy, django_capture_on_commit_callbacks
):
    """Every id and seq the one-statement intake gives its objects is the
    stored row's: the frames the phones get name them (acks, replay cursors)."""
    with django_capture_on_commit_callbacks(execute=True):
        result = raise_incident()
    incident = result.incident
    wave = Wave.objects.get(incident=incident)
    assert result.wave.pk == wave.pk and wave.number == 1
    alerts = [p for _g, p in layer_spy.sent if p["type"] == "incident.alert"]
    assert len(alerts) == len(result.candidates) >= 1
    stored = {
        e.unit_id: (e.pk, e.seq)
        for e in IncidentEvent.objects.filter(incident=incident, type="alerted")
    }
    dispatches = {
        d.unit_id: (d.rank, d.wave_id) for d in Dispatch.objects.filter(incident=incident)
    }
    for alert in alerts:
        unit_id = alert["dispatch"]["unit_id"]
        assert (alert["id"], alert["seq"]) == stored[unit_id]
        assert (alert["dispatch"]["rank"], wave.pk) == dispatches[unit_id]
        assert alert["incident"]["id"] == incident.pk
    assert [c.unit_id for c in result.candidates] == [
        u for u, _ in sorted(dispatches.items(), key=lambda kv: kv[1][0])
    ]
    update = layer_spy.to(incident_group(incident.pk))[-1]
    incident.refresh_from_db()
    assert update["seq"] == incident.last_seq == 1 + len(alerts)


@pytest.mark.django_db(transaction=True)
def test_intake_outside_a_transaction_sends_no_begin_or_commit_on_postgresql(
    near_responder, mid_responder
):
    """One statement commits alone: BEGIN and COMMIT were two round trips
    more on the path to the phones. Elsewhere the writes stay in a transaction."""
    with CaptureQueriesContext(connection) as queries:
        result = raise_incident()
    sql = [q["sql"] for q in queries.captured_queries]
    # Up to the incident's insert, and the statement after it (eager tasks run
    # after commit in unit tests, in transactions of their own).
    first = next(i for i, s in enumerate(sql) if WRITE.match(s))
    transactions = {"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"}
    if connection.vendor == "postgresql":
        assert sql[first].startswith('WITH i AS (INSERT INTO "dispatch_incident"'), sql[first]
        assert not any(s.split(" ")[0] in transactions for s in sql[: first + 2]), sql
    else:
        assert sql[first - 1].startswith("BEGIN"), sql
    incident = Incident.objects.get(pk=result.incident.pk)
    assert incident.events.count() == incident.last_seq == 1 + len(result.candidates)
    assert Delivery.objects.filter(dispatch__incident=incident).count() >= 2


@pytest.mark.django_db(transaction=True)
def test_intake_outside_a_transaction_pushes_starts_the_chain_and_the_timer(
    near_responder, layer_spy, caplog
):
    """Committed alone, the intake's after-commit work runs straight after its
    statement: the unit's alert, the supervisors' card, the notify chain's
    first step and the first deadline's timer (Celery runs eagerly here)."""
    caplog.set_level(logging.INFO, logger="celery.app.trace")
    result = raise_incident()
    incident = result.incident
    assert layer_spy.types(unit_group(near_responder.unit_id)) == ["incident.alert"]
    assert layer_spy.types(SUPERVISORS_GROUP) == ["incident.opened"]
    assert NotificationAttempt.objects.filter(
        delivery__dispatch__incident=incident, channel="push"
    ).exists()
    assert "dispatch.tasks.fire_deadline[" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_intakes_commit_does_not_fail_it(near_responder, layer_spy, caplog):
    """Outside a transaction the one statement has committed: a failure while
    announcing it is logged, the intake returns the incident (a 500 would have
    the caller repeat the report, and a repeat sends nothing) and the first
    deadline's timer is still queued. Where the rows are in a transaction
    (SQLite), they roll back with it."""
    caplog.set_level(logging.INFO, logger="celery.app.trace")

    def broken(incident):
        raise RuntimeError("a bug in a payload")

    with mock.patch.object(payloads, "incident_opened", broken):
        if connection.vendor != "postgresql":
            with pytest.raises(RuntimeError):
                raise_incident()
            assert not Incident.objects.exists()
            return
        result = raise_incident()
    assert result.created is True
    stored = Incident.objects.get(pk=result.incident.pk)
    assert stored.last_seq == 1 + len(result.candidates)
    assert layer_spy.types(unit_group(near_responder.unit_id)) == ["incident.alert"]
    assert "its frames failed" in caplog.text
    assert "dispatch.tasks.fire_deadline[" in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("inside_a_transaction", [False, True])
def test_a_racing_post_with_the_same_external_id_gets_the_stored_incident(
    near_responder, mid_responder, inside_a_transaction
):
    """Two POSTs of one report: the other commits between this one's lookup
    and its insert. This one's statement is refused by the unique external
    id, and it answers with the stored incident, alerting nobody twice; a
    caller's transaction around it stays usable."""
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement intake is PostgreSQL's")
    other: list[services.IntakeResult] = []

    def the_other_post():  # on its own thread: its own connection, committed
        try:
            other.append(raise_incident(external_id="CAD-RACE-1"))
        finally:
            connections.close_all()

    def the_other_post_first(execute, sql, params, many, context):
        if not other and sql.startswith('WITH i AS (INSERT INTO "dispatch_incident"'):
            thread = threading.Thread(target=the_other_post)
            thread.start()
            thread.join()
        return execute(sql, params, many, context)

    outer = transaction.atomic() if inside_a_transaction else contextlib.nullcontext()
    with outer, connection.execute_wrapper(the_other_post_first):
        this = raise_incident(external_id="CAD-RACE-1")
        assert Incident.objects.count() == 1  # the caller's transaction still answers
    assert other and other[0].created is True
    assert this.created is False and this.incident.pk == other[0].incident.pk
    assert Dispatch.objects.count() == len(other[0].candidates)


def test_a_wave_is_written_in_one_statement_on_postgresql(
    near_responder, mid_responder, django_assert_num_queries
):
    """The wave, its dispatches, their deliveries, its alerted events and
    their seqs: one statement on PostgreSQL (CTEs), five elsewhere. Each
    dispatch and event gets its id; a delivery goes to each active member on
    duty in the unit but the reporter."""
    from dispatch.services.waves import wave_write

    incident = raise_incident(send_wave1=False, reported_by=near_responder).incident
    near_colleague = MemberFactory(unit=near_responder.unit, on_duty=True)
    MemberFactory(unit=mid_responder.unit, on_duty=False)
    MemberFactory(unit=mid_responder.unit, on_duty=True, is_active=False)
    wave = Wave(incident=incident, number=1, radius_m=0, reason="test")
    units = [(mid_responder.unit_id, 812.4, 95), (near_responder.unit_id, 200.0, 30)]
    statements = 1 if connection.vendor == "postgresql" else 5
    with django_assert_num_queries(statements):
        made = wave_write(incident=incident, wave=wave, units=units, rank0=0)
    assert wave.pk is not None and not wave._state.adding
    stored = {d.pk: (d.unit_id, d.wave_id, d.rank) for d in Dispatch.objects.filter(wave=wave)}
    assert stored == {d.pk: (d.unit_id, wave.pk, d.rank) for d in made}
    assert [d.unit_id for d in made] == [mid_responder.unit_id, near_responder.unit_id]
    expected = {
        (d.pk, member_id)
        for d in made
        for member_id in Member.objects.filter(unit=d.unit_id, on_duty=True, is_active=True)
        .exclude(pk=near_responder.pk)
        .values_list("pk", flat=True)
    }
    assert {(made[0].pk, mid_responder.pk), (made[1].pk, near_colleague.pk)} <= expected
    assert set(Delivery.objects.values_list("dispatch_id", "member_id")) == expected
    alerted = list(
        incident.events.filter(type="alerted").order_by("seq").values_list("seq", "unit_id", "data")
    )
    assert alerted == [
        (2, mid_responder.unit_id, {"wave": 1, "rank": 1, "distance_m": 812, "eta_s": 95}),
        (3, near_responder.unit_id, {"wave": 1, "rank": 2, "distance_m": 200, "eta_s": 30}),
    ]
    incident.refresh_from_db()
    assert incident.last_seq == 3


def _hundred_units_of_eleven(region) -> list:
    """100 units at the test spot with 11 members on duty each, analysed: a
    roster the planner would rather hash than read unit by unit."""
    units = [UnitFactory(region=region, lat=SPOT[0], lon=SPOT[1]) for _ in range(100)]
    Member.objects.bulk_create(
        Member(unit=u, name="队员", phone=f"13{u.pk:05d}{j:04d}", on_duty=True)
        for u in units
        for j in range(11)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Member._meta.db_table}")
    return units


def _assert_reads_members_by_unit_and_is_not_compiled(statement: str) -> None:
    """No sequential scan of the roster, and a cost far below the one that makes
    PostgreSQL compile the statement (JIT: 13 ms a wave). Runs it (ANALYZE)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {statement}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}")
        cost = cursor.fetchone()[0][0]["Plan"]["Total Cost"]
        cursor.execute("SHOW jit_above_cost")
        jit_above = float(cursor.fetchone()[0])
    assert f"Seq Scan on {Member._meta.db_table}" not in plan, plan
    assert cost < jit_above / 10, (cost, jit_above)


def test_a_waves_deliveries_read_the_members_of_its_units_only(
    near_responder, tianhe_street, django_capture_on_commit_callbacks
):
    """PostgreSQL cannot count a CTE's rows: joined plainly, the planner hashed
    the whole roster for a wave of five units (a sequential scan of every
    member; the city has 245,500). The wave's statement reads each unit's
    members by the unit's index, at a cost that is not compiled (JIT: the
    planner's count of dispatches is not multiplied by the wave's)."""
    if connection.vendor != "postgresql":
        pytest.skip("the plan of PostgreSQL's one-statement wave")
    units = _hundred_units_of_eleven(tianhe_street)
    incident = raise_incident(send_wave1=False).incident
    savepoint = transaction.savepoint()
    with CaptureQueriesContext(connection) as queries:
        wave_write = services.waves.wave_write
        wave = Wave(incident=incident, number=1, radius_m=0, reason="test")
        wave_write(
            incident=incident, wave=wave, units=[(u.pk, 100.0, 10) for u in units[:5]], rank0=0
        )
    transaction.savepoint_rollback(savepoint)
    (statement,) = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
    _assert_reads_members_by_unit_and_is_not_compiled(statement)
    assert Delivery.objects.filter(dispatch__wave__incident=incident).count() == 55


def test_the_one_statement_intake_reads_its_units_members_only_and_is_not_compiled(
    near_responder, tianhe_street
):
    """The intake's statement, like the wave's: each unit's members read by
    the unit's index, at a cost that is not compiled."""
    if connection.vendor != "postgresql":
        pytest.skip("the plan of PostgreSQL's one-statement intake")
    _hundred_units_of_eleven(tianhe_street)
    with CaptureQueriesContext(connection) as queries:
        result = raise_incident()
    assert len(result.candidates) == 5
    (statement,) = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('WITH i AS (INSERT INTO "dispatch_incident"')
    ]
    assert f'INSERT INTO "{Delivery._meta.db_table}"' in statement  # the wave's, in it
    _assert_reads_members_by_unit_and_is_not_compiled(statement)


def test_event_seqs_are_counted_per_incident(near_responder):
    a = raise_incident().incident
    b = raise_incident(lat=SPOT[0] + 0.001).incident
    assert list(a.events.values_list("seq", flat=True)) == [1, 2]
    assert list(b.events.values_list("seq", flat=True)) == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_nothing_is_pushed_when_the_transaction_rolls_back(near_responder, layer_spy):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        raise_incident()
        assert Dispatch.objects.exists()
        raise Abort

    assert layer_spy.sent == []
    assert not Incident.objects.exists()
    assert not IncidentEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_pushes_happen_only_after_commit(near_responder, layer_spy):
    with transaction.atomic():
        raise_incident()
        assert layer_spy.sent == []
    assert "incident.alert" in layer_spy.types(unit_group(near_responder.unit_id))


# --- escalation -------------------------------------------------------------------------


@pytest.fixture
def unanswered(near_responder, mid_responder, far_responder) -> Incident:
    return raise_incident().incident


def test_a_deadline_before_it_is_due_does_nothing(unanswered):
    deadline = unanswered.deadlines.get(tier="respond_1min")
    assert services.deadline_fire(deadline_id=deadline.pk) == "not_due_or_fired"
    deadline.refresh_from_db()
    assert deadline.fired_at is None
    assert unanswered.waves.count() == 1


def test_an_overdue_response_deadline_sends_a_wider_wave_once(
    unanswered, responders, layer_spy, django_capture_on_commit_callbacks
):
    deadline = make_due(unanswered, "respond_1min")
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.deadline_fire(deadline_id=deadline.pk)

    assert outcome == "escalated"
    wave = Wave.objects.get(incident=unanswered, number=2)
    assert wave.radius_m == 3000 > Wave.objects.get(incident=unanswered, number=1).radius_m
    assert wave.reason == "respond_1min"
    wave2_units = set(wave.dispatches.values_list("unit_id", flat=True))
    assert wave2_units == {responders["mid"].unit_id}
    mid_frames = layer_spy.to(unit_group(responders["mid"].unit_id))
    assert [f["type"] for f in mid_frames] == ["incident.alert", "incident.update"]
    assert mid_frames[0]["dispatch"]["wave"] == 2
    assert mid_frames[1]["event"] == "escalated"
    assert layer_spy.to(unit_group(responders["far"].unit_id)) == []
    escalated = unanswered.events.get(type="escalated")
    assert escalated.data == {
        "tier": "respond_1min",
        "notify": ["station"],
        "wave": 2,
        "units": 1,
    }
    assert any(f.get("event") == "escalated" for f in layer_spy.to(SUPERVISORS_GROUP))
    deadline.refresh_from_db()
    assert deadline.fired_at is not None and deadline.outcome == "escalated"

    # A retried task, a second worker or the sweep: nothing more.
    assert services.deadline_fire(deadline_id=deadline.pk) == "not_due_or_fired"
    assert services.deadlines_sweep() == 0
    assert unanswered.waves.count() == 2
    assert unanswered.events.filter(type="escalated").count() == 1


def test_a_flagging_tier_flags_the_incident_once_with_a_flagged_event(unanswered):
    make_due(unanswered, "control_3min")
    make_due(unanswered, "handle_5min")
    assert services.deadlines_sweep() == 2
    unanswered.refresh_from_db()
    assert unanswered.flagged
    flagged = unanswered.events.filter(type="flagged")
    assert list(flagged.values_list("data", flat=True)) == [{"tier": "control_3min"}]


def test_the_sweep_fires_overdue_deadlines_once(unanswered):
    make_due(unanswered, "respond_1min")
    make_due(unanswered, "control_3min")
    assert services.deadlines_sweep() == 2
    assert services.deadlines_sweep() == 0
    outcomes = dict(unanswered.deadlines.values_list("tier", "outcome"))
    assert outcomes["respond_1min"] == outcomes["control_3min"] == "escalated"
    assert outcomes["handle_5min"] == ""
    assert list(unanswered.waves.values_list("number", flat=True)) == [1, 2, 3]
    unanswered.refresh_from_db()
    assert unanswered.flagged  # control_3min flags


def test_the_sweep_leaves_deadlines_that_are_not_due(unanswered):
    assert services.deadlines_sweep() == 0
    assert not unanswered.deadlines.filter(fired_at__isnull=False).exists()


def test_a_tier_whose_unless_field_is_set_is_met_and_sends_nothing(
    unanswered, near_responder, layer_spy, django_capture_on_commit_callbacks
):
    act(unanswered, near_responder, "accept")
    deadline = make_due(unanswered, "respond_1min")
    seq = Incident.objects.get(pk=unanswered.pk).last_seq
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deadline_fire(deadline_id=deadline.pk) == "met"
    assert layer_spy.sent == []
    assert unanswered.waves.count() == 1
    assert Incident.objects.get(pk=unanswered.pk).last_seq == seq
    deadline.refresh_from_db()
    assert deadline.outcome == "met" and deadline.fired_at is not None


def test_deadlines_of_a_closed_incident_are_met(unanswered, near_responder):
    for action in ("accept", "on_site", "handled"):
        act(unanswered, near_responder, action)
    make_due(unanswered, "street_10min")
    assert services.deadlines_sweep() == 1
    assert unanswered.deadlines.get(tier="street_10min").outcome == "met"
    assert unanswered.waves.count() == 1


def test_a_tier_without_a_wave_only_notifies_and_flags(unanswered, near_responder):
    act(unanswered, near_responder, "accept")
    act(unanswered, near_responder, "on_site")
    deadline = make_due(unanswered, "handle_5min")
    assert services.deadline_fire(deadline_id=deadline.pk) == "escalated"
    unanswered.refresh_from_db()
    assert unanswered.flagged
    assert unanswered.waves.count() == 1
    event = unanswered.events.get(type="escalated")
    assert event.data == {"tier": "handle_5min", "notify": ["station", "district"]}


def test_an_incident_keeps_its_policy_when_the_settings_change(settings, responders):
    incident = raise_incident().incident
    settings.ESCALATION_POLICIES = {
        "default": {
            "wave1": {"radius_m": 100, "units": 1},
            "enough_accepts": {"1": 1, "2": 1, "3": 1, "4": 1},
            "tiers": [
                {
                    "name": "respond_1min",
                    "after_s": 5,
                    "unless": "responded_at",
                    "wave": {"radius_m": 10_000, "units": 50},
                    "notify": [],
                    "flag": True,
                }
            ],
        }
    }
    services.deadline_fire(deadline_id=make_due(incident, "respond_1min").pk)
    wave = incident.waves.get(number=2)
    assert wave.radius_m == 3000
    assert set(wave.dispatches.values_list("unit_id", flat=True)) == {responders["mid"].unit_id}
    incident.refresh_from_db()
    assert not incident.flagged
    # A new incident takes the new rules.
    fresh = raise_incident(lat=SPOT[0] + 0.0001).incident
    assert fresh.policy["wave1"]["radius_m"] == 100
    assert list(fresh.deadlines.values_list("tier", flat=True)) == ["respond_1min"]


def test_a_tier_with_no_unless_field_always_escalates(settings, near_responder):
    settings.ESCALATION_POLICIES = {
        "default": {
            "wave1": {"radius_m": 1500, "units": 5},
            "enough_accepts": {"2": 2},
            "tiers": [{"name": "drill_check", "after_s": 30, "notify": ["station"]}],
        }
    }
    incident = raise_incident().incident
    act(incident, near_responder, "accept")
    deadline = make_due(incident, "drill_check")
    assert services.deadline_fire(deadline_id=deadline.pk) == "escalated"


def test_escalation_with_no_more_units_in_range_records_no_units(near_responder):
    incident = raise_incident().incident
    services.deadline_fire(deadline_id=make_due(incident, "respond_1min").pk)
    assert incident.waves.count() == 2
    assert event_types(incident)[-2:] == ["no_units", "escalated"]
    assert incident.events.get(type="escalated").data["units"] == 0


@pytest.mark.parametrize(
    "broken",
    [
        {"wave1": None},
        {"wave1": {"radius_m": 1500, "units": 0}},
        {"tiers": [{"name": "t", "after_s": 60, "unless": "acknowledged_at"}]},
        {"tiers": [{"name": "t", "after_s": "soon"}]},
        {"tiers": [{"after_s": 60}]},
        {"tiers": [{"name": "t", "after_s": 60}, {"name": "t", "after_s": 90}]},
        {"tiers": [{"name": "t", "after_s": 60, "wave": {"radius_m": -1, "units": 3}}]},
    ],
)
def test_a_malformed_policy_is_refused_at_intake_and_nothing_is_stored(
    settings, near_responder, broken
):
    from django.core.exceptions import ImproperlyConfigured

    policy = {"wave1": {"radius_m": 1500, "units": 5}, "enough_accepts": {}, "tiers": []}
    policy.update(broken)
    settings.ESCALATION_POLICIES = {"default": policy}
    with pytest.raises(ImproperlyConfigured):
        raise_incident()
    assert not Incident.objects.exists()


def test_a_kind_with_its_own_policy_uses_it(settings, near_responder):
    fire = {"wave1": {"radius_m": 800, "units": 3}, "tiers": []}
    settings.ESCALATION_POLICIES = {**settings.ESCALATION_POLICIES, "fire": fire}
    assert raise_incident(kind="fire").wave.radius_m == 800
    assert raise_incident(kind="knife", lat=SPOT[0] + 0.0001).wave.radius_m == 1500


# --- delivery receipts ---------------------------------------------------------------------


def test_ack_records_delivered_at_once(near_responder):
    incident = raise_incident().incident
    assert services.delivery_ack(incident_id=incident.pk, member=near_responder)
    delivery = Delivery.objects.get(member=near_responder)
    first = delivery.delivered_at
    assert first is not None
    assert not services.delivery_ack(incident_id=incident.pk, member=near_responder)
    delivery.refresh_from_db()
    assert delivery.delivered_at == first
    assert event_types(incident).count("delivered") == 1


def test_seen_implies_delivered(near_responder):
    incident = raise_incident().incident
    assert services.delivery_ack(incident_id=incident.pk, member=near_responder, seen=True)
    delivery = Delivery.objects.get(member=near_responder)
    assert delivery.delivered_at is not None and delivery.seen_at is not None


def test_ack_by_a_member_who_was_not_alerted_records_nothing(near_responder, far_responder):
    incident = raise_incident().incident
    assert not services.delivery_ack(incident_id=incident.pk, member=far_responder)
    assert not IncidentEvent.objects.filter(type="delivered").exists()


# --- locations ----------------------------------------------------------------------------


def test_a_responding_member_shares_their_location_on_the_incident(
    near_responder, layer_spy, django_capture_on_commit_callbacks
):
    incident = raise_incident().incident
    act(incident, near_responder, "accept")
    with django_capture_on_commit_callbacks(execute=True):
        services.member_location_record(
            member=near_responder, lat=23.131, lon=113.32, incident_id=incident.pk
        )
    frames = layer_spy.to(incident_group(incident.pk))
    assert frames[-1]["type"] == "responder.location"
    assert frames[-1]["member_id"] == near_responder.pk


def test_a_member_not_responding_cannot_share_a_location_on_the_incident(near_responder):
    incident = raise_incident().incident
    with pytest.raises(ActionRefused) as exc:
        services.member_location_record(
            member=near_responder, lat=23.131, lon=113.32, incident_id=incident.pk
        )
    assert exc.value.code == "not_responding"


# --- query counts ---------------------------------------------------------------------------


def _ready_units(n: int, *, near: tuple[float, float] = SPOT) -> list:
    units = []
    for i in range(n):
        unit = UnitFactory(lat=near[0] + 0.001 * (i + 1), lon=near[1])
        LoginMemberFactory.create_batch(3, unit=unit)
        give_full_kit(unit)
        units.append(unit)
    return units


# Two spots 20 km apart: two ready units around one, five around the other.
FEW_AT = (SPOT[0], SPOT[1] - 0.1)
MANY_AT = (SPOT[0], SPOT[1] + 0.1)


def _queries(fn) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as queries:
        result = fn()
    return len(queries), result


def test_intake_queries_do_not_grow_with_the_number_of_units():
    # Pushes and task enqueues run after commit and touch no database: not counted.
    _ready_units(2, near=FEW_AT)
    _ready_units(5, near=MANY_AT)
    raise_incident(lat=SPOT[0] - 0.01)  # warm the unit index

    few, two = _queries(lambda: raise_incident(lat=FEW_AT[0], lon=FEW_AT[1]))
    many, five = _queries(lambda: raise_incident(lat=MANY_AT[0], lon=MANY_AT[1]))

    assert (len(two.candidates), len(five.candidates)) == (2, 5)
    assert Delivery.objects.filter(dispatch__incident=five.incident).count() == 15
    # Five units alerted cost what two do: bulk statements, not one per unit.
    assert many == few, f"{few} queries for 2 units, {many} for 5"
    assert many <= 20


def test_member_action_queries_do_not_grow_with_the_number_of_units():
    counts = []
    for n, at in ((2, FEW_AT), (5, MANY_AT)):
        units = _ready_units(n, near=at)
        incident = raise_incident(
            severity=Incident.Severity.CRITICAL, lat=at[0], lon=at[1]
        ).incident
        assert incident.dispatches.count() == n
        member = units[0].members.first()
        count, _dispatch = _queries(lambda: act(incident, member, "accept"))  # noqa: B023
        counts.append(count)
    assert counts[0] == counts[1], f"{counts[0]} queries with 2 units alerted, {counts[1]} with 5"
    assert counts[1] <= 16


# --- the public write API for drills and the command board -----------------------------


def board_call(incident: Incident, unit_ids: list[int], actor) -> list[Dispatch]:
    return services.wave_send(incident=incident, unit_ids=unit_ids, reason="board", actor=actor)


def test_wave_send_alerts_the_named_units_once_and_records_who_called_them(
    near_responder, far_responder, layer_spy, django_capture_on_commit_callbacks
):
    incident = raise_incident().incident
    officer = StaffFactory(role=StaffProfile.Role.POLICE_STATION).user
    far_unit = far_responder.unit
    layer_spy.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sent = board_call(incident, [near_responder.unit_id, far_unit.pk], officer)

    # The near unit is already on the incident: only the far one is called.
    assert [d.unit_id for d in sent] == [far_unit.pk]
    dispatch = sent[0]
    assert (dispatch.wave.number, dispatch.wave.reason, dispatch.rank) == (2, "board", 2)
    distance = geo.haversine_m(*SPOT, far_unit.lat, far_unit.lon)
    assert dispatch.distance_m == round(distance) and dispatch.eta_s > 0
    assert Delivery.objects.filter(dispatch=dispatch, member=far_responder).exists()
    alerted = incident.events.get(type="alerted", unit=far_unit)
    assert alerted.user == officer and alerted.data["wave"] == 2
    assert layer_spy.types(unit_group(far_unit.pk)) == ["incident.alert"]
    assert board_call(incident, [far_unit.pk], officer) == []
    assert incident.waves.count() == 2


def test_units_stand_down_releases_the_named_units_but_not_one_on_site(
    near_responder, neighbour_responder, layer_spy, django_capture_on_commit_callbacks
):
    incident = raise_incident(severity=Incident.Severity.MEDIUM).incident
    act(incident, near_responder, "accept")
    act(incident, near_responder, "on_site")
    officer = StaffFactory(role=StaffProfile.Role.POLICE_STATION).user
    layer_spy.clear()
    units = [near_responder.unit_id, neighbour_responder.unit_id]
    with django_capture_on_commit_callbacks(execute=True):
        count = services.units_stand_down(incident=incident, unit_ids=units, actor=officer)

    assert count == 1
    statuses = dict(Dispatch.objects.filter(incident=incident).values_list("unit_id", "status"))
    assert statuses == {
        near_responder.unit_id: Dispatch.Status.ON_SITE,
        neighbour_responder.unit_id: Dispatch.Status.STOOD_DOWN,
    }
    stood = incident.events.get(type="stood_down")
    assert (stood.unit_id, stood.user) == (neighbour_responder.unit_id, officer)
    assert layer_spy.types(unit_group(neighbour_responder.unit_id)) == ["incident.update"]


def test_incident_close_closes_without_handled_at_and_tells_every_unit_once(
    near_responder, neighbour_responder, layer_spy, django_capture_on_commit_callbacks
):
    incident = raise_incident(severity=Incident.Severity.MEDIUM).incident
    act(incident, near_responder, "accept")
    officer = StaffFactory(role=StaffProfile.Role.POLICE_STATION).user
    layer_spy.clear()
    with django_capture_on_commit_callbacks(execute=True):
        closed = services.incident_close(incident=incident, actor=officer, outcome="false_alarm")

    assert closed
    incident.refresh_from_db()
    assert incident.status == Incident.Status.CLOSED and incident.handled_at is None
    assert set(Dispatch.objects.filter(incident=incident).values_list("status", flat=True)) == {
        Dispatch.Status.STOOD_DOWN
    }
    event = incident.events.get(type="closed")
    assert (event.user, event.data["outcome"]) == (officer, "false_alarm")
    assert "closed" in [f["event"] for f in layer_spy.to(unit_group(near_responder.unit_id))]
    assert "closed" in [f["event"] for f in layer_spy.to(SUPERVISORS_GROUP)]
    assert not services.incident_close(incident=incident, actor=officer)
    assert incident.events.filter(type="closed").count() == 1


# --- the next ring now (a command board) ------------------------------------------------


def test_the_next_ring_now_takes_its_deadline_so_the_wave_goes_out_once(
    unanswered, responders, layer_spy, django_capture_on_commit_callbacks
):
    officer = StaffFactory(role=StaffProfile.Role.POLICE_STATION).user
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        sent = services.incident_ring_next(incident_id=unanswered.pk, actor=officer)
    assert [d.unit_id for d in sent] == [responders["mid"].unit_id]
    wave = Wave.objects.get(incident=unanswered, number=2)
    assert (wave.radius_m, wave.reason) == (3000, "board_ring")
    assert unanswered.events.get(type="alerted", unit=responders["mid"].unit).user == officer
    ring = unanswered.deadlines.get(tier="respond_1min")
    assert (ring.fired_at, ring.outcome) == (None, "ring_sent")
    # The next ring keeps its interval (3 min - 1 min) from this wave, not from intake.
    following = unanswered.deadlines.get(tier="control_3min")
    assert before + dt.timedelta(seconds=120) <= following.due_at
    assert following.due_at <= timezone.now() + dt.timedelta(seconds=120)

    # The 1-minute deadline comes due: the station is told, no wave goes out again.
    make_due(unanswered, "respond_1min")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deadline_fire(deadline_id=ring.pk) == "escalated"
    assert services.deadlines_sweep() == 0
    assert unanswered.waves.count() == 2
    assert unanswered.dispatches.filter(unit_id=responders["mid"].unit_id).count() == 1
    escalated = unanswered.events.get(type="escalated")
    assert escalated.data == {
        "tier": "respond_1min",
        "notify": ["station"],
        "ring_sent_early": True,
    }
    mid_alerts = [
        f
        for f in layer_spy.to(unit_group(responders["mid"].unit_id))
        if f["type"] == "incident.alert"
    ]
    assert len(mid_alerts) == 1

    # Pressed again: the 3-minute ring (the far unit), and its deadline is taken too.
    sent = services.incident_ring_next(incident_id=unanswered.pk, actor=officer)
    assert [d.unit_id for d in sent] == [responders["far"].unit_id]
    assert unanswered.deadlines.get(tier="control_3min").outcome == "ring_sent"


def test_a_ring_whose_deadline_fired_first_is_not_sent_again_by_the_board(unanswered, responders):
    """The deadline won the race: the board's press sends the ring after it."""
    services.deadline_fire(deadline_id=make_due(unanswered, "respond_1min").pk)
    officer = StaffFactory(role=StaffProfile.Role.POLICE_STATION).user
    sent = services.incident_ring_next(incident_id=unanswered.pk, actor=officer)
    assert [d.unit_id for d in sent] == [responders["far"].unit_id]
    assert list(unanswered.waves.values_list("reason", flat=True).order_by("number")) == [
        "intake",
        "respond_1min",
        "board_ring",
    ]
    assert unanswered.deadlines.get(tier="control_3min").outcome == "ring_sent"


def test_a_next_ring_with_nobody_in_range_writes_nothing_and_keeps_the_deadline(
    near_responder,
):
    incident = raise_incident().incident
    officer = StaffFactory(role=StaffProfile.Role.POLICE_STATION).user
    seq = Incident.objects.get(pk=incident.pk).last_seq
    with pytest.raises(ActionRefused) as refused:
        services.incident_ring_next(incident_id=incident.pk, actor=officer)
    assert refused.value.code == "no_units"
    assert incident.waves.count() == 1
    assert Incident.objects.get(pk=incident.pk).last_seq == seq
    assert incident.deadlines.get(tier="respond_1min").outcome == ""


def test_the_next_ring_of_a_closed_incident_is_refused(unanswered):
    officer = StaffFactory(role=StaffProfile.Role.POLICE_STATION).user
    services.incident_close(incident=unanswered, actor=officer, outcome="false_alarm")
    with pytest.raises(ActionRefused) as refused:
        services.incident_ring_next(incident_id=unanswered.pk, actor=officer)
    assert refused.value.code == "closed"
    assert unanswered.deadlines.get(tier="respond_1min").outcome == ""


def test_a_batch_of_positions_is_stored_in_one_transaction_and_each_refusal_kept(
    unanswered, responders, layer_spy, django_capture_on_commit_callbacks, django_assert_num_queries
):
    """Hundreds of responders' positions per socket process: one query to check them
    all and one insert, not a round of queries each; a refused one is its own."""
    act(unanswered, responders["near"], "accept")
    partner = Member.objects.filter(unit=responders["near"].unit).exclude(pk=responders["near"].pk)[
        0
    ]
    reports = [
        members.LocationReport(
            member=responders["near"], lat=23.131, lon=113.32, incident_id=unanswered.pk
        ),
        members.LocationReport(member=partner, lat=23.132, lon=113.32, incident_id=unanswered.pk),
        members.LocationReport(
            member=responders["far"], lat=23.09, lon=113.33, incident_id=unanswered.pk
        ),
        members.LocationReport(member=responders["mid"], lat=23.11, lon=113.32),
    ]
    # One check of every dispatch, one INSERT (in the test's transaction: within a
    # savepoint and its release), whatever the number of positions.
    with django_assert_num_queries(4), django_capture_on_commit_callbacks(execute=True):
        results = services.member_locations_record(reports=reports)
    stored = [row is not None for row, _refused in results]
    assert stored == [True, True, False, True]
    assert results[2][1].code == "not_alerted"
    frames = layer_spy.to(incident_group(unanswered.pk))
    positions = [f for f in frames if f["type"] == "responder.location"]
    assert [f["member_id"] for f in positions] == [responders["near"].pk, partner.pk]


def test_an_intake_without_an_address_reads_the_nearest_units_name_from_the_ranking_index(
    near_responder,
):
    """The intake's default address names the nearest unit: the ranking index
    already holds the city's units, so its name costs no query on the path to
    the phones (one round trip, 1.5-2.5 ms of wave 1 at 10,000 sockets)."""
    unit_table = Unit._meta.db_table
    raise_incident(address="天河路 1 号")  # the index loaded (all units, once a process)
    with CaptureQueriesContext(connection) as queries:
        incident = raise_incident().incident
    # A unit read by id (a full reload, were the date to change meanwhile, reads all).
    reads = [q["sql"] for q in queries.captured_queries if f'FROM "{unit_table}" WHERE' in q["sql"]]
    assert reads == []
    assert incident.address.endswith(f"{near_responder.unit.name}附近")


def test_a_renamed_unit_names_the_next_incidents_address(near_responder):
    # A unit's save logs a roster change; the index's next refresh reads its name.
    assert raise_incident().incident.address.endswith(f"{near_responder.unit.name}附近")
    near_responder.unit.name = "改名后的商场"
    near_responder.unit.save()
    assert raise_incident().incident.address.endswith("改名后的商场附近")
