"""Pluggable notification backends and the escalating alert chain.

Like Django's e-mail backends: ``settings.NOTIFY_BACKENDS`` maps a channel
("push", "sms", "voice", or a new one such as "wechat" or "radio") to a dotted
path of a class with ``send(notification) -> SendResult``. The default is the
console (log) backend for SMS and voice and Web Push for push (its member side,
subscriptions and VAPID, is ``mobile.webpush.WebPushBackend``: the setting names it,
so dispatch never imports the phone app); ``LocMemBackend``
keeps messages in ``notify.outbox`` for tests.

The chain: after a wave's alerts are pushed, each step of ``settings.NOTIFY_CHAIN``
runs ``after_s`` seconds after the wave (a Celery task per step for the whole
wave) and notifies every alerted member whose alert is still undelivered or
unanswered, whose incident is open and who is still on duty. A
``NotificationAttempt`` row per (delivery, channel) is the claim, so a step never
reaches a member twice on one channel.

Real providers (``dispatch.gateways``) take many numbers a call (``send_many``),
answer with their message or call id (``SendResult.provider_ref``) and report
later by callback (``dispatch.hooks``): ``receipt_record`` marks the member's
attempt reached (SMS delivered, call answered: a ``reached`` event on the
timeline and the supervisors' feed) or failed, and a failure moves that member
to the chain's next channel at once (``chain_advance``), not at the next step's
timer. A member whom every channel of the chain failed is flagged for a radio
follow-up (an ``unreachable`` event, once).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from units import phones
from units.models import Member

from . import payloads
from .events import events_record, incident_group, push_on_commit, to_supervisors
from .models import (
    Delivery,
    Dispatch,
    HeldReceipt,
    Incident,
    IncidentEvent,
    NotificationAttempt,
    Wave,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    """What one backend sends to one member. ``text`` is for SMS / voice / bridges,
    ``payload`` (JSON) for apps that render it themselves (Web Push)."""

    channel: str
    member_id: int
    member_name: str
    phone: str
    text: str
    title: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    incident_id: int | None = None


@dataclass(frozen=True)
class SendResult:
    ok: bool
    detail: str = ""
    skipped: bool = False  # nothing to send to (e.g. no push subscription)
    provider_ref: str = ""  # the provider's message / call id, named by its receipts
    error_code: str = ""  # the provider's refusal code
    transient: bool = False  # a timeout or 5xx that outlasted every retry


class BaseBackend:
    """Subclass and implement ``send`` (and ``send_many`` where the provider has a
    batch API). Raise nothing for a failed delivery: return
    ``SendResult(ok=False, detail=...)``; the chain moves that member on."""

    # True when the provider reports delivery later by callback: a sent message
    # has not reached anyone until then (dispatch.gateways).
    has_receipts = False
    # True when a send is as far as we will ever know and counts as reaching the
    # member. The "push" channel always counts (REACHED_ON_SEND); the console and
    # locmem backends never do: a log line reaches nobody.
    reaches_on_send = False
    # Called with each retry the backend makes (dispatch.gateways.base.Retry).
    retry_listener = None

    def send(self, notification: Notification) -> SendResult:  # pragma: no cover
        raise NotImplementedError

    def send_many(self, notifications: Sequence[Notification]) -> list[SendResult]:
        results = []
        for note in notifications:
            try:
                results.append(self.send(note))
            except Exception as exc:  # one broken message must not lose the others
                log.exception("notify %s to member %s failed", note.channel, note.member_id)
                results.append(SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:200]))
        return results


class ConsoleBackend(BaseBackend):
    """Writes the message to the log: the default until a gateway is configured."""

    def send(self, notification: Notification) -> SendResult:
        log.info(
            "[notify:%s] to %s (%s): %s",
            notification.channel,
            notification.member_name,
            # The log is no place for whole phone numbers.
            f"{notification.phone[:3]}****{notification.phone[-4:]}",
            notification.text,
        )
        return SendResult(ok=True, detail="console")


outbox: list[Notification] = []


class LocMemBackend(BaseBackend):
    """Keeps every message in ``dispatch.notify.outbox`` (tests)."""

    def send(self, notification: Notification) -> SendResult:
        outbox.append(notification)
        return SendResult(ok=True, detail="locmem")


def backend_for(channel: str) -> BaseBackend:
    path = settings.NOTIFY_BACKENDS.get(channel)
    if not path:
        raise LookupError(f"no notification backend for channel {channel!r}")
    return import_string(path)()


def send_text(*, channel: str, member: Member, text: str) -> SendResult:
    """Send a plain text (a login code) through one channel's backend."""
    return send_to_phone(
        channel=channel, phone=member.phone, text=text, member_id=member.pk, name=member.name
    )


