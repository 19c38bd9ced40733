"""The board's commands: who may act on which incident, and each command as one
call of dispatch's public write API (``dispatch.services``). The board writes no
incident, wave or dispatch itself."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dispatch import services as dispatch_services
from dispatch.models import Dispatch, Incident
from dispatch.selectors import incident_list, user_may_raise_incidents

# Close outcomes an officer picks from (the ``closed`` event keeps the code).
OUTCOMES = {
    "resolved": gettext_lazy("已处置完毕"),
    "false_alarm": gettext_lazy("误报"),
    "police_took_over": gettext_lazy("已移交警方处置"),
    "professional_took_over": gettext_lazy("已移交专业力量"),
}
CALL_MAX_UNITS = 50


class BoardRefused(Exception):
    """A command the officer may not give; nothing was written. ``status`` is the
    HTTP answer: 403 (not allowed, outside the area) or 409 (the incident is closed)."""

    def __init__(self, code: str, message: str, *, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def user_may_command(user) -> bool:
    """Police stations, admins and superusers command; reviewers watch."""
    return user_may_raise_incidents(user=user)


def incident_for_command(*, user, incident_id: int) -> Incident:
    """The open incident ``user`` may command, or BoardRefused."""
    if not user_may_command(user):
        raise BoardRefused("forbidden", _("您的角色只能查看，不能指挥。"), status=403)
    incident = incident_list(user=user).filter(pk=incident_id).first()
    if incident is None:
        raise BoardRefused(
            "outside_scope", _("该警情不在您的辖区内（或不存在），不能指挥。"), status=403
        )
    if incident.status != Incident.Status.OPEN:
        raise BoardRefused("closed", _("该警情已结束，不能再指挥。"), status=409)
    return incident


def board_raise(
    *,
    user,
    kind: str,
    severity: int,
    lat: float,
    lon: float,
    address: str = "",
    description: str = "",
) -> dispatch_services.IntakeResult:
    """Open an incident from the board (source 指挥台): wave 1 goes out at once."""
    if not user_may_command(user):
        raise BoardRefused("forbidden", _("您的角色只能查看，不能指挥。"), status=403)
    try:
        return dispatch_services.incident_create(
            kind=kind,
            severity=severity,
            lat=lat,
            lon=lon,
            address=address,
            description=description,
            source=Incident.Source.CONSOLE,
            created_by=user,
        )
    except dispatch_services.IntakeRefused as exc:
        raise BoardRefused(exc.code, exc.message, status=403) from exc


def board_call_units(*, user, incident_id: int, unit_ids: list[int]) -> list[Dispatch]:
    """Call these units now (一点呼叫、多点响应): one wave through ``wave_send``."""
    incident = incident_for_command(user=user, incident_id=incident_id)
    if not unit_ids or len(unit_ids) > CALL_MAX_UNITS:
        raise ValidationError({"unit_ids": _("请选择 1 至 %(n)s 个单元。") % {"n": CALL_MAX_UNITS}})
    return dispatch_services.wave_send(
        incident=incident, unit_ids=unit_ids, reason="board_call", actor=user
    )


def board_next_ring(*, user, incident_id: int) -> list[Dispatch]:
    """The next ring now: dispatch sends the policy's next ring (and takes that
    ring's escalation deadline, so the same wave does not go out again when due)."""
    incident = incident_for_command(user=user, incident_id=incident_id)
    try:
        return dispatch_services.incident_ring_next(incident_id=incident.pk, actor=user)
    except dispatch_services.ActionRefused as exc:
        raise BoardRefused(exc.code, exc.message, status=409) from exc


def board_gather(*, user, incident_id: int, lat: float, lon: float, note: str = ""):
    incident = incident_for_command(user=user, incident_id=incident_id)
    try:
        return dispatch_services.incident_gather_set(
            incident=incident, lat=lat, lon=lon, note=note, actor=user
        )
    except dispatch_services.ActionRefused as exc:
        raise BoardRefused(exc.code, exc.message, status=409) from exc


def board_stand_down(*, user, incident_id: int, unit_ids: list[int]) -> int:
    incident = incident_for_command(user=user, incident_id=incident_id)
    if not unit_ids:
        raise ValidationError({"unit_ids": _("请选择要解除的单元。")})
    return dispatch_services.units_stand_down(incident=incident, unit_ids=unit_ids, actor=user)


def board_close(*, user, incident_id: int, outcome: str) -> None:
    incident = incident_for_command(user=user, incident_id=incident_id)
    if outcome not in OUTCOMES:
        raise ValidationError({"outcome": _("请选择结案结果。")})
    if not dispatch_services.incident_close(incident=incident, actor=user, outcome=outcome):
        raise BoardRefused("closed", _("该警情已结束，不能再指挥。"), status=409)
