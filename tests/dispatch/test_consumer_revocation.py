"""Deactivation and sign-out close a member's sockets at once, not at the next
heartbeat (issue 10, fault 3): no alert reaches a member who may no longer get one.

The heartbeat stays at its production default here, so only the pushed close can
end the socket within the test's time.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from dispatch.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from mobile.services import member_sign_out
from tests.dispatch.test_consumers import phone, raise_incident, run
from tests.factories import UserFactory
from tests.units.test_import import csv_bytes
from units.importing import roster_import
from units.models import Member, Unit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _slow_heartbeat(settings):
    settings.WS_HEARTBEAT_S = 20
    settings.WS_HEARTBEAT_SLICE_S = 20  # one slice: no socket beats within a test
    settings.WS_IDLE_CLOSE_S = 60


async def _closed_with(p, code: int, error_code: str) -> None:
    frame = await p.receive(timeout=1)
    if frame["type"] == "duty":  # sign-out clocks out first
        assert frame["on_duty"] is False
        frame = await p.receive(timeout=1)
    assert (frame["type"], frame["code"]) == ("error", error_code)
    assert (await p.close_frame(timeout=1))["code"] == code


def _save_inactive(obj) -> None:
    # As the admin's change form does: the model's save(), not a queryset update.
    obj.is_active = False
    obj.save()


def test_deactivating_a_member_closes_their_socket_at_once(near_responder, neighbour_responder):
    async def scenario():
        async with phone(near_responder.user) as p, phone(neighbour_responder.user) as other:
            member = await database_sync_to_async(Member.objects.get)(pk=near_responder.pk)
            await database_sync_to_async(_save_inactive)(member)
            await _closed_with(p, CLOSE_FORBIDDEN, "inactive")
            incident = await raise_incident()
            assert await p.nothing(0.3)
            # Someone else's socket is untouched and still alerted.
            alert = await other.receive_type("incident.alert")
            assert alert["incident"]["id"] == incident.pk

    run(scenario)


def test_deactivating_a_unit_closes_its_members_sockets_at_once(near_responder):
    partner = near_responder.unit.members.exclude(pk=near_responder.pk).first()

    async def scenario():
        async with phone(near_responder.user) as p:
            unit = await database_sync_to_async(Unit.objects.get)(pk=near_responder.unit_id)
            await database_sync_to_async(_save_inactive)(unit)
            await _closed_with(p, CLOSE_FORBIDDEN, "inactive")

    assert partner is not None
    run(scenario)


def test_deactivating_a_members_login_closes_their_socket_at_once(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            await database_sync_to_async(_save_inactive)(near_responder.user)
            await _closed_with(p, CLOSE_FORBIDDEN, "inactive")

    run(scenario)


def test_signing_out_closes_the_members_sockets_at_once(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            await database_sync_to_async(member_sign_out)(member=near_responder, session_key=None)
            await _closed_with(p, CLOSE_UNAUTHENTICATED, "signed_out")
            await raise_incident()
            assert await p.nothing(0.3)

    run(scenario)


def test_saving_an_active_member_leaves_the_socket_open(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            member = await database_sync_to_async(Member.objects.get)(pk=near_responder.pk)
            member.name = "改名"
            await database_sync_to_async(member.save)()
            incident = await raise_incident()
            alert = await p.receive_type("incident.alert")
            assert alert["incident"]["id"] == incident.pk

    run(scenario)


# --- the roster import writes in bulk (no post_save): it must close sockets too -------


def _import_as_superuser(header: list[str], rows: list[list]) -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    report = roster_import(
        data=csv_bytes(header, rows), filename="roster.csv", user=admin, dry_run=False
    )
    assert not report.errors, report.errors


def test_an_import_that_deactivates_a_member_closes_their_socket_at_once(
    near_responder, neighbour_responder
):
    member = near_responder
    row = [member.phone, member.name, member.unit.code, member.role, "否"]

    async def scenario():
        async with phone(member.user) as p, phone(neighbour_responder.user) as other:
            await database_sync_to_async(_import_as_superuser)(
                ["手机号", "姓名", "单元编码", "角色", "有效"], [row]
            )
            await _closed_with(p, CLOSE_FORBIDDEN, "inactive")
            incident = await raise_incident()
            assert await p.nothing(0.3)
            alert = await other.receive_type("incident.alert")
            assert alert["incident"]["id"] == incident.pk

    run(scenario)


def test_an_import_that_deactivates_a_unit_closes_its_members_sockets_at_once(near_responder):
    unit = near_responder.unit
    row = [
        unit.code, unit.name, unit.get_kind_display(), unit.region.code, unit.address,
        unit.lat, unit.lon, "否",
    ]  # fmt: skip

    async def scenario():
        async with phone(near_responder.user) as p:
            await database_sync_to_async(_import_as_superuser)(
                ["单元编码", "单元名称", "类型", "街镇代码", "地址", "纬度", "经度", "启用"], [row]
            )
            await _closed_with(p, CLOSE_FORBIDDEN, "inactive")

    run(scenario)
