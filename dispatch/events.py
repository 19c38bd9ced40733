"""The incident timeline and its fast path to phones and dashboards.

Every change is an ``IncidentEvent`` row (the truth, replayed on resume); the
channel-layer push happens only after the transaction commits.

Every socket message of the project leaves through ``send_on_commit`` (Zulip's
``send_event_on_commit``): ``push_on_commit`` for frames a socket forwards as they
are, ``member_control_on_commit`` for the control messages that change a member's
sockets themselves (duty joins or leaves the unit group, sign-out and deactivation
close them).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.db import close_old_connections, connection, transaction

from units.models import Member, Unit

from .models import Incident, IncidentEvent
from .sql import JsonRows, json_rows, rows_insert

log = logging.getLogger(__name__)

Message = tuple[str, dict[str, Any]]  # (group, payload)
LayerMessage = tuple[str, dict[str, Any]]  # (group, channel-layer message with its "type")


def unit_group(unit_id: int) -> str:
    return f"unit.{unit_id}"


def member_group(member_id: int) -> str:
    return f"member.{member_id}"


def incident_group(incident_id: int) -> str:
    return f"incident.{incident_id}"


# Watchers of incidents: city-wide staff join SUPERVISORS_GROUP, scoped staff join
# the group of their region's code; each incident goes to both kinds.
SUPERVISORS_GROUP = "supervisors"


def region_group(code: str) -> str:
    return f"region.{code}"


def supervisor_groups(incident: Incident) -> list[str]:
    """The city-wide group plus one group per region above the incident's street."""
    path = incident.region.path if incident.region_id else ""
    codes = [code for code in path.split("/") if code]
    return [SUPERVISORS_GROUP, *(region_group(code) for code in codes)]


def to_supervisors(incident: Incident, payload: dict[str, Any]) -> list[Message]:
    return [(group, payload) for group in supervisor_groups(incident)]


PUSH_CONCURRENCY = 50


def events_record(*, incident_id: int, events: Sequence[IncidentEvent]) -> list[IncidentEvent]:
    """Append events to an incident's timeline with consecutive ``seq`` numbers.

    Must run inside the caller's transaction: the UPDATE on the incident row holds
    its lock until commit, so concurrent writers get distinct, gap-free seqs.
    On PostgreSQL the claim and the insert are one statement (``_events_insert``).
    """
    if not events:
        return []
    for event in events:
        event.incident_id = incident_id
    if _events_insert(incident_id=incident_id, events=events):
        return list(events)
    n = len(events)
    last = _seqs_claim(incident_id=incident_id, n=n)
    for i, event in enumerate(events):
        event.seq = last - n + 1 + i
    return rows_insert(IncidentEvent, events)


def _events_insert(*, incident_id: int, events: Sequence[IncidentEvent]) -> bool:
    """Claim the seqs and insert the events in one statement (PostgreSQL):
    ``events_cte``. Every event the system writes (each receipt, tap and wave)
    paid a round trip for the claim. False where it cannot (``sql.json_rows``):
    the caller claims, then inserts."""
    cte = events_cte(incident_id=incident_id, events=events)
    if cte is None:
        return False
    with cte.rows.conn.cursor() as cursor:
        cursor.execute(f"WITH {cte.sql} SELECT id, seq FROM e", cte.params)  # noqa: S608
        cte.saved(cursor.fetchall())
    return True


@dataclass
class EventsCte:
    """``events_cte``: the CTEs ``s`` (the seq claim) and ``e`` (the insert,
    returning ``id`` and ``seq``) for a larger statement, with their params."""

    sql: str
    params: list[Any]
    rows: JsonRows
    incident_id: int
    events: Sequence[IncidentEvent]

    def saved(self, returned: Sequence[tuple[int, int]]) -> None:
        """Give each event its id and seq from ``e``'s rows (id, seq)."""
        if not returned:
            raise Incident.DoesNotExist(self.incident_id)
        returned = sorted(returned, key=lambda row: row[1])
        self.rows.saved([pk for pk, _seq in returned])
        for event, (_pk, seq) in zip(self.events, returned, strict=True):
            event.seq = seq


