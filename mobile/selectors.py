"""Reads of the member's phone app: own unit and kit, own alerts, one incident's responders."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from dispatch import payloads
from dispatch.actions import next_actions
from dispatch.models import (
    Delivery,
    Dispatch,
    IncidentEvent,
    MemberLocation,
    NotificationAttempt,
)
from dispatch.policy import channel_label
from dispatch.services import dispatch_for_member
from units.models import STANDARD_KIT, Equipment, EquipmentKind, Member
from units.readiness import equipment_usable, phone_takes_sms_q

from .models import AlertTest, AlertTestAttempt, PushSubscription


def member_overview(*, member: Member) -> dict[str, Any]:
    """The member, their unit, who is on duty there and the state of its standard kit."""
    unit = member.unit
    today = timezone.localdate()
    held = {e.kind: e for e in Equipment.objects.filter(unit=unit)}
    kit = []
    for kind in EquipmentKind:
        item = held.get(kind.value)
        required = STANDARD_KIT.get(kind.value, 0)
        if item is None and not required:
            continue
        expired = bool(item and item.expires and item.expires < today)
        ok = item is not None and equipment_usable(item, today=today)
        kit.append(
            {
                "kind": kind.value,
                "label": str(kind.label),
                "quantity": item.quantity if item else 0,
                "required": required,
                "condition": item.get_condition_display() if item else "",
                "expires": item.expires.isoformat() if item and item.expires else None,
                "expired": expired,
                "ok": ok,
            }
        )
    teammates = list(
        Member.objects.filter(unit=unit, is_active=True)
        .order_by("-on_duty", "name")
        .values("id", "name", "on_duty", "role")
    )
    return {
        "member": {
            "id": member.pk,
            "name": member.name,
            "phone": member.phone,
            "role": member.get_role_display(),
            "on_duty": member.on_duty,
            "duty_since": member.duty_since.isoformat() if member.duty_since else None,
        },
        "unit": {
            "id": unit.pk,
            "code": unit.code,
            "name": unit.name,
            "address": unit.address,
            "lat": unit.lat,
            "lon": unit.lon,
            "is_active": unit.is_active,
            "post_min": unit.post_min,
        },
        "teammates": teammates,
        "kit": kit,
        "kit_complete": all(k["ok"] for k in kit if k["required"]),
        "reach": member_reach_last(member=member),
    }


def member_alert_history(*, member: Member, limit: int = 50) -> list[dict[str, Any]]:
    """The alerts sent to the member's unit, newest first, with this member's receipt."""
    dispatches = list(
        Dispatch.objects.filter(unit_id=member.unit_id)
        .select_related("incident")
        .order_by("-created_at")[:limit]
    )
    receipts = {
        d.dispatch_id: d
        for d in Delivery.objects.filter(member=member, dispatch__in=[d.pk for d in dispatches])
    }
    rows = []
    for d in dispatches:
        receipt = receipts.get(d.pk)
        rows.append(
            {
                "incident": payloads.incident_summary(d.incident),
                "dispatch": {
                    "status": d.status,
                    "status_display": d.get_status_display(),
                    "distance_m": d.distance_m,
                    "eta_s": d.eta_s,
                    "alerted_at": d.created_at.isoformat(),
                    "accepted_at": d.accepted_at.isoformat() if d.accepted_at else None,
                    "on_site_at": d.on_site_at.isoformat() if d.on_site_at else None,
                    "handled_at": d.handled_at.isoformat() if d.handled_at else None,
                },
                "delivered_at": receipt.delivered_at.isoformat()
                if receipt and receipt.delivered_at
                else None,
            }
        )
    return rows


def member_incident(*, member: Member, incident_id: int) -> dict[str, Any]:
    """One incident as the member's unit sees it: the units that accepted, and where
    their responders were last seen. Raises ActionRefused if the unit was not alerted."""
    dispatch = dispatch_for_member(incident_id=incident_id, member=member)
    incident = dispatch.incident
    accepted = (
        IncidentEvent.objects.filter(
            incident=incident,
            type__in=[
                IncidentEvent.Type.ACCEPTED,
                IncidentEvent.Type.ON_SITE,
                IncidentEvent.Type.HANDLED,
            ],
        )
        .select_related("unit", "member")
        .order_by("seq")
    )
    responders: dict[int, dict[str, Any]] = {}
    for e in accepted:
        key = e.member_id or -e.unit_id
        row = responders.setdefault(
            key,
            {
                "member_id": e.member_id,
                "name": e.member.name if e.member else "",
                "unit_id": e.unit_id,
                "unit_name": e.unit.name if e.unit else "",
                "event": e.type,
                "lat": None,
                "lon": None,
                "at": None,
            },
        )
        row["event"] = e.type
    # Latest position per responder (a teammate moving with the unit shares it
    # without an event of their own): a bounded read, newest first.
    latest = (
        MemberLocation.objects.filter(incident=incident)
        .select_related("member__unit")
        .order_by("-created_at")[:500]
    )
    for loc in latest:
        row = responders.get(loc.member_id)
        if row is None:
            row = responders[loc.member_id] = {
                "member_id": loc.member_id,
                "name": loc.member.name,
                "unit_id": loc.member.unit_id,
                "unit_name": loc.member.unit.name,
                "event": None,
                "at": None,
            }
        if row["at"] is None:
            row.update(lat=loc.lat, lon=loc.lon, at=loc.created_at.isoformat())
    return {
        "incident": payloads.incident_summary(incident),
        "dispatch": {
            "unit_id": dispatch.unit_id,
            "status": dispatch.status,
            "next_actions": next_actions(dispatch.status),
            "distance_m": dispatch.distance_m,
            "eta_s": dispatch.eta_s,
        },
        "responders": list(responders.values()),
    }


# --- Which channels reached a member last ---------------------------------------------------

REACH_CHANNELS = ("app", "push", "sms", "voice")


def member_reach_annotations(member_ref: str = "pk") -> dict[str, Subquery]:
    """Per channel, when it last reached the member: the open page's receipt
    (``Delivery.delivered_at``), the chain's sent attempts, and the member's own
    "test my alert" runs (kept apart: ``test_<channel>``). Correlated subqueries,
    one value each, for a Member queryset: a page of the admin's list costs one
    query whatever its length.

    A sent attempt counts from its ``created_at``: the provider accepted it. When
    the providers' receipts land (``NotificationAttempt.delivered_at``), the
    handset's receipt time is the better figure.
    """
    member = OuterRef(member_ref)
    sent = NotificationAttempt.Status.SENT
    test_sent = AlertTestAttempt.Status.SENT

    def latest(qs, field: str) -> Subquery:
        return Subquery(qs.order_by(f"-{field}").values(field)[:1])

    out = {
        "reach_app": latest(
            Delivery.objects.filter(member=member, delivered_at__isnull=False), "delivered_at"
        ),
        "reach_test_app": latest(
            AlertTest.objects.filter(member=member, app_delivered_at__isnull=False),
            "app_delivered_at",
        ),
    }
    for channel in REACH_CHANNELS[1:]:
        out[f"reach_{channel}"] = latest(
            NotificationAttempt.objects.filter(
                delivery__member=member, channel=channel, status=sent
            ),
            "created_at",
        )
        out[f"reach_test_{channel}"] = latest(
            AlertTestAttempt.objects.filter(test__member=member, channel=channel, status=test_sent),
            "created_at",
        )
    return out


def reach_rows(values: Any) -> list[dict[str, Any]]:
    """Fold the annotations of one member (an object or a dict) into rows, newest
    first: channel, label, when, and whether that was a test."""

    def get(name: str):
        return values.get(name) if isinstance(values, dict) else getattr(values, name, None)

    rows = []
    for channel in REACH_CHANNELS:
        real, test = get(f"reach_{channel}"), get(f"reach_test_{channel}")
        if real is None and test is None:
            continue
        is_test = real is None or (test is not None and test > real)
        rows.append(
            {
                "channel": channel,
                "label": channel_label(channel),
                "at": test if is_test else real,
                "test": is_test,
            }
        )
    rows.sort(key=lambda r: r["at"], reverse=True)
    return rows


def member_reach_last(*, member: Member) -> list[dict[str, Any]]:
    """Which channels reached the member last, newest first (one query)."""
    annotations = member_reach_annotations()
    values = (
        Member.objects.filter(pk=member.pk).annotate(**annotations).values(*annotations).first()
    )
    return [{**r, "at": r["at"].isoformat()} for r in reach_rows(values or {})]


# --- Who no channel reaches (units.readiness, by settings.READINESS_UNREACHABLE_MEMBERS) ----


def members_unreachable(members):
    """The members no channel reaches when their page is closed: neither a push
    subscription nor a mainland mobile number, or their last alert that the
    chain chased failed on every channel it tried (none sent, the page never
    acknowledged it). Correlated subqueries on ``members``' own query."""
    member = OuterRef("pk")
    last_chased = Subquery(
        Delivery.objects.filter(member=member, notification_attempts__isnull=False)
        .order_by("-created_at", "-pk")
        .values("pk")[:1]
    )
    annotated = members.annotate(
        _has_push=Exists(PushSubscription.objects.filter(member=member)),
        _last_chased=last_chased,
    ).annotate(
        _last_reached=Exists(
            Delivery.objects.filter(pk=OuterRef("_last_chased"), delivered_at__isnull=False)
        )
        | Exists(
            NotificationAttempt.objects.filter(
                delivery_id=OuterRef("_last_chased"), status=NotificationAttempt.Status.SENT
            )
        ),
    )
    no_channel = Q(_has_push=False) & ~phone_takes_sms_q()
    all_failed = Q(_last_chased__isnull=False, _last_reached=False)
    return annotated.filter(no_channel | all_failed)