def send_to_phone(
    *, channel: str, phone: str, text: str, member_id: int = 0, name: str = ""
) -> SendResult:
    """Send a plain text to a number (an answer to an SMS reply, a login code)."""
    note = Notification(
        channel=channel, member_id=member_id, member_name=name, phone=phone, text=text
    )
    try:
        return backend_for(channel).send(note)
    except Exception as exc:  # a broken gateway must not break the caller
        log.exception("notify %s to member %s failed", channel, member_id)
        return SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:200])


# --- The escalating chain --------------------------------------------------------------


def chain_start_on_commit(*, wave_id: int) -> None:
    """Called where a wave is sent: after commit, schedule the chain's first step."""
    if settings.NOTIFY_CHAIN:
        transaction.on_commit(lambda: _step_schedule(wave_id=wave_id, step=0))


def _step_schedule(*, wave_id: int, step: int) -> None:
    # Imported here: tasks imports this module at its top (cycle notify <-> tasks).
    from .tasks import notify_chain_step

    chain = settings.NOTIFY_CHAIN
    delay = float(chain[step]["after_s"]) - (float(chain[step - 1]["after_s"]) if step else 0.0)
    try:
        notify_chain_step.apply_async(
            (wave_id, step),
            countdown=max(0.0, delay),
            # A stale reminder is worse than none: drop it if it cannot run soon.
            expires=max(0.0, delay) + 120,
        )
    except Exception:
        log.exception("could not enqueue notification step %s of wave %s", step, wave_id)


def _pending_all(*, condition: str):
    qs = Delivery.objects.filter(
        dispatch__status=Dispatch.Status.ALERTED,
        dispatch__incident__status=Incident.Status.OPEN,
        member__on_duty=True,
        member__is_active=True,
    )
    if condition == "undelivered":
        qs = qs.filter(delivered_at=None)
    return qs


def _pending(*, wave_id: int, condition: str):
    return _pending_all(condition=condition).filter(dispatch__wave_id=wave_id)


# Channels whose sent message counts as reaching the member (the issue's "push
# sent": Web Push gives no delivery receipt), whatever the backend says.
REACHED_ON_SEND = frozenset({"push"})

# Claimed and sent this many members at a time: one INSERT, one provider batch
# (or several), one UPDATE.
CLAIM_CHUNK = 1000


def chain_step(*, wave_id: int, step: int, schedule_next: bool = True) -> int:
    """Run one step of the chain for a wave; returns how many members it notified."""
    chain = settings.NOTIFY_CHAIN
    if step >= len(chain):
        return 0
    spec = chain[step]
    channel = spec["channel"]
    condition = spec.get("while", "unanswered")
    deliveries = deliveries_load(
        _pending(wave_id=wave_id, condition=condition).exclude(
            notification_attempts__channel=channel
        )
    )
    sent = notify_deliveries(channel=channel, deliveries=deliveries) if deliveries else 0
    # Later steps only while someone of this wave may still need them.
    if (
        schedule_next
        and step + 1 < len(chain)
        and _pending(wave_id=wave_id, condition="unanswered").exists()
    ):
        _step_schedule(wave_id=wave_id, step=step + 1)
    return sent


@dataclass(slots=True)
class MemberRef:
    pk: int
    name: str
    phone: str
    unit_id: int


@dataclass(slots=True)
class DispatchRef:
    pk: int
    incident: Incident
    distance_m: int

    @property
    def incident_id(self) -> int:
        return self.incident.pk


@dataclass(slots=True)
class Target:
    """What the chain reads of a ``Delivery`` to notify one member: the fields of
    its member and dispatch, and the incident, shared. ``notify_deliveries``
    takes these or real deliveries alike."""

    pk: int
    dispatch_id: int
    member_id: int
    dispatch: DispatchRef
    member: MemberRef