def events_cte(*, incident_id: int, events: Sequence[IncidentEvent]) -> EventsCte | None:
    """The seq claim (the UPDATE that takes the incident's row lock, in CTE
    ``s``) and the events' insert (``e``, each row's seq from its place), to
    run inside a larger statement on PostgreSQL; None where it cannot
    (``sql.json_rows``). ``events`` have their ``incident_id`` set."""
    rows = json_rows(IncidentEvent, events, exclude={"seq"})
    if rows is None:
        return None
    q = rows.conn.ops.quote_name
    last = q(Incident._meta.get_field("last_seq").column)
    return EventsCte(
        sql=(
            f"s AS (UPDATE {q(Incident._meta.db_table)} SET {last} = {last} + %s "  # noqa: S608
            f"WHERE {q(Incident._meta.pk.column)} = %s RETURNING {last}), "
            f"e AS (INSERT INTO {q(IncidentEvent._meta.db_table)} ({rows.columns}, "
            f"{q(IncidentEvent._meta.get_field('seq').column)}) "
            f"SELECT {rows.listed}, s.{last} - %s + r.n FROM s, {rows.source} "
            f"ORDER BY r.n RETURNING {q(IncidentEvent._meta.pk.column)} AS id, "
            f"{q(IncidentEvent._meta.get_field('seq').column)} AS seq)"
        ),
        params=[len(events), incident_id, len(events), rows.param],
        rows=rows,
        incident_id=incident_id,
        events=events,
    )


