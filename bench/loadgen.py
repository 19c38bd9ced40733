"""A load generator of member phones: thousands of ``/ws/member/`` sockets per process.

Each phone is an asyncio task on a lean client (``websockets``, no compression,
no client pings: the server's heartbeat is answered with ``pong``). It acts as
the member page does where it matters for delivery:

- stamps every ``incident.alert`` on arrival (CLOCK_MONOTONIC, shared by all
  processes on Linux) and acks it (the delivery receipt). Arrival is when the
  kernel received the frame's last bytes on this phone's socket (``SO_TIMESTAMP``,
  ``_KernelStampLoop``), not when this process got to read them: one process
  plays thousands of phones, and while it parses and acks the frames of one
  read, the next frames wait in their sockets (each phone is its own device in
  the city, reading at once). When the phone's task took the frame is kept too
  (``handled``);
- drops a copy of an event id it already has (the server re-sends unacked alerts
  and replays around the cursor), counting the copy;
- when its socket drops, reconnects with jittered back-off and sends ``resume``
  with the last event id it saw, and stamps the ``resumed`` reply.

``LoadGen`` runs several such processes (one per CPU is plenty: a process holds
10,000 sockets in ~0.5 GB) and merges what they report. Used by bench/city.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import random
import resource
import socket
import struct
import time
from asyncio import selector_events
from dataclasses import dataclass, field
from typing import Any

# dispatch.socket_pass.PASS_COOKIE (not imported: the load generator runs without Django)
PASS_COOKIE = "member_socket"  # noqa: S105 - a cookie name

# (incident id, member id, event id, arrival, replayed, copy of an id it had,
# handled: when the phone's task took it)
Record = tuple[int, int, int, float, bool, bool, float]


@dataclass
class Options:
    ack: bool = True
    concurrency: int = 200  # handshakes in flight per process
    open_timeout: float = 60.0
    reconnect_jitter_s: float = 1.0  # first retry after uniform(0, jitter)
    reconnect_max_s: float = 5.0


@dataclass
class Phone:
    sessionid: str
    member_id: int
    member_pass: str | None = None  # dispatch.socket_pass: a one-query handshake
    seen: set[int] = field(default_factory=set)  # event ids the page has
    last_event_id: int = 0
    connected: bool = False
    dropped_at: float | None = None
    resumed_at: float | None = None
    resume_sent_at: float | None = None
    reconnects: int = 0

    def cookie(self) -> str:
        if self.member_pass is None:
            return f"sessionid={self.sessionid}"
        return f"sessionid={self.sessionid}; {PASS_COOKIE}={self.member_pass}"


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def child(conn, ws_url: str, origin: str, clients: list[dict], options: Options) -> None:
    """Process entry: hold ``clients``' sockets; answer the parent's commands."""
    _raise_nofile()
    with asyncio.Runner(loop_factory=_KernelStampLoop) as runner:
        runner.run(_child(conn, ws_url, origin, clients, options))


# Linux's SO_TIMESTAMP (also the SCM type of its control message); the socket
# module does not name it.
_SO_TIMESTAMP = 29
_TIMEVAL = struct.Struct("qq")


class _KernelStampLoop(asyncio.SelectorEventLoop):
    """An event loop whose TCP transports read with ``recvmsg`` and keep the
    kernel's receive time of what they read last (``transport.stamp``, on
    CLOCK_MONOTONIC).

    asyncio's own read is ``recv``, which drops the ancillary data. The override
    is the 3.11 ``_read_ready__data_received`` with that one call changed.
    """

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
        return _KernelStampTransport(self, sock, protocol, waiter, extra, server)


class _KernelStampTransport(selector_events._SelectorSocketTransport):
    stamp: float | None = None

    def _read_ready__data_received(self) -> None:
        if self._conn_lost:
            return
        try:
            data, ancillary, _flags, _addr = self._sock.recvmsg(self.max_size, 64)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - as asyncio's own read
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not data:
            self._read_ready__on_eof()
            return
        self.stamp = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMP:
                sec, usec = _TIMEVAL.unpack_from(value)
                self.stamp = sec + usec / 1e6 + (time.monotonic() - time.time())
        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - as asyncio's own read
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")


def _stamped_connection(stats: dict[str, Any]):
    """A client connection that stamps each text message with the kernel's
    receive time of the read that brought its frame (``_KernelStampTransport``);
    ``arrived()`` hands the stamps out in the order the messages are read."""
    import collections

    from websockets.asyncio.client import ClientConnection
    from websockets.frames import Frame, Opcode

    class _Stamped(ClientConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.arrivals: collections.deque[float] = collections.deque()

        def process_event(self, event: Any) -> None:
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                stamp = getattr(self.transport, "stamp", None)
                if stamp is None:  # not one of _KernelStampLoop's reads: counted, reported
                    stats["unstamped"] += 1
                    stamp = time.monotonic()
                self.arrivals.append(stamp)
            super().process_event(event)

        def arrived(self) -> float:
            return self.arrivals.popleft() if self.arrivals else time.monotonic()

    return _Stamped


async def _child(conn, ws_url: str, origin: str, clients: list[dict], options: Options) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(options.concurrency)
    records: list[Record] = []
    stats: dict[str, Any] = {"failed": 0, "errors": [], "rung_twice": 0, "unstamped": 0}
    stamped = _stamped_connection(stats)
    # Seconds per reconnect: the handshake (connect to hello) and the resume
    # (sent to its ``resumed`` reply), to tell which one a storm waits on.
    timings: dict[str, list[float]] = {"handshake": [], "resume": []}
    phones = [
        Phone(sessionid=c["sessionid"], member_id=c["member_id"], member_pass=c.get("member_pass"))
        for c in clients
    ]
    stopping = False
    first_round = asyncio.Event()
    tried = 0

    async def open_socket(phone: Phone, took: list[float] | None = None):
        async with gate:
            began = time.monotonic()
            ws = await connect(
                ws_url,
                origin=origin,
                additional_headers={"Cookie": phone.cookie()},
                proxy=None,
                compression=None,
                open_timeout=options.open_timeout,
                ping_interval=None,
                max_queue=None,
                create_connection=stamped,
            )
            try:
                hello = json.loads(await asyncio.wait_for(ws.recv(), options.open_timeout))
                ws.arrived()
            except BaseException:
                await ws.close()
                raise
        if hello.get("type") != "hello":
            await ws.close()
            raise RuntimeError(f"no hello: {str(hello)[:120]}")
        if took is not None:  # from the turn at the gate to the hello
            took.append(time.monotonic() - began)
        return ws

    def note_error(exc: BaseException) -> None:
        if len(stats["errors"]) < 5:
            stats["errors"].append(repr(exc)[:200])

    async def read(phone: Phone, ws) -> None:
        async for raw in ws:
            at = ws.arrived()
            handled = time.monotonic()
            if '"ping"' in raw[:40]:
                await ws.send('{"type":"pong","id":null}')
                continue
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "resumed":
                phone.resumed_at = at
                if phone.resume_sent_at is not None:
                    timings["resume"].append(at - phone.resume_sent_at)
                phone.last_event_id = max(phone.last_event_id, frame.get("last_event_id") or 0)
                continue
            event_id = frame.get("id")
            if not kind or not kind.startswith("incident.") or not isinstance(event_id, int):
                continue
            copy = event_id in phone.seen
            phone.seen.add(event_id)
            phone.last_event_id = max(phone.last_event_id, event_id)
            if kind == "incident.alert":
                records.append(
                    (
                        frame["incident"]["id"],
                        phone.member_id,
                        event_id,
                        at,
                        bool(frame.get("replay")),
                        copy,
                        handled,
                    )
                )
                if options.ack:
                    await ws.send(
                        json.dumps(
                            {"type": "ack", "id": None, "incident_id": frame["incident"]["id"]}
                        )
                    )

    async def run_phone(phone: Phone) -> None:
        nonlocal tried
        ws = None
        try:
            ws = await open_socket(phone)
            phone.connected = True
        except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
            stats["failed"] += 1
            note_error(exc)
        finally:
            tried += 1
            if tried == len(phones):
                first_round.set()
        if ws is None:
            return
        while True:
            try:
                await read(phone, ws)
            except ConnectionClosed:
                pass
            except Exception as exc:  # noqa: BLE001 - a socket dropped mid-run: counted
                note_error(exc)
            phone.connected = False
            if stopping:
                return
            phone.dropped_at = time.monotonic()
            phone.resumed_at = None
            # Reconnect as the page does: jittered, growing back-off, then resume.
            delay = random.uniform(0, options.reconnect_jitter_s)  # noqa: S311
            while True:
                await asyncio.sleep(delay)
                try:
                    ws = await open_socket(phone, timings["handshake"])
                    break
                except Exception:  # noqa: BLE001 - the proxy is down: try again
                    delay = min(options.reconnect_max_s, max(0.2, delay * 2))
            phone.connected = True
            phone.reconnects += 1
            phone.resume_sent_at = time.monotonic()
            await ws.send(
                json.dumps({"type": "resume", "id": None, "last_event_id": phone.last_event_id})
            )

    started = time.monotonic()
    tasks = [asyncio.create_task(run_phone(p)) for p in phones]

    async def announce_ready() -> None:
        await first_round.wait()
        stats["connect_s"] = time.monotonic() - started
        conn.send(("ready", {**stats, "connected": sum(p.connected for p in phones)}))

    # Commands are heard from the start: a parent giving up on a slow connect
    # phase can still ask how far it got, and stop.
    announcer = asyncio.create_task(announce_ready())
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "collect":
            conn.send(("records", list(records)))
            records.clear()
        elif command == "status":
            conn.send(
                (
                    "status",
                    {
                        "connected": sum(p.connected for p in phones),
                        "dropped": sum(p.dropped_at is not None for p in phones),
                        "resumed": sum(p.resumed_at is not None for p in phones),
                        "last_resumed": max(
                            (p.resumed_at for p in phones if p.resumed_at), default=None
                        ),
                        "first_dropped": min(
                            (p.dropped_at for p in phones if p.dropped_at), default=None
                        ),
                        "reconnects": sum(p.reconnects for p in phones),
                        "errors": stats["errors"],
                        "unstamped": stats["unstamped"],
                    },
                )
            )
        elif command == "timings":
            conn.send(("timings", timings))
        elif command == "phones":
            conn.send(
                (
                    "phones",
                    {
                        p.member_id: (p.resumed_at, p.resume_sent_at, p.reconnects, p.connected)
                        for p in phones
                    },
                )
            )
        elif command == "resumed_members":
            conn.send(("members", [p.member_id for p in phones if p.resumed_at is not None]))
        elif command == "forget_drops":
            for p in phones:
                p.dropped_at = p.resumed_at = None
            conn.send(("ok", None))
        else:
            break
    stopping = True
    announcer.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(("stopped", None))


class LoadGen:
    """Several load-generator processes holding ``clients``' sockets between them."""

    def __init__(
        self,
        ws_url: str,
        origin: str,
        clients: list[dict],
        *,
        processes: int = 2,
        options: Options | None = None,
    ) -> None:
        self.options = options or Options()
        ctx = mp.get_context("spawn")
        self.pipes = []
        self.procs = []
        for i in range(processes):
            parent, kid = ctx.Pipe()
            proc = ctx.Process(
                target=child,
                args=(kid, ws_url, origin, clients[i::processes], self.options),
                daemon=True,
                name=f"loadgen-{i}",
            )
            self.pipes.append(parent)
            self.procs.append(proc)

    def start(self, timeout: float = 600) -> dict[str, Any]:
        for proc in self.procs:
            proc.start()
        merged: dict[str, Any] = {
            "connected": 0,
            "failed": 0,
            "errors": [],
            "connect_s": 0.0,
            "timed_out": False,
        }
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                # Report how far the connects got instead of nothing.
                merged["timed_out"] = True
                merged["connect_s"] = timeout
                status = self.status()
                merged["connected"] = status["connected"]
                merged["errors"] = status["errors"]
                return merged
            _, stats = pipe.recv()
            merged["connected"] += stats["connected"]
            merged["failed"] += stats["failed"]
            merged["errors"] += stats["errors"]
            merged["connect_s"] = max(merged["connect_s"], stats["connect_s"])
        return merged

    def _ask(self, command: str) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        answers = []
        for pipe in self.pipes:
            tag, answer = pipe.recv()
            while tag == "ready":  # a late "ready" after start() gave up waiting
                tag, answer = pipe.recv()
            answers.append(answer)
        return answers

    def collect(self) -> list[Record]:
        return [r for part in self._ask("collect") for r in part]

    def status(self) -> dict[str, Any]:
        parts = self._ask("status")
        out: dict[str, Any] = {
            k: sum(p[k] for p in parts)
            for k in ("connected", "dropped", "resumed", "reconnects", "unstamped")
        }
        resumed = [p["last_resumed"] for p in parts if p["last_resumed"] is not None]
        dropped = [p["first_dropped"] for p in parts if p["first_dropped"] is not None]
        out["last_resumed"] = max(resumed, default=None)
        out["first_dropped"] = min(dropped, default=None)
        out["errors"] = [e for p in parts for e in p["errors"]]
        return out

    def timings(self) -> dict[str, list[float]]:
        """Seconds per reconnect's handshake and resume, every process's together."""
        out: dict[str, list[float]] = {"handshake": [], "resume": []}
        for part in self._ask("timings"):
            for key, values in part.items():
                out[key] += values
        return out

    def phones(self) -> dict[int, tuple]:
        """Per member: (resumed at, resume sent at, reconnects, connected)."""
        return {m: info for part in self._ask("phones") for m, info in part.items()}

    def resumed_members(self) -> set[int]:
        """The members whose phone dropped and has its ``resumed`` reply since."""
        return {m for part in self._ask("resumed_members") for m in part}

    def forget_drops(self) -> None:
        self._ask("forget_drops")

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid]

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send("stop")
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                if pipe.poll(20):
                    pipe.recv()
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