def deliveries_load(qs) -> list[Target]:
    """The deliveries of ``qs`` as ``Target``s: one query for their fields, one
    for the incidents (with region), each incident and dispatch built once and
    shared. Model instances of delivery, member, dispatch, incident and region
    per row were most of a city drill's own time (41,000 rows, one incident)."""
    rows = list(
        qs.values_list(
            "pk",
            "dispatch_id",
            "member_id",
            "dispatch__incident_id",
            "dispatch__distance_m",
            "member__name",
            "member__phone",
            "member__unit_id",
        )
    )
    incidents = Incident.objects.select_related("region").in_bulk(list({r[3] for r in rows}))
    dispatches: dict[int, DispatchRef] = {}
    targets = []
    for pk, dispatch_id, member_id, incident_id, distance_m, name, phone, unit_id in rows:
        dispatch = dispatches.get(dispatch_id)
        if dispatch is None:
            dispatch = dispatches[dispatch_id] = DispatchRef(
                dispatch_id, incidents[incident_id], distance_m
            )
        targets.append(
            Target(pk, dispatch_id, member_id, dispatch, MemberRef(member_id, name, phone, unit_id))
        )
    return targets


def chain_sweep(*, now: dt.datetime | None = None, grace_s: float = 5.0) -> int:
    """Run every step that is overdue by more than ``grace_s`` (a worker died, the
    broker was down when it should have been enqueued). Beat calls it every few
    seconds; the per-(delivery, channel) claim keeps it from sending twice."""
    chain = settings.NOTIFY_CHAIN
    if not chain:
        return 0
    now = now or timezone.now()
    horizon = max(float(s["after_s"]) for s in chain) + 300
    waves = Wave.objects.filter(
        created_at__gte=now - dt.timedelta(seconds=horizon),
        incident__status=Incident.Status.OPEN,
    ).values_list("pk", "created_at")
    sent = 0
    for wave_id, created_at in waves:
        for step, spec in enumerate(chain):
            if created_at + dt.timedelta(seconds=float(spec["after_s"]) + grace_s) <= now:
                sent += chain_step(wave_id=wave_id, step=step, schedule_next=False)
    return sent


def notify_deliveries(*, channel: str, deliveries: Sequence[Delivery | Target]) -> int:
    """Claim and send one channel to these members; returns how many were sent.

    The (delivery, channel) row is the claim, inserted in bulk: a member whose row
    another worker inserted first is left to that worker, so no member gets the
    same SMS twice however many tasks, retries and sweeps run the step.
    """
    # A drill not ticked "use SMS/voice" stays on the free channels (app, push),
    # on every path: the timed steps, the sweep and a failed receipt's advance.
    if channel in settings.NOTIFY_PAID_CHANNELS:
        deliveries = [d for d in deliveries if d.dispatch.incident.paid_channels]
        if not deliveries:
            return 0
    backend = backend_for(channel)
    sent = 0
    for start in range(0, len(deliveries), CLAIM_CHUNK):
        sent += _notify_chunk(
            backend=backend, channel=channel, deliveries=deliveries[start : start + CLAIM_CHUNK]
        )
    return sent