def _seqs_claim(*, incident_id: int, n: int) -> int:
    """Add ``n`` to the incident's ``last_seq`` and return the new value, in one
    statement (``UPDATE ... RETURNING``, SQLite 3.35+ and PostgreSQL): the seqs
    claimed are ``last - n + 1 .. last``."""
    q = connection.ops.quote_name
    column = q(Incident._meta.get_field("last_seq").column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {q(Incident._meta.db_table)} SET {column} = {column} + %s "  # noqa: S608
            f"WHERE {q(Incident._meta.pk.column)} = %s RETURNING {column}",
            [n, incident_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Incident.DoesNotExist(incident_id)
    return row[0]


def event_record(*, incident_id: int, type: str, **fields: Any) -> IncidentEvent:
    return events_record(incident_id=incident_id, events=[IncidentEvent(type=type, **fields)])[0]


def push_on_commit(messages: Iterable[Message]) -> None:
    """Send frames (``payload`` goes to the socket as it is) once the transaction commits.

    A payload sent to several groups (an incident's and its supervisors') is
    serialised once: a city-wide alert's receipts are thousands of them.
    """
    pushes: dict[int, dict[str, Any]] = {}
    out: list[LayerMessage] = []
    for group, payload in messages:
        push = pushes.get(id(payload))
        if push is None or push["payload"] is not payload:
            push = pushes[id(payload)] = _as_push(payload)
        out.append((group, push))
    send_on_commit(out)


def member_control_on_commit(*, member_id: int, message: dict[str, Any]) -> None:
    """Tell a member's open sockets to change themselves (``member.duty``,
    ``member.session_end``) once the transaction commits."""
    send_on_commit([(member_group(member_id), message)])


def member_duty_changed_push(sender, *, member_id: int, on_duty: bool, **kwargs: Any) -> None:
    """Receiver of ``units.services.member_duty_changed`` (connected in DispatchConfig)."""
    member_control_on_commit(
        member_id=member_id, message={"type": "member.duty", "on_duty": on_duty}
    )


def roster_saved_close_revoked(sender, *, instance, raw: bool = False, **kwargs: Any) -> None:
    """Receiver of ``post_save`` for ``Member``, ``Unit`` and the user model
    (connected in DispatchConfig): a member, unit or login saved inactive - by the
    admin, a service or a script - loses its open sockets at once, not at the next
    heartbeat, so no further alert reaches it."""
    if raw or getattr(instance, "is_active", True):
        return
    if isinstance(instance, Member):
        member_ids = [instance.pk]
    elif isinstance(instance, Unit):
        member_ids = list(Member.objects.filter(unit=instance).values_list("pk", flat=True))
    else:
        member_ids = list(Member.objects.filter(user=instance).values_list("pk", flat=True))
    send_on_commit((member_group(pk), {"type": "member.revoked"}) for pk in member_ids)


def roster_bulk_deactivated_close(
    sender, *, member_ids: list[int], unit_ids: list[int], **kwargs: Any
) -> None:
    """Receiver of ``units.services.roster_bulk_deactivated`` (the roster import
    writes in bulk, without post_save): the same at-once close as above."""
    ids = set(member_ids)
    if unit_ids:
        ids.update(Member.objects.filter(unit_id__in=unit_ids).values_list("pk", flat=True))
    send_on_commit((member_group(pk), {"type": "member.revoked"}) for pk in sorted(ids))


def send_on_commit(messages: Iterable[LayerMessage]) -> None:
    """The one way out to sockets: channel-layer messages, after commit."""
    batch = list(messages)
    if batch:
        transaction.on_commit(lambda: send_now(batch))


def _as_push(payload: dict[str, Any]) -> dict[str, Any]:
    # The frame's text is serialised here, once per message, not once per socket
    # by each consumer: a city-wide alert reaches thousands of sockets per daphne.
    # ``payload`` stays for in-process readers (tests, the drills' checks).
    return {"type": "push", "payload": payload, "text": json.dumps(payload)}


# Set by ``db_call`` around a socket's database call: messages committed there
# are collected here and published by the event loop afterwards (see db_call).
_deferred: contextvars.ContextVar[list[LayerMessage] | None] = contextvars.ContextVar(
    "dispatch_deferred_publishes", default=None
)


def send_now(messages: Sequence[LayerMessage]) -> None:
    """Fan out to all groups concurrently; a lost push is recovered by replay."""
    if not messages:
        return
    sink = _deferred.get()
    if sink is not None:
        sink.extend(messages)
        return
    if get_channel_layer() is None:
        return
    try:
        async_to_sync(publish)(messages)
    except Exception as exc:
        # The rows are committed; phones replay them on resume.
        log.warning("channel layer unavailable (%r); events stay in the database", exc)


def coalesce(messages: Sequence[LayerMessage]) -> list[LayerMessage]:
    """One channel-layer message per group and run of frames: a group's push
    frames that follow each other become one ``push`` carrying ``texts`` (and
    ``payloads``), in order; other messages keep their place among them.

    A batch of receipts is one commit with an update per receipt to the same
    incident and board groups: a city-wide alert's 10,000 receipts were 40,000
    Redis publishes, each a round trip on the layer's one connection.
    """
    by_group: dict[str, list[dict[str, Any]]] = {}
    for group, message in messages:
        queued = by_group.setdefault(group, [])
        last = queued[-1] if queued else None
        if message.get("type") == "push" and last is not None and last.get("type") == "push":
            if "texts" not in last:
                last = queued[-1] = {
                    "type": "push",
                    "texts": [_text(last)],
                    "payloads": [last.get("payload")],
                }
            last["texts"].append(_text(message))
            last["payloads"].append(message.get("payload"))
        else:
            queued.append(message)
    return [(group, message) for group, queued in by_group.items() for message in queued]


def _text(message: dict[str, Any]) -> str:
    text = message.get("text")
    return text if text is not None else json.dumps(message["payload"])


async def publish(messages: Sequence[LayerMessage]) -> None:
    """Send channel-layer messages from the event loop, concurrently; a failed
    send is logged (the rows are committed: phones and boards replay them)."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    messages = coalesce(messages)
    if isinstance(layer, RedisPubSubChannelLayer):
        try:
            await _publish_pipelined(layer, messages)
        except Exception as exc:  # noqa: BLE001 - logged; rows are committed, phones replay
            log.warning("channel layer push failed: %r", exc)
        return

    # Bounded concurrency: a wide wave must not exhaust the layer's Redis
    # connection pool (RedisChannelLayer's default is 100 connections).
    limit = asyncio.Semaphore(PUSH_CONCURRENCY)

    async def send_one(group: str, message: dict[str, Any]) -> None:
        async with limit:
            await layer.group_send(group, message)

    results = await asyncio.gather(
        *(send_one(group, message) for group, message in messages),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, Exception):
            log.warning("channel layer push failed: %r", result)


async def _publish_pipelined(
    layer: RedisPubSubChannelLayer, messages: Sequence[LayerMessage]
) -> None:
    """Every message of a commit in one Redis round trip per shard.

    channels_redis publishes one message at a time, each waiting for the
    shard's lock and its own round trip: a city-wide wave's thousand unit
    groups took a thousand turns of an event loop busy with 5,000 sockets, and
    the intake's POST waited for them all (bench/city.py: over 60 s at 10,000
    sockets). Here the same channel names and serialisation, one pipeline.
    Reads channels_redis 4's internals (the group's channel name, its shard's
    client): pinned below 5 in pyproject.toml, and the pub/sub tests run it
    against a real Redis.
    """
    loop_layer = layer._get_layer()
    by_shard: dict[Any, list[tuple[str, bytes]]] = {}
    for group, message in messages:
        channel = loop_layer._get_group_channel_name(group)
        by_shard.setdefault(loop_layer._get_shard(channel), []).append(
            (channel, layer.serialize(message))
        )
    for shard, batch in by_shard.items():
        shard._ensure_redis()
        async with shard._redis.pipeline(transaction=False) as pipe:
            for channel, data in batch:
                pipe.publish(channel, data)
            await pipe.execute()


def db_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``database_sync_to_async(fn)`` for sockets, publishing after, not inside.

    All database calls of a daphne process's sockets share one thread. A
    commit's publishes used to run inside it (``async_to_sync`` waits for the
    event loop to send them), so every ack, tap and position of the process
    queued behind Redis round trips (bench/board.py). Here the commit hooks only
    collect the messages; the event loop sends them once the call returns,
    before the socket answers, so the order a client sees is kept.
    """
    call = database_sync_to_async(fn)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        sink: list[LayerMessage] = []
        token = _deferred.set(sink)
        try:
            return await call(*args, **kwargs)
        finally:
            _deferred.reset(token)
            if sink:
                await publish(sink)

    return wrapper


