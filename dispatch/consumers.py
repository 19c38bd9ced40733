"""The member's websocket: a thin edge over dispatch services and selectors."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http.cookie import parse_cookie
from django.utils import timezone
from django.utils.translation import gettext as _

from units.models import Member

from . import inputs, selectors, services, supervision
from .actions import next_actions
from .events import db_call, db_read, incident_group, member_group, unit_group
from .inputs import JSONRefused, json_loads
from .socket_pass import PASS_COOKIE

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_IDLE = 4408


class _JsonEdge(AsyncJsonWebsocketConsumer):
    """What both sockets share: reading a client frame, error frames, refusing a
    socket, pushed frames.

    A client frame that is binary, too large, not JSON or nested too deep gets
    an ``error`` frame and the socket stays up (channels' own ``receive`` would
    raise and close it with 1011).
    """

    # True while a handler runs (dispatch): a pushed frame then waits in the
    # inbox, behind what the handler writes (a resume's replay).
    handling = False

    def _open(self) -> bool:
        """Is the socket past its checks (signed in, allowed)? Frames before are dropped."""
        raise NotImplementedError

    async def __call__(self, scope, receive, send) -> None:
        # config.server's daphne offers the socket's frames to ``receive_now``
        # first, through the inbox ``receive`` reads (config.pubsub ``_Inbox``).
        inbox = getattr(receive, "__self__", None)
        take = getattr(self, "receive_now", None)
        if take is None or not hasattr(inbox, "taker"):
            inbox = None
        else:
            inbox.taker = take
        try:
            await super().__call__(scope, receive, send)
        finally:
            if inbox is not None:
                inbox.taker = None
            # The socket's own channel, however the consumer stopped (see
            # config/pubsub.py): left subscribed, it is a leak per socket.
            forget = getattr(getattr(self, "channel_layer", None), "forget_channel", None)
            channel = getattr(self, "channel_name", None)
            if forget is not None and channel is not None:
                forget(channel)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # channels' own dispatch first runs close_old_connections on the
        # database thread for every message, pushed frames included: all of a
        # process's sockets share that one thread, so a city-wide wave of frames
        # queued behind every handshake, ack and resume. Every database call
        # here goes through ``db_call`` (channels' database_sync_to_async),
        # which closes old connections on the thread itself, before and after.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        self.handling = True
        try:
            await handler(message)
        finally:
            self.handling = False

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if not self._open():
            return
        self._heard()
        limit = settings.WS_MAX_FRAME_BYTES
        if text_data is None or len(text_data) > limit:
            await self._error(
                None,
                "bad_frame",
                _("消息须为不超过 %(kb)s KB 的 JSON 文本。") % {"kb": limit // 1024},
            )
            return
        try:
            content = await self.decode_json(text_data)
        except JSONRefused as exc:
            await self._error(None, "bad_json", _("消息不是有效的 JSON。") + " " + str(exc))
            return
        await self.receive_json(content)

    def _heard(self) -> None:
        pass

    @classmethod
    async def decode_json(cls, text_data):
        return json_loads(text_data)

    async def _error(self, msg_id, code: str, message: str, **extra) -> None:
        await self.send_json(
            {"type": "error", "id": msg_id, "code": code, "message": message, **extra}
        )

    async def _refuse(self, code: int, error: str, message: str) -> None:
        await self._error(None, error, message)
        await self.close(code=code)

    async def push(self, event: dict[str, Any]) -> None:
        # dispatch.events serialises each frame once for all its sockets, and
        # sends a group's frames of one commit as one message (events.coalesce).
        texts = event.get("texts")
        if texts is not None:
            for text in texts:
                await self.send(text_data=text)
            return
        text = event.get("text")
        if text is not None:
            await self.send(text_data=text)
        else:
            await self.send_json(event["payload"])


class MemberConsumer(_JsonEdge):
    member: Member | None = None
    session_key: str | None = None
    closing = False
    # Incident id -> when its alert frame was last written to this socket
    # (monotonic); None until the first (no dict per idle socket).
    written: dict[int, float] | None = None

    async def _refuse(self, code: int, error: str, message: str) -> None:
        self.closing = True
        await super()._refuse(code, error, message)

    async def connect(self) -> None:
        # No session or auth middleware in front of this socket (dispatch/routing.py):
        # the cookies sign the member in with one query (dispatch.socket_pass).
        cookies = _cookies(self.scope)
        session_key = cookies.get(settings.SESSION_COOKIE_NAME) or None
        self.member = await db_call(selectors.member_for_socket)(
            session_key=session_key, member_pass=cookies.get(PASS_COOKIE)
        )
        await self.accept()
        if self.member is None:
            await self._refuse(CLOSE_UNAUTHENTICATED, "unauthenticated", _("请先登录。"))
            return
        if not (self.member.is_active and self.member.unit.is_active):
            await self._refuse(CLOSE_FORBIDDEN, "inactive", _("该队员或其单元已停用。"))
            return
        self.in_unit_group = False
        await self.channel_layer.group_add(member_group(self.member.pk), self.channel_name)
        if self.member.on_duty:
            await self._join_unit()
        self.last_heard = time.monotonic()
        self.session_key = session_key
        _heartbeat_for_loop().add(self)
        await self.send_json(
            {
                "type": "hello",
                "id": None,
                "member": {"id": self.member.pk, "name": self.member.name},
                "unit": {
                    "id": self.member.unit_id,
                    "name": self.member.unit.name,
                    "lat": self.member.unit.lat,
                    "lon": self.member.unit.lon,
                },
                "on_duty": self.member.on_duty,
            }
        )
        # From now on pushed frames are written from the channel layer's reader,
        # when this socket has nothing else to do (write_now).
        register = getattr(self.channel_layer, "write_directly", None)
        if register is not None and hasattr(self.base_send, "text_now"):
            register(self.channel_name, self.write_now)

    async def disconnect(self, code: int) -> None:
        _heartbeat_for_loop().discard(self)
        if self.member is not None:
            await self.channel_layer.group_discard(member_group(self.member.pk), self.channel_name)
            await self.channel_layer.group_discard(
                unit_group(self.member.unit_id), self.channel_name
            )

    async def _join_unit(self) -> None:
        await self.channel_layer.group_add(unit_group(self.member.unit_id), self.channel_name)
        self.in_unit_group = True

    async def _leave_unit(self) -> None:
        await self.channel_layer.group_discard(unit_group(self.member.unit_id), self.channel_name)
        self.in_unit_group = False

    # --- client -> server ---------------------------------------------------------------

    def _open(self) -> bool:
        return self.member is not None

    def _heard(self) -> None:
        self.last_heard = time.monotonic()

    async def receive_json(self, content: Any, **kwargs) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self._error(None, "bad_message", _("消息须为带 type 字段的 JSON 对象。"))
            return
        msg_id = content.get("id")
        handler = self._handlers.get(content["type"])
        if handler is None:
            await self._error(
                msg_id, "unknown_type", _("未知消息类型：%(t)s") % {"t": content["type"][:40]}
            )
            return
        try:
            await handler(self, msg_id, content)
        except _BadField as exc:
            await self._error(msg_id, "bad_field", exc.message, field=exc.field)
        except services.ActionRefused as exc:
            await self._error(msg_id, exc.code, exc.message)
        except ValidationError as exc:
            await self._error(msg_id, "invalid", "; ".join(exc.messages))

    async def _on_pong(self, msg_id, content) -> None:
        pass

    async def _on_ping(self, msg_id, content) -> None:
        await self.send_json({"type": "pong", "id": msg_id})

    async def _on_ack(self, msg_id, content, *, seen: bool = False) -> None:
        self._ack_add(msg_id, content, seen=seen)

    def _ack_add(self, msg_id, content, *, seen: bool) -> None:
        incident_id = _int_field(content, "incident_id")
        # Answered ({"type": "ok", "recorded": first time?}) when the process's
        # batch is stored: see _AckBatch.
        _batch_for_loop(_AckBatch).add(
            self,
            msg_id,
            services.DeliveryAck(incident_id=incident_id, member=self.member, seen=seen),
        )

    def receive_now(self, message: dict[str, Any]) -> bool:
        """Take a receipt (``ack``, ``seen``) or a ``pong`` from the phone there
        and then, from daphne's protocol (config/server.py), instead of through
        this consumer's task; whether it was taken.

        A city-wide alert brings a socket daphne 5,000 receipts within a second:
        through the task each was a queue wake-up, an ``asyncio.wait`` and a
        new receive task (bench/city.py --profile). Offered only while the
        consumer waits with nothing queued (``_Inbox.offer``); not taken while a
        handler runs, by a socket signed out or closing, nor anything this does
        not read plainly (another type, a bad field, bad JSON): those go the
        usual way, in order, and get their error frames there.
        """
        if self.handling or self.closing or self.member is None:
            return False
        text = message.get("text")
        if text is None or len(text) > settings.WS_MAX_FRAME_BYTES:
            return False
        try:
            content = json_loads(text)
        except JSONRefused:
            return False
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "pong":
            self._heard()
            return True
        if kind not in ("ack", "seen"):
            return False
        try:
            self._ack_add(content.get("id"), content, seen=kind == "seen")
        except _BadField:
            return False
        self._heard()
        return True

    async def _on_seen(self, msg_id, content) -> None:
        await self._on_ack(msg_id, content, seen=True)

    async def _on_action(self, msg_id, content) -> None:
        incident_id = _int_field(content, "incident_id")
        lat, lon = _optional_latlon(content)
        # The phone acked before it tapped: the timeline says delivered, then accepted.
        await _batch_for_loop(_AckBatch).drain(self)
        dispatch = await db_call(services.dispatch_act)(
            incident_id=incident_id, member=self.member, action=content["type"], lat=lat, lon=lon
        )
        await self.send_json(
            {
                "type": "ok",
                "id": msg_id,
                "incident_id": incident_id,
                "action": content["type"],
                "dispatch_status": dispatch.status,
                "next_actions": next_actions(dispatch.status),
            }
        )

    async def _on_location(self, msg_id, content) -> None:
        lat, lon = _optional_latlon(content)
        if lat is None:
            raise _BadField("lat", _("缺少坐标。"))
        accuracy = content.get("accuracy")
        try:
            accuracy = inputs.accuracy_clean(accuracy)
        except ValidationError as exc:
            raise _BadField("accuracy", exc.message_dict["accuracy"][0]) from exc
        incident_id = content.get("incident_id")
        if incident_id is not None:
            incident_id = _int_field(content, "incident_id")
        # Answered (ok or error) when the process's batch is stored: see _LocationBatch.
        _batch_for_loop(_LocationBatch).add(
            self,
            msg_id,
            services.LocationReport(
                member=self.member, lat=lat, lon=lon, accuracy_m=accuracy, incident_id=incident_id
            ),
        )

    async def _on_resume(self, msg_id, content) -> None:
        last = content.get("last_event_id") or 0
        if not isinstance(last, int) or isinstance(last, bool) or not 0 <= last <= inputs.ID_MAX:
            raise _BadField("last_event_id", _("last_event_id 须为非负整数。"))
        frames = await db_read(selectors.member_replay)(member=self.member, last_event_id=last)
        for frame in frames:
            await self.send_json({**frame, "replay": True})
        self._wrote(frames)
        await self.send_json(
            {
                "type": "resumed",
                "id": msg_id,
                "count": len(frames),
                # Lookback frames may be older than the cursor: never move it back.
                "last_event_id": max([last, *(f["id"] for f in frames)]),
            }
        )

    _handlers = {
        "pong": _on_pong,
        "ping": _on_ping,
        "ack": _on_ack,
        "seen": _on_seen,
        "accept": _on_action,
        "decline": _on_action,
        "on_site": _on_action,
        "handled": _on_action,
        "location": _on_location,
        "resume": _on_resume,
    }

    # --- server -> client (channel layer handlers) ------------------------------------

    async def member_duty(self, event: dict[str, Any]) -> None:
        if event["on_duty"] and not self.in_unit_group:
            await self._join_unit()
        elif not event["on_duty"] and self.in_unit_group:
            await self._leave_unit()
        await self.send_json({"type": "duty", "id": None, "on_duty": event["on_duty"]})

    async def member_session_end(self, event: dict[str, Any]) -> None:
        await self._refuse(CLOSE_UNAUTHENTICATED, "signed_out", _("已退出登录。"))

    async def member_revoked(self, event: dict[str, Any]) -> None:
        """The member, its unit or its login was deactivated (``roster_saved_close_revoked``)."""
        await self._refuse(CLOSE_FORBIDDEN, "inactive", _("该队员或其单元已停用。"))

    async def push(self, event: dict[str, Any]) -> None:
        # A socket being closed (signed out, deactivated) forwards nothing more,
        # even frames already queued for it before the close.
        if self.closing:
            return
        await super().push(event)
        self._wrote(_pushed_frames(event), live=True)

    def write_now(self, message: dict[str, Any]) -> bool:
        """Write a ``push`` message here and now, from the channel layer's reader
        (``config.pubsub``) through daphne's protocol (``config.server``),
        instead of through this consumer's task. Whether it was taken: not
        while a handler runs, nor another kind of message (they go to the inbox,
        in order)."""
        if self.handling or message.get("type") != "push":
            return False
        if self.closing:
            return True  # dropped, as push() drops it
        texts = message.get("texts")
        if texts is None:
            text = message.get("text")
            if text is None:
                return False
            texts = (text,)
        for text in texts:
            self.base_send.text_now(text)
        self._wrote(_pushed_frames(message), live=True)
        return True

    def _wrote(self, frames, *, live: bool = False) -> None:
        """Note the alerts among ``frames`` as written to this socket now;
        ``live``: pushed as a wave goes out (not a replay or a re-send), which
        holds the receipts (``_AckBatch``)."""
        for incident_id in _alert_ids(frames):
            if self.written is None:
                self.written = {}
            self.written[incident_id] = now = time.monotonic()
            if live:
                _AlertWrites.last = now

    def alerts_written_since(self, since: float) -> set[int]:
        """Incidents whose alert this socket wrote at or after ``since``
        (monotonic), or is about to write (queued for it in the channel layer:
        a city-wide alert's frames take seconds to be written to thousands of
        sockets). Older notes are forgotten."""
        queued = set(_alert_ids(_queued_frames(self.channel_layer, self.channel_name)))
        if not self.written:
            return queued
        self.written = {i: at for i, at in self.written.items() if at >= since} or None
        return queued | set(self.written or ())

    # --- heartbeat (driven by _MemberHeartbeat, one per process) ---------------------

    async def _beat(self, *, allowed: bool, frames: list[dict[str, Any]]) -> None:
        """One heartbeat of this socket: refuse it if its member or session is no
        longer allowed, else ping and re-send alerts still unacked.

        The channel layer is at-most-once and a Redis outage loses frames without
        closing any socket, so the phone cannot know to resume: the stored
        ``Delivery`` rows can. Re-sent as live frames (the phone rings for a new
        one and drops an id it has, acking it again).
        """
        if not allowed:
            await self._refuse(CLOSE_FORBIDDEN, "revoked", _("登录已失效或队员已停用。"))
            return
        await self.send_json({"type": "ping", "id": None})
        for frame in frames:
            await self.send_json(frame)
        self._wrote(frames)


def _pushed_frames(message: dict[str, Any]) -> Sequence[dict[str, Any] | None]:
    """The frames a ``push`` message carries (dispatch.events: one, or a run)."""
    payloads = message.get("payloads")
    return payloads if payloads is not None else (message.get("payload"),)


def _alert_id(frame: dict[str, Any] | None) -> int | None:
    """The incident of an alert frame; None for any other frame."""
    if frame is not None and frame.get("type") == "incident.alert":
        return frame["incident"]["id"]
    return None


def _alert_ids(frames) -> Iterator[int]:
    for frame in frames:
        if (incident_id := _alert_id(frame)) is not None:
            yield incident_id


def _queued_frames(layer, channel: str | None) -> Iterator[dict[str, Any] | None]:
    """The frames the channel layer holds for ``channel``, not yet dispatched
    (config/pubsub.py; another layer: none known)."""
    pending = getattr(layer, "pending", None)
    if pending is None or channel is None:
        return
    for message in pending(channel):
        if message.get("type") == "push":
            yield from _pushed_frames(message)


class _MemberHeartbeat:
    """The heartbeat of every member socket of one process (one event loop).

    Every ``WS_HEARTBEAT_S`` each socket's beat comes: a socket silent for
    ``WS_IDLE_CLOSE_S`` is closed, the others are checked with one database call
    for all of them (``members_heartbeat``: member and login still active,
    session still valid, alerts still unacked) and pinged. A heartbeat task with
    three queries per socket kept a daphne's one database thread busy at a few
    thousand sockets (bench/city.py).

    The sockets beat a slice at a time, one slice every
    ``WS_HEARTBEAT_SLICE_S``, so each socket once per ``WS_HEARTBEAT_S``. All at
    once, 4,000 pings and their 4,000 pongs held back any alert's frames that
    came in between (wave 1 p99 over a second). A tenth at a time was still 500
    pings, 500 pongs and a database call for 500 sockets every 2 s at 5,000
    sockets a daphne, and the alerts that came meanwhile were the slowest
    (bench/city.py: wave 1 p99 60-120 ms with it, 32 ms without a heartbeat).
    """

    def __init__(self) -> None:
        count = max(1, round(settings.WS_HEARTBEAT_S / settings.WS_HEARTBEAT_SLICE_S))
        self.period = settings.WS_HEARTBEAT_S / count  # between two slices' beats
        self.slices: list[set[MemberConsumer]] = [set() for _ in range(count)]
        self.slots: dict[MemberConsumer, int] = {}
        self.task: asyncio.Task | None = None

    def add(self, socket: MemberConsumer) -> None:
        if socket not in self.slots:
            # The smallest slice: sockets that closed leave theirs uneven.
            slot = min(range(len(self.slices)), key=lambda i: len(self.slices[i]))
            self.slots[socket] = slot
            self.slices[slot].add(socket)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    def discard(self, socket: MemberConsumer) -> None:
        slot = self.slots.pop(socket, None)
        if slot is not None:
            self.slices[slot].discard(socket)
        if not self.slots and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        """One slice every ``period``, at a fixed rate: a beat's database call
        does not push the next ones later. Slept after each beat instead, the
        round took ``WS_HEARTBEAT_S`` plus every slice's call, and with the
        database thread busy (a city-wide alert's receipts) the pings came
        further apart than the page's two heartbeats of silence: every idle
        phone would have taken its socket for dead and reconnected. A beat
        running later than a whole period is not caught up in a burst."""
        loop = asyncio.get_running_loop()
        slot = 0
        due = loop.time() + self.period
        with contextlib.suppress(asyncio.CancelledError):
            while self.slots:
                await asyncio.sleep(max(0.0, due - loop.time()))
                try:
                    await self.beat(slot=slot)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # One bad beat (the database away a moment) must not stop
                    # the heartbeat of every socket in the process.
                    log.exception("member heartbeat failed; trying again next beat")
                slot = (slot + 1) % len(self.slices)
                due = max(due + self.period, loop.time())

    async def beat(self, *, slot: int | None = None) -> None:
        """Beat the sockets of ``slot`` (None: every socket)."""
        now = time.monotonic()
        live: list[MemberConsumer] = []
        for socket in list(self.slots if slot is None else self.slices[slot]):
            if socket.closing or socket.member is None:
                continue
            if now - socket.last_heard > settings.WS_IDLE_CLOSE_S:
                socket.closing = True
                await _quietly(socket.close(code=CLOSE_IDLE))
            else:
                live.append(socket)
        if not live:
            return
        before = timezone.now() - dt.timedelta(seconds=settings.WS_REDELIVER_AFTER_S)
        # An alert already in a member's sockets is not sent again while its ack
        # may be on its way (every socket of the member in this beat wrote it).
        lately: dict[int, set[int]] = {}
        since = now - settings.WS_REDELIVER_WRITTEN_S
        for socket in live:
            wrote = socket.alerts_written_since(since)
            pk = socket.member.pk
            lately[pk] = wrote if pk not in lately else lately[pk] & wrote
        allowed, live_keys, frames = await db_call(selectors.members_heartbeat)(
            sockets=[(s.member.pk, s.session_key) for s in live],
            unacked_sent_before=before,
            written_lately={pk: ids for pk, ids in lately.items() if ids},
        )
        for i, socket in enumerate(live):
            await _turn(i)
            if socket.closing:
                continue
            ok = socket.member.pk in allowed and (
                socket.session_key is None or socket.session_key in live_keys
            )
            resend = frames.get(socket.member.pk, [])
            if resend:
                # A live push written while the rows were read is not sent again.
                wrote = socket.alerts_written_since(since)
                resend = [f for f in resend if _alert_id(f) not in wrote]
            await _quietly(socket._beat(allowed=ok, frames=resend))


class _AlertWrites:
    """When this process last wrote a pushed alert frame to a socket (monotonic)."""

    last = -math.inf


class _SocketBatch:
    """Requests from every member socket of one process, stored together.

    Each waits up to ``wait_s``; then one database call stores a batch of them
    (``_store``) and answers each socket. One call per request kept daphne's one
    database thread busy, and every tap and board frame queued behind them.
    """

    wait_s: float
    most: int

    def __init__(self) -> None:
        self.pending: list[tuple[MemberConsumer, Any, Any]] = []
        self.task: asyncio.Task | None = None
        # One batch stored at a time: ``drain`` then also waits for one in flight.
        self.storing = asyncio.Lock()

    def add(self, socket: MemberConsumer, msg_id, item) -> None:
        self.pending.append((socket, msg_id, item))
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._flush_soon())

    async def drain(self, socket: MemberConsumer) -> None:
        """Store now whatever ``socket`` has waiting or in flight (its later
        request must come after)."""
        if self.storing.locked() or any(s is socket for s, _i, _r in self.pending):
            await self._flush()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.wait_s)
        await self._flush()

    async def _flush(self) -> None:
        async with self.storing:
            while self.pending:
                batch, self.pending = self.pending[: self.most], self.pending[self.most :]
                await self._store(batch)

    async def _store(self, batch: list[tuple[MemberConsumer, Any, Any]]) -> None:
        raise NotImplementedError


class _LocationBatch(_SocketBatch):
    """Hundreds of responders each send a position every few seconds (bench/board.py).

    Stored by one ``member_locations_record`` call; each socket then gets its
    ``ok`` or its error frame, and the boards their frames after commit.
    """

    wait_s = 0.2
    most = 500

    async def _store(self, batch) -> None:
        try:
            results = await db_call(services.member_locations_record)(
                reports=[report for _s, _i, report in batch]
            )
        except Exception:
            log.exception("storing %s positions failed", len(batch))
            failed = services.ActionRefused("unavailable", _("位置暂未保存，请稍后再试。"))
            results = [(None, failed)] * len(batch)
        for i, ((socket, msg_id, _report), (_row, refused)) in enumerate(
            zip(batch, results, strict=True)
        ):
            await _turn(i)
            if refused is None:
                await _quietly(socket.send_json({"type": "ok", "id": msg_id}))
            else:
                await _quietly(socket._error(msg_id, refused.code, refused.message))


class _AckBatch(_SocketBatch):
    """Delivery receipts: a city-wide alert brings one from every phone within a
    second, and a transaction each queued thousands on daphne's one database
    thread in front of the next alert (bench/city.py).

    Stored by one ``deliveries_ack`` call; each socket then gets its ``ok``
    (``recorded`` true only the first time), the boards their ``delivered`` and
    ``seen`` frames after commit. A batch that fails is answered with an error
    frame: the alert stays unacked, so the heartbeat sends it again and the
    phone acks again.

    A receipt without an id (the phone's own, sent as an alert shows) is
    answered by nothing, stored or not: nobody waits for it, and for a
    city-wide alert the answers were as many frames again as the alerts.
    """

    wait_s = 0.05
    most = 500
    # Alerts first. A city-wide alert takes this process seconds to write to
    # its thousands of sockets, and their receipts come back meanwhile: stored
    # then, on the database thread, they took the interpreter from the writes
    # (bench/city.py: the last frame 7.2 s after the first with receipts, 4.4 s
    # without). So a batch waits while alert frames are still being written
    # (one in the last ``quiet_s``), ``WS_RECEIPT_HOLD_S`` at most. A tap is not
    # held (``drain``), nor is the heartbeat: an alert written lately is not re-sent.
    quiet_s = 0.1

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.wait_s)
        until = time.monotonic() + settings.WS_RECEIPT_HOLD_S
        while time.monotonic() < until and time.monotonic() - _AlertWrites.last < self.quiet_s:
            await asyncio.sleep(self.quiet_s)
        await self._flush()

    async def _store(self, batch) -> None:
        try:
            firsts = await db_call(services.deliveries_ack)(acks=[ack for _s, _i, ack in batch])
        except Exception:
            log.exception("storing %s delivery receipts failed", len(batch))
            for socket, msg_id, _ack in batch:
                if msg_id is not None:
                    await _quietly(
                        socket._error(msg_id, "unavailable", _("回执暂未保存，请稍后再试。"))
                    )
            return
        answered = [
            (socket, msg_id, first)
            for (socket, msg_id, _ack), first in zip(batch, firsts, strict=True)
            if msg_id is not None
        ]
        for i, (socket, msg_id, first) in enumerate(answered):
            await _turn(i)
            await _quietly(socket.send_json({"type": "ok", "id": msg_id, "recorded": first}))


_batches: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[type[_SocketBatch], _SocketBatch]
] = weakref.WeakKeyDictionary()


def _batch_for_loop(kind: type[_SocketBatch]) -> _SocketBatch:
    loop = asyncio.get_running_loop()
    batches = _batches.get(loop)
    if batches is None:
        batches = _batches[loop] = {}
    batch = batches.get(kind)
    if batch is None:
        batch = batches[kind] = kind()
    return batch


_heartbeats: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _MemberHeartbeat] = (
    weakref.WeakKeyDictionary()
)


def _heartbeat_for_loop() -> _MemberHeartbeat:
    loop = asyncio.get_running_loop()
    heartbeat = _heartbeats.get(loop)
    if heartbeat is None:
        heartbeat = _heartbeats[loop] = _MemberHeartbeat()
    return heartbeat


def _cookies(scope) -> dict[str, str]:
    """The handshake's cookies, parsed here and not kept in the scope (channels'
    CookieMiddleware keeps them for the socket's life: memory per socket)."""
    header = "; ".join(v.decode("latin1") for k, v in scope.get("headers", ()) if k == b"cookie")
    return parse_cookie(header)


# Sockets served in one go before the event loop takes a turn for others.
TURN_SOCKETS = 100


async def _turn(i: int) -> None:
    """Let the event loop run other work every ``TURN_SOCKETS`` sockets: a send
    to a socket does not suspend, so a heartbeat's 5,000 pings or a batch's 500
    answers held every alert frame and HTTP reply of the process until done."""
    if i and i % TURN_SOCKETS == 0:
        await asyncio.sleep(0)


async def _quietly(coro) -> None:
    """A socket that went away between the check and the send is not an error."""
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - logged; the other sockets go on
        log.debug("heartbeat send failed: %r", exc)


class _BadField(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _int_field(content: dict, name: str) -> int:
    value = content.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not inputs.id_in_range(value):
        raise _BadField(name, _("%(f)s 须为正整数。") % {"f": name})
    return value


def _optional_latlon(content: dict) -> tuple[float | None, float | None]:
    lat, lon = content.get("lat"), content.get("lon")
    if lat is None and lon is None:
        return None, None
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon))
    if not ok or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise _BadField("lat", _("坐标无效。"))
    return float(lat), float(lon)


class SupervisorConsumer(_JsonEdge):
    """Live incidents for police stations, admins and reviewers, within their scope.

    The socket joins the city-wide group (city-scoped staff, superusers) or its
    region's group, and ``watch``/``unwatch`` one incident's group for its
    detailed updates and responders' positions.

    A board (re)connecting sends ``resume {seqs: {incident_id: last_seq}}``: the
    socket watches every open incident of the area (and those named), sends each
    named incident's events after its ``seq`` as ``replay`` frames and then each
    incident's whole ``incident.state``; ``resumed`` ends it. The groups are
    joined before the rows are read, so nothing falls between the replay and
    the live frames (a frame may come twice: clients drop a ``seq`` they have).
    """

    group: str | None = None

    def _open(self) -> bool:
        return self.group is not None

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        self.group = await db_call(selectors.supervisor_group_for)(user=user)
        if self.group is None:
            await self._refuse(
                CLOSE_FORBIDDEN, "forbidden", _("只有有权查看警情的工作人员可以订阅。")
            )
            return
        self.watching: set[int] = set()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json(
            {
                "type": "hello",
                "id": None,
                "group": self.group,
                "heartbeat_s": settings.WS_HEARTBEAT_S,
            }
        )
        self._heartbeat = asyncio.ensure_future(self._supervisor_heartbeat())

    async def disconnect(self, code: int) -> None:
        if self.group is None:
            return
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is not None:
            heartbeat.cancel()
        await self.channel_layer.group_discard(self.group, self.channel_name)
        for incident_id in getattr(self, "watching", ()):
            await self.channel_layer.group_discard(incident_group(incident_id), self.channel_name)

    async def _supervisor_heartbeat(self) -> None:
        """A ping per heartbeat, so a board notices a dead server and resumes."""
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(settings.WS_HEARTBEAT_S)
                await self.send_json({"type": "ping", "id": None})

    async def receive_json(self, content: Any, **kwargs) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self._error(None, "bad_message", _("消息须为带 type 字段的 JSON 对象。"))
            return
        msg_id, kind = content.get("id"), content["type"]
        try:
            if kind == "ping":
                await self.send_json({"type": "pong", "id": msg_id})
            elif kind == "pong":
                pass
            elif kind in {"watch", "unwatch"}:
                incident_id = _int_field(content, "incident_id")
                after = _seq_field(content, "after_seq")
                await self._watch(msg_id, incident_id, on=kind == "watch", after_seq=after)
            elif kind == "resume":
                await self._resume(msg_id, _seqs_field(content))
            else:
                await self._error(
                    msg_id, "unknown_type", _("未知消息类型：%(t)s") % {"t": kind[:40]}
                )
        except _BadField as exc:
            await self._error(msg_id, "bad_field", exc.message, field=exc.field)

    async def _watch(self, msg_id, incident_id: int, *, on: bool, after_seq=None) -> None:
        if not on:
            await self.channel_layer.group_discard(incident_group(incident_id), self.channel_name)
            self.watching.discard(incident_id)
            await self.send_json({"type": "ok", "id": msg_id})
            return
        snapshot = await db_call(selectors.incident_snapshot_for)(
            user=self.scope["user"], incident_id=incident_id
        )
        if snapshot is None:
            await self._error(msg_id, "not_found", _("未找到该警情或无权查看。"))
            return
        await self.channel_layer.group_add(incident_group(incident_id), self.channel_name)
        self.watching.add(incident_id)
        frames = []
        if after_seq is not None:
            frames = await db_call(self._incident_frames)([incident_id], after_seq)
        for frame in frames:
            await self.send_json(frame)
        await self.send_json({"type": "ok", "id": msg_id, "incident": snapshot})

    async def _resume(self, msg_id, seqs: dict[int, int]) -> None:
        user = self.scope["user"]
        incidents = await db_call(supervision.supervisor_incidents)(user=user, ids=list(seqs))
        ids = [i.pk for i in incidents]
        # Join first, read after: a frame sent in between comes twice, never not.
        for incident_id in ids:
            if incident_id not in self.watching:
                await self.channel_layer.group_add(incident_group(incident_id), self.channel_name)
                self.watching.add(incident_id)
        frames = await db_call(self._resume_frames)(incidents, seqs)
        for frame in frames:
            await self.send_json(frame)
        await self.send_json(
            {
                "type": "resumed",
                "id": msg_id,
                "incidents": ids,
                "count": sum(1 for f in frames if f.get("replay")),
            }
        )

    def _resume_frames(self, incidents, seqs: dict[int, int]) -> list[dict[str, Any]]:
        user = self.scope["user"]
        frames: list[dict[str, Any]] = []
        for incident in incidents:
            if incident.pk in seqs:
                frames += supervision.events_after(incident=incident, after_seq=seqs[incident.pk])
            frames.append(supervision.incident_state(user=user, incident=incident))
        return frames

    def _incident_frames(self, ids: list[int], after_seq: int) -> list[dict[str, Any]]:
        incidents = supervision.supervisor_incidents(user=self.scope["user"], ids=ids)
        return self._resume_frames(
            [i for i in incidents if i.pk in ids], {i.pk: after_seq for i in incidents}
        )


def _seq_field(content: dict, name: str) -> int | None:
    value = content.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= inputs.ID_MAX:
        raise _BadField(name, _("%(f)s 须为非负整数。") % {"f": name})
    return value


def _seqs_field(content: dict) -> dict[int, int]:
    """``seqs``: {incident id: last seq seen}, at most a few hundred incidents."""
    raw = content.get("seqs")
    if raw is None:
        return {}
    bad = _BadField("seqs", _("seqs 须为 {警情编号: 序号} 对象。"))
    if not isinstance(raw, dict) or len(raw) > 1000:
        raise bad
    out: dict[int, int] = {}
    for key, value in raw.items():
        try:
            incident_id = int(key)
            seq = _seq_field({"seq": value}, "seq") or 0
        except (TypeError, ValueError, _BadField):
            raise bad from None
        if not inputs.id_in_range(incident_id):
            raise bad
        out[incident_id] = seq
    return out