def _notify_chunk(
    *, backend: BaseBackend, channel: str, deliveries: Sequence[Delivery | Target]
) -> int:
    token = uuid.uuid4().hex
    by_id = {d.pk: d for d in deliveries}
    attempts = _claims_insert(delivery_ids=list(by_id), channel=channel, token=token)
    if not attempts:
        return 0
    notes = _alert_notifications(
        channel=channel, deliveries=[by_id[a.delivery_id] for a in attempts]
    )
    incidents = {d.dispatch.incident_id: d.dispatch.incident for d in by_id.values()}
    backend.retry_listener = lambda retry: _retry_record(
        channel=channel, retry=retry, incidents=list(incidents.values())
    )
    try:
        results = backend.send_many(notes)
    except Exception as exc:  # a broken backend fails these members, not the step
        log.exception("notify %s: backend failed", channel)
        results = [SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:200])] * len(notes)
    finally:
        backend.retry_listener = None
    now = timezone.now()
    reaches_on_send = backend.reaches_on_send or channel in REACHED_ON_SEND
    reached: list[_Claim] = []
    moved_on: list[int] = []
    last_channel = settings.NOTIFY_CHAIN[-1]["channel"] if settings.NOTIFY_CHAIN else channel
    # One UPDATE per distinct outcome (a batch call shares one; Tencent's
    # per-number ids make one each): bulk_update's CASE per row is quadratic here.
    outcomes: dict[tuple, list[int]] = defaultdict(list)
    for attempt, result in zip(attempts, results, strict=True):
        status = (
            NotificationAttempt.Status.SENT
            if result.ok
            else NotificationAttempt.Status.SKIPPED
            if result.skipped
            else NotificationAttempt.Status.FAILED
        )
        reached_at = None
        if result.ok and not backend.has_receipts and reaches_on_send:
            reached_at = now
            reached.append(attempt)
        outcomes[
            (
                status,
                result.detail[:255],
                result.provider_ref[:64],
                result.error_code[:64],
                reached_at,
            )
        ].append(attempt.pk)
        # A refused message moves the member on now; a skipped step (no push
        # subscription) waits for the next timer, unless it was the last step.
        if (not result.ok and not result.skipped) or (result.skipped and channel == last_channel):
            moved_on.append(attempt.delivery_id)
    with transaction.atomic():
        for (status, detail, ref, code, reached_at), pks in outcomes.items():
            NotificationAttempt.objects.filter(pk__in=pks).update(
                status=status,
                detail=detail,
                provider_ref=ref,
                error_code=code,
                reached_at=reached_at,
            )
        _reached_record(
            channel=channel,
            attempts=reached,
            deliveries=by_id,
            at=now,
        )
        for delivery_id in moved_on:
            transaction.on_commit(
                lambda pk=delivery_id: _advance_schedule(delivery_id=pk, from_channel=channel)
            )
        refs = sorted({ref for (_, _, ref, _, _) in outcomes if ref})
        if refs:
            transaction.on_commit(lambda: held_receipts_apply(channel=channel, refs=refs))
    return sum(1 for r in results if r.ok)


def _claims_insert(*, delivery_ids: list[int], channel: str, token: str) -> list[_Claim]:
    """Claim (delivery, channel) for these deliveries in one statement; return the
    claims this call won, in insertion order. Rows another worker inserted first
    stay theirs: ON CONFLICT DO NOTHING on the unique pair, and RETURNING names
    only the rows this statement inserted (PostgreSQL; SQLite 3.35+).

    One INSERT ... SELECT ... RETURNING rather than ``bulk_create`` and a query
    for the rows it made: building and binding the rows in Python, and the
    second query's id list, cost more than half a millisecond a member, most of
    a city drill's own time. ``token`` still marks which worker inserted a row."""
    attempt = NotificationAttempt._meta
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(attempt.get_field(name).column)
        for name in (
            "delivery",
            "channel",
            "status",
            "detail",
            "created_at",
            "provider_ref",
            "error_code",
            "claim",
        )
    )
    delivery_pk = quote(Delivery._meta.pk.column)
    marks = ", ".join(["%s"] * len(delivery_ids))
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        # "WHERE" before ON CONFLICT also settles SQLite's parsing ambiguity of
        # INSERT ... SELECT ... ON CONFLICT.
        cursor.execute(
            f"INSERT INTO {quote(attempt.db_table)} ({columns}) "  # noqa: S608 - names are ours
            f"SELECT {delivery_pk}, %s, %s, '', %s, '', '', %s "
            f"FROM {quote(Delivery._meta.db_table)} WHERE {delivery_pk} IN ({marks}) "
            f"ON CONFLICT DO NOTHING "
            f"RETURNING {quote(attempt.pk.column)}, {quote(attempt.get_field('delivery').column)}",
            [channel, NotificationAttempt.Status.SENDING, now, token, *delivery_ids],
        )
        return sorted(_Claim(pk, delivery_id) for pk, delivery_id in cursor.fetchall())


class _Claim(NamedTuple):
    pk: int
    delivery_id: int