_readers: ThreadPoolExecutor | None = None
_readers_lock = threading.Lock()


def _reader_pool() -> ThreadPoolExecutor:
    global _readers
    if _readers is None:
        with _readers_lock:
            if _readers is None:
                _readers = ThreadPoolExecutor(
                    max_workers=settings.WS_DB_READERS, thread_name_prefix="db-read"
                )
    return _readers


def db_read(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``db_call`` for a socket's read that writes nothing and publishes nothing
    (a resume's replay), on a pool of ``WS_DB_READERS`` threads, each with its
    own connection, beside the process's one database thread.

    In a reconnect storm every phone of the process replays what it missed at
    once; on the one thread each replay waited for all the others' queries, one
    round trip at a time (bench/city.py at 10,000 phones, back to back: resume
    p50 895 ms on the one thread, 326-433 ms with readers; every phone resumed
    in 101 s, 84-86 s with readers). PostgreSQL, and SQLite in WAL mode, answer
    readers side by side. The handshake stays on the one thread: one query, and
    with it on the readers the sockets took 28.3 KB each against 24.6 (the
    member it loads lives as long as the socket; the cause was not traced).

    Not for an in-memory SQLite database (the tests'): it is shared-cache, where
    a reader next to a writer fails ("table is locked") instead of waiting; nor
    with ``WS_DB_READERS`` 0.
    """
    on_thread = database_sync_to_async(fn)

    def read(*args: Any, **kwargs: Any) -> Any:
        # Closed (given back to the pool) inside the call itself, as
        # DatabaseSyncToAsync does around it: from a socket's task, the
        # connection a reader thread opened outlived the call otherwise.
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if settings.WS_DB_READERS <= 0 or (
            connection.vendor == "sqlite" and connection.is_in_memory_db()
        ):
            return await on_thread(*args, **kwargs)
        call = sync_to_async(read, thread_sensitive=False, executor=_reader_pool())
        return await call(*args, **kwargs)

    return wrapper