def _reached_record(
    *,
    channel: str,
    attempts: Sequence[NotificationAttempt | _Claim],
    deliveries: Mapping[int, Delivery | Target],
    at: dt.datetime,
) -> None:
    """A ``reached`` event per member on the incident's timeline and the supervisors'
    feed. Caller holds a transaction."""
    by_incident: dict[int, list[IncidentEvent]] = defaultdict(list)
    incidents: dict[int, Incident] = {}
    for attempt in attempts:
        delivery = deliveries[attempt.delivery_id]
        incident = delivery.dispatch.incident
        incidents[incident.pk] = incident
        by_incident[incident.pk].append(
            IncidentEvent(
                type=IncidentEvent.Type.REACHED,
                unit_id=delivery.member.unit_id,
                member_id=delivery.member_id,
                data={"channel": channel, "at": at.isoformat()},
            )
        )
    for incident_id, events in by_incident.items():
        _events_push(incident=incidents[incident_id], events=events)


def _events_push(*, incident: Incident, events: list[IncidentEvent]) -> None:
    recorded = events_record(incident_id=incident.pk, events=events)
    incident.refresh_from_db(fields=["status", "flagged", "last_seq"])
    messages = []
    for event in recorded:
        payload = payloads.update(event=event, incident=incident)
        messages.append((incident_group(incident.pk), payload))
        messages += to_supervisors(incident, payload)
    push_on_commit(messages)


def _retry_record(*, channel: str, retry, incidents: Sequence[Incident]) -> None:
    """The timeline says a provider call is being retried (timeout, 5xx)."""
    for incident in incidents:
        with transaction.atomic():
            _events_push(
                incident=incident,
                events=[
                    IncidentEvent(
                        type=IncidentEvent.Type.NOTIFY_RETRY,
                        data={
                            "channel": channel,
                            "provider": retry.provider,
                            "attempt": retry.attempt,
                            "delay_s": retry.delay_s,
                            "detail": retry.detail,
                        },
                    )
                ],
            )


def _advance_schedule(*, delivery_id: int, from_channel: str) -> None:
    # Imported here: tasks imports this module at its top (cycle notify <-> tasks).
    from .tasks import notify_chain_advance

    try:
        notify_chain_advance.apply_async((delivery_id, from_channel), expires=120)
    except Exception:
        log.exception("could not enqueue chain advance for delivery %s", delivery_id)


def chain_advance(*, delivery_id: int, from_channel: str) -> int:
    """Move one member past a failed channel to the next one of the chain, now.

    Steps whose condition no longer holds (the alert was answered) end it; a
    channel already tried is passed over if it failed, and waited for if it is
    still out. When nothing is left, the member may be unreachable.
    """
    chain = settings.NOTIFY_CHAIN
    channels = [spec["channel"] for spec in chain]
    if from_channel not in channels:
        return 0
    for spec in chain[channels.index(from_channel) + 1 :]:
        channel = spec["channel"]
        delivery = (
            _pending_all(condition=spec.get("while", "unanswered"))
            .filter(pk=delivery_id)
            .select_related("member", "dispatch__incident__region")
            .first()
        )
        if delivery is None:
            if not _pending_all(condition="unanswered").filter(pk=delivery_id).exists():
                return 0  # answered, stood down, closed or off duty: nothing to chase
            continue  # delivered to the page: the push step is not needed
        tried = NotificationAttempt.objects.filter(delivery_id=delivery_id, channel=channel).first()
        if tried is None:
            return notify_deliveries(channel=channel, deliveries=[delivery])
        if tried.reached_at is not None or tried.status in (
            NotificationAttempt.Status.SENDING,
            NotificationAttempt.Status.SENT,
        ):
            return 0  # it reached the member, or is still out and its receipt decides
    unreachable_flag(delivery_id=delivery_id)
    return 0


def unreachable_flag(*, delivery_id: int) -> bool:
    """Flag a member whom every channel of the chain failed: an ``unreachable``
    event (联系不上，需电台跟进) on the timeline and the supervisors' feed, once."""
    delivery = (
        _pending_all(condition="undelivered")
        .filter(pk=delivery_id)
        .select_related("member", "dispatch__incident__region")
        .first()
    )
    if delivery is None:
        return False
    attempts = {a.channel: a for a in NotificationAttempt.objects.filter(delivery_id=delivery_id)}
    for spec in settings.NOTIFY_CHAIN:
        attempt = attempts.get(spec["channel"])
        if attempt is None or attempt.reached_at is not None:
            return False
        if attempt.status not in (
            NotificationAttempt.Status.FAILED,
            NotificationAttempt.Status.SKIPPED,
        ):
            return False
    try:
        with transaction.atomic():
            NotificationAttempt.objects.create(
                delivery_id=delivery_id,
                channel="radio",
                status=NotificationAttempt.Status.RADIO,
                detail="every channel failed",
            )
            _events_push(
                incident=delivery.dispatch.incident,
                events=[
                    IncidentEvent(
                        type=IncidentEvent.Type.UNREACHABLE,
                        unit_id=delivery.member.unit_id,
                        member_id=delivery.member_id,
                        data={
                            "channels": [spec["channel"] for spec in settings.NOTIFY_CHAIN],
                            "phone_tail": delivery.member.phone[-4:],
                        },
                    )
                ],
            )
    except IntegrityError:
        return False  # flagged already
    return True


# --- Provider receipts -----------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """One provider report on one message: SMS delivered / failed, call answered / not."""

    channel: str
    provider_ref: str
    phone: str
    reached: bool
    error_code: str = ""
    answered: bool | None = None


def attempt_for(*, channel: str, provider_ref: str, phone: str) -> NotificationAttempt | None:
    """The attempt a provider's id and number name, or None (not ours, or forged)."""
    if not provider_ref:
        return None
    try:
        phone = phones.phone_normalize(phone.removeprefix("+86").removeprefix("0086"))
    except phones.PhoneInvalid:
        return None
    return (
        NotificationAttempt.objects.filter(
            channel=channel, provider_ref=provider_ref, delivery__member__phone=phone
        )
        .select_related("delivery__member", "delivery__dispatch__incident__region")
        .first()
    )


def receipt_record(receipt: Receipt) -> bool:
    """Apply one receipt to the member's attempt for that channel; False if it names
    no message of ours (yet: it is held for its id, ``_receipt_hold``). First word
    wins: a late duplicate changes nothing."""
    if _receipt_apply(receipt):
        return True
    _receipt_hold(receipt)
    return False


def _receipt_apply(receipt: Receipt) -> bool:
    attempt = attempt_for(
        channel=receipt.channel, provider_ref=receipt.provider_ref, phone=receipt.phone
    )
    if attempt is None:
        return False
    now = timezone.now()
    with transaction.atomic():
        pending = NotificationAttempt.objects.filter(pk=attempt.pk, reached_at=None).exclude(
            status=NotificationAttempt.Status.FAILED
        )
        if receipt.reached:
            won = pending.update(
                reached_at=now,
                answered=receipt.answered,
                status=NotificationAttempt.Status.SENT,
                error_code=receipt.error_code[:64],
            )
            if won:
                _reached_record(
                    channel=receipt.channel,
                    attempts=[attempt],
                    deliveries={attempt.delivery_id: attempt.delivery},
                    at=now,
                )
        else:
            won = pending.update(
                status=NotificationAttempt.Status.FAILED,
                answered=receipt.answered,
                error_code=receipt.error_code[:64],
            )
            if won:
                _events_push(
                    incident=attempt.delivery.dispatch.incident,
                    events=[
                        IncidentEvent(
                            type=IncidentEvent.Type.NOTIFY_FAILED,
                            unit_id=attempt.delivery.member.unit_id,
                            member_id=attempt.delivery.member_id,
                            data={
                                "channel": receipt.channel,
                                "error_code": receipt.error_code[:64],
                                "at": now.isoformat(),
                            },
                        )
                    ],
                )
                transaction.on_commit(
                    lambda: _advance_schedule(
                        delivery_id=attempt.delivery_id, from_channel=receipt.channel
                    )
                )
    return True


def _receipt_hold(receipt: Receipt) -> None:
    """Keep a receipt whose id is not recorded yet (it may have outrun its send),
    and drop the ones held longer than ``RECEIPT_HOLD_S``."""
    if not receipt.provider_ref or not receipt.phone:
        return
    now = timezone.now()
    HeldReceipt.objects.filter(
        received_at__lt=now - dt.timedelta(seconds=settings.RECEIPT_HOLD_S)
    ).delete()
    HeldReceipt.objects.create(
        channel=receipt.channel,
        provider_ref=receipt.provider_ref[:64],
        phone=receipt.phone[:20],
        reached=receipt.reached,
        answered=receipt.answered,
        error_code=receipt.error_code[:64],
    )


def held_receipts_apply(*, channel: str, refs: Sequence[str]) -> int:
    """Apply the held receipts that name ids just recorded; each once (the delete
    is the claim). Returns how many named a message of ours; the others (an id
    of ours with another number) are dropped, not held again."""
    applied = 0
    for held in HeldReceipt.objects.filter(channel=channel, provider_ref__in=refs):
        if not HeldReceipt.objects.filter(pk=held.pk).delete()[0]:
            continue  # another worker applied it
        applied += _receipt_apply(
            Receipt(
                channel=held.channel,
                provider_ref=held.provider_ref,
                phone=held.phone,
                reached=held.reached,
                error_code=held.error_code,
                answered=held.answered,
            )
        )
    return applied


def _alert_notifications(
    *, channel: str, deliveries: Sequence[Delivery | Target]
) -> list[Notification]:
    """One text per dispatch (its members share incident and distance), the
    incident's labels once per incident, then the member's fields: translating
    the labels per unit cost a city drill seconds (each choice label is looked
    up anew by ``get_FOO_display``)."""
    per_incident: dict[int, _IncidentText] = {}
    per_dispatch: dict[int, Notification] = {}
    notes = []
    for delivery in deliveries:
        first = per_dispatch.get(delivery.dispatch_id)
        if first is None:
            incident = delivery.dispatch.incident
            parts = per_incident.get(incident.pk)
            if parts is None:
                parts = per_incident[incident.pk] = _incident_text(incident)
            note = per_dispatch[delivery.dispatch_id] = _alert_for(
                channel=channel, parts=parts, delivery=delivery
            )
        else:
            member = delivery.member
            # Not dataclasses.replace: its per-call field walk was a tenth of a
            # city drill's own time.
            note = Notification(
                first.channel,
                member.pk,
                member.name,
                member.phone,
                first.text,
                first.title,
                first.payload,
                first.incident_id,
            )
        notes.append(note)
    return notes


@dataclass(frozen=True)
class _IncidentText:
    incident: Incident
    title: str
    where: str
    kind_label: str


def _incident_text(incident: Incident) -> _IncidentText:
    kind_label = str(incident.get_kind_display())
    title = _("【应急警情】%(kind)s（%(sev)s）") % {
        "kind": kind_label,
        "sev": incident.get_severity_display(),
    }
    where = incident.address or f"{incident.lat:.5f},{incident.lon:.5f}"
    return _IncidentText(incident=incident, title=title, where=where, kind_label=kind_label)


def alert_notification(*, channel: str, delivery: Delivery) -> Notification:
    return _alert_for(
        channel=channel, parts=_incident_text(delivery.dispatch.incident), delivery=delivery
    )


def _alert_for(*, channel: str, parts: _IncidentText, delivery: Delivery | Target) -> Notification:
    incident = parts.incident
    member = delivery.member
    text = _("%(title)s 地点：%(where)s，距你单元约 %(d)d 米。") % {
        "title": parts.title,
        "where": parts.where,
        "d": delivery.dispatch.distance_m,
    }
    if channel == "sms":
        text += " " + _("回复 1 接受，2 拒绝。")
    elif channel == "voice":
        text += " " + _("请打开手机应用接受或拒绝。")
    return Notification(
        channel=channel,
        member_id=member.pk,
        member_name=member.name,
        phone=member.phone,
        text=text,
        title=parts.title,
        incident_id=incident.pk,
        payload={
            "type": "incident.alert",
            "incident_id": incident.pk,
            "kind": incident.kind,
            # Template parameters for the SMS / voice providers (dispatch.gateways).
            "kind_label": parts.kind_label,
            "place": parts.where,
            "distance_m": delivery.dispatch.distance_m,
            "severity": incident.severity,
            "url": f"/m/#incident-{incident.pk}",
            "tag": f"incident-{incident.pk}",
        },
    )
