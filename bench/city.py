"""The whole city on duty (issue 14): 10,000 member sockets through nginx and two
daphne processes; wave 1, a city-wide alert, memory per socket and a reconnect
storm, each beside its goal.

    .venv/bin/python bench/city.py [--sockets 10000] [--daphnes 2] [--web 1] [--no-write]

Topology (tests/e2e/harness.py, the same as the e2e scale-out test): a seeded
city (SQLite, or PostgreSQL when DATABASE_URL says so; the embedded
redis-server), ``--daphnes`` daphne processes holding the sockets behind nginx
from deploy/nginx.conf.template (websocket upgrade on), ``--web`` more daphne
processes answering HTTP (the API; 0: the socket daphnes answer it too, as on a
small site), one Celery worker and beat.
Every member of the city is put on duty; ``--sockets`` of them get sessions
minted in the database (no 10,000 logins) and a load generator of its own
(bench/loadgen.py, ``--loadgens`` processes) connects them all through nginx.

Figures:

- sockets connected, and daphne memory per socket: (RSS after - RSS before) /
  sockets that daphne holds, per daphne (sockets counted from /proc/net/tcp);
- wave 1: POST (through nginx) -> the last ``incident.alert`` on the POST's
  target sockets, over ``--incidents`` incidents at seeded units;
- city-wide alert: one POST alerts every unit, so every connected socket; POST ->
  last frame, and the share delivered;
- reconnect storm: nginx is stopped (every socket drops) and started again;
  alerts sent while it is down go straight to a daphne. Time from the restart
  until every phone has its ``resumed`` reply, and the alerts lost (a target
  phone that never shows one) or rung twice (a second frame with a new event id
  for the same alert; copies of an id the phone has are dropped, as the page
  does, and counted apart).

Prints the table beside the goals and appends it to docs/benchmarks.md (its own
section, replaced on the next run with the same ``--daphnes`` and ``--sockets``)
unless ``--no-write``. ``--profile`` records each daphne with py-spy during the
city-wide waves and the storm (flame graphs in the temp dir, or collapsed stacks
with ``--profile raw``; ``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import BENCH_POLICIES, machine  # noqa: E402
from bench.loadgen import LoadGen, Options  # noqa: E402
from tests.e2e.harness import City, Http, Service, ServiceError, System  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
GC_WATCH = ROOT / "bench" / "gcwatch"
GOALS = {
    "sockets": 10_000,
    "kb_per_socket": 30.0,
    "wave1_p50_ms": 20.0,
    "wave1_p99_ms": 50.0,
    "wide_ms": 2000.0,
    "delivered": 1.0,
    "lost": 0,
    "rung_twice": 0,
}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_rss_kb(pid: int) -> int:
    """RSS of a process and its children (nginx's workers)."""
    total = rss_kb(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += tree_rss_kb(int(child))
    return total


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    total = cpu_s(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += tree_cpu_s(int(child))
    return total


def named_cpu_s(name: str) -> float:
    """CPU seconds of every process of that command name, with the children
    they have reaped (PostgreSQL's backends come and go)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            if text[text.index("(") + 1 : text.rindex(")")] == name:
                fields = text.rsplit(")", 1)[1].split()
                total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def established_on(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (a daphne's sockets)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


@dataclass
class _Pids:
    """Processes counted as one in the CPU figures (the load generator's)."""

    name: str
    pids: list[int]


@dataclass
class Waves:
    post_ms: list[float] = field(default_factory=list)
    last_ms: list[float] = field(default_factory=list)
    spread_ms: list[float] = field(default_factory=list)
    # The last phone's task turn in the load generator (its own queueing, see
    # bench/loadgen.py): what "last frame" measured before 2026-12-01.
    handled_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    targets: int = 0
    delivered: int = 0
    copies: int = 0  # an alert frame again on a phone that has it (the heartbeat's)

    def score(self, posts, records) -> None:
        arrivals: dict[tuple[int, int], tuple[float, float]] = {}
        for incident_id, member_id, _event, at, _replay, copy, handled in records:
            self.copies += bool(copy)
            key = (incident_id, member_id)
            if key not in arrivals or at < arrivals[key][0]:
                arrivals[key] = (at, handled)
        for incident_id, started, post_s, targets in posts:
            got = [arrivals[(incident_id, m)] for m in targets if (incident_id, m) in arrivals]
            self.targets += len(targets)
            self.delivered += len(got)
            self.post_ms.append(post_s * 1000)
            if got:
                self.last_ms.append((max(at for at, _h in got) - started) * 1000)
                self.spread_ms.append(
                    (max(at for at, _h in got) - min(at for at, _h in got)) * 1000
                )
                self.handled_ms.append((max(h for _a, h in got) - started) * 1000)
                self.first_ms.append((min(at for at, _h in got) - started) * 1000)

    def slowest(self, n: int = 3) -> str:
        """The ``n`` slowest waves: last frame (first frame, POST alone), in ms."""
        rows = sorted(zip(self.last_ms, self.first_ms, self.post_ms, strict=False), reverse=True)[
            :n
        ]
        return ", ".join(f"{last:.0f} ({first:.0f}, {post:.0f})" for last, first, post in rows)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Run:
    def __init__(self, args) -> None:
        self.args = args
        self.figures: dict[str, Any] = {"loads": {}}
        self.profiles: list[Path] = []
        self.windows: dict[str, tuple[float, float]] = {}

    def note_load(self, what: str) -> None:
        self.figures["loads"][what] = load()

    # --- setup ------------------------------------------------------------------------------

    def run(self, city: City, logins: list[dict]) -> None:
        args = self.args
        # DEBUG off as in production: DEBUG keeps every query in memory.
        env = {"WS_HEARTBEAT_S": str(args.heartbeat), "DEBUG": "0"}
        if args.gc or args.tracemalloc:
            env.update(PYTHONPATH=f"{GC_WATCH}:{ROOT}", BENCH_GC_DIR=str(city.root))
        if args.tracemalloc:
            env.update(BENCH_TRACEMALLOC="1")
        system = System(city, env=env)
        gen = None
        try:
            daphnes = [system.start_daphne(f"daphne-{i + 1}") for i in range(args.daphnes)]
            web = [system.start_daphne(f"web-{i + 1}") for i in range(args.web)]
            system.start_worker(concurrency=1)
            system.start_beat()
            proxy = system.start_proxy(daphnes, web=web or None)
            self.services: list[Any] = list(system.services)
            api = Http(proxy.http_url)
            api.login_token(city.scenario["staff"]["username"], city.scenario["staff"]["password"])
            direct = Http((web or daphnes)[0].http_url)
            direct.token = api.token
            self.members_by_unit: dict[int, list[int]] = {}
            for c in logins:
                self.members_by_unit.setdefault(c["unit_id"], []).append(c["member_id"])

            # Memory baseline: every daphne has served a socket (lazy imports, the
            # layer's Redis connection), then settles.
            warm = LoadGen(proxy.ws_url, api.origin, logins[: 4 * args.daphnes], processes=1)
            warm.start()
            warm.stop()
            time.sleep(2)
            before = {d.name: rss_kb(d.pid) for d in daphnes}
            self._snapshot(daphnes)
            nginx_before = tree_rss_kb(proxy.service.pid)

            gen = LoadGen(
                proxy.ws_url,
                api.origin,
                logins,
                processes=args.loadgens,
                options=Options(ack=not args.no_ack, concurrency=args.connect_concurrency),
            )
            print(f"Connecting {len(logins)} sockets through nginx...", flush=True)
            stats = gen.start(timeout=args.connect_timeout)
            self.services.append(_Pids("loadgen", gen.pids()))
            time.sleep(3)  # let the last handshakes' groups settle
            self.note_load("connect")
            per = {d.name: established_on(d.port) for d in daphnes}
            after = {d.name: rss_kb(d.pid) for d in daphnes}
            if args.tracemalloc:
                self._snapshot(daphnes)
                self._memory_by_line(city, daphnes, per)
            self.figures.update(
                connected=stats["connected"],
                failed=stats["failed"],
                connect_s=stats["connect_s"],
                errors=stats["errors"],
                per_daphne={
                    d.name: {
                        "sockets": per[d.name],
                        "rss_before_mb": before[d.name] / 1024,
                        "rss_after_mb": after[d.name] / 1024,
                        "kb_per_socket": (after[d.name] - before[d.name]) / max(1, per[d.name]),
                    }
                    for d in daphnes
                },
                nginx_kb_per_socket=(tree_rss_kb(proxy.service.pid) - nginx_before)
                / max(1, stats["connected"]),
                loadgen_mb=sum(rss_kb(p) for p in gen.pids()) / 1024,
            )
            if stats["timed_out"]:
                print(f"  connect budget of {args.connect_timeout:.0f} s spent", flush=True)
            print(
                f"  {stats['connected']} connected in {stats['connect_s']:.1f} s "
                f"({stats['failed']} failed{': ' + stats['errors'][0] if stats['errors'] else ''})"
                f"; per daphne {per}; load {load()}",
                flush=True,
            )
            with self.window("wave 1"):
                self.wave1(api, gen, daphnes + web, city)
            with self.window("city-wide"):
                self.wide(api, gen, daphnes + web, city)
            if not args.no_storm:
                with self.window("storm"):
                    self.storm(api, direct, gen, proxy, daphnes + web, city)
            if args.gc:
                self.gc_pauses(city, daphnes + web)
            self.figures["push_failures"] = sum(
                d.log().count("channel layer push failed") for d in daphnes + web
            )
            self.figures["tracebacks"] = sum(d.log().count("Traceback") for d in daphnes + web)
        finally:
            if gen is not None:
                gen.stop()
            system.stop()

    def _snapshot(self, daphnes: list[Service]) -> None:
        """``--tracemalloc``: each daphne writes a snapshot of its allocations."""
        if not self.args.tracemalloc:
            return
        for d in daphnes:
            os.kill(d.pid, signal.SIGUSR1)
        time.sleep(max(5.0, self.args.sockets / 500))

    def _memory_by_line(self, city: City, daphnes: list[Service], per: dict) -> None:
        """Which source lines hold the memory the sockets added (``--tracemalloc``)."""
        import tracemalloc

        for d in daphnes:
            snaps = sorted(city.root.glob(f"snap-{d.pid}-*.pickle"))
            if len(snaps) < 2:
                print(f"  {d.name}: no snapshots", flush=True)
                continue
            first, last = (tracemalloc.Snapshot.load(str(p)) for p in snaps[:2])
            stats = last.compare_to(first, "lineno")
            sockets = max(1, per[d.name])
            total = sum(st.size_diff for st in stats)
            print(f"  {d.name}: traced {total / sockets:.0f} B per socket; by line:", flush=True)
            for st in stats[:30]:
                frame = st.traceback[0]
                print(
                    f"    {st.size_diff / sockets:7.0f} B {st.count_diff / sockets:5.1f} blocks  "
                    f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}",
                    flush=True,
                )

    @contextlib.contextmanager
    def window(self, phase: str) -> Iterator[None]:
        """Times a phase, and where the machine's CPU went during it."""
        started = time.time()
        before = self._cpu()
        try:
            yield
        finally:
            self.windows[phase] = (started, time.time())
            after = self._cpu()
            spent = {k: after[k] - before.get(k, 0.0) for k in after}
            self.figures.setdefault("cpu", {})[phase] = spent
            wall = time.time() - started
            print(
                f"  CPU in {phase} ({wall:.0f} s, {2 * wall:.0f} CPU-s on 2 cores): "
                + ", ".join(
                    f"{k} {v:.1f} s" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])
                ),
                flush=True,
            )

    def _cpu(self) -> dict[str, float]:
        cpu = {
            s.name: sum(map(cpu_s, s.pids)) if isinstance(s, _Pids) else tree_cpu_s(s.pid)
            for s in self.services
        }
        cpu["postgres"] = named_cpu_s("postgres")
        cpu["redis"] = named_cpu_s("redis-server")
        cpu["bench"] = cpu_s(os.getpid())
        return cpu

    def gc_pauses(self, city: City, daphnes: list[Service]) -> None:
        """Each daphne's garbage collections of 1 ms or more, per phase (``--gc``)."""
        self.figures["gc"] = {}
        for d in daphnes:
            path = city.root / f"gc-{d.pid}.log"
            lines = path.read_text().splitlines() if path.exists() else []
            rows = [tuple(float(x) for x in line.split()[:5]) for line in lines]
            for phase, (start, end) in self.windows.items():
                within = [r for r in rows if start <= r[0] <= end]
                ms = [r[2] for r in within]
                cpu = sum(r[4] for r in within)
                full = [r[2] for r in within if r[1] == 2]
                self.figures["gc"][(d.name, phase)] = (len(ms), sum(ms), max(ms, default=0), full)
                print(
                    f"  gc {d.name} {phase}: {len(ms)} pauses >= 1 ms, {sum(ms):.0f} ms in all "
                    f"({cpu:.0f} ms CPU), longest {max(ms, default=0):.0f} ms; full collections "
                    f"{len(full)} ({sum(full):.0f} ms)",
                    flush=True,
                )

    # --- the figures ------------------------------------------------------------------------

    def _post(self, api: Http, kind: str, lat: float, lon: float, timeout: float = 60):
        started = time.monotonic()
        r = api.post("/api/v1/incidents/", {"kind": kind, "lat": lat, "lon": lon}, timeout=timeout)
        if r.status != 201:
            raise ServiceError(f"POST {kind} incident -> {r.status}: {r.body[:300]!r}")
        body = r.json()
        targets = {m for c in body["candidates"] for m in self.members_by_unit.get(c["unit"], [])}
        return body["incident"]["id"], started, r.elapsed_s, targets

    def spots(self, n: int) -> list[tuple[float, float]]:
        units = list({c["unit_id"]: c for c in self.logins}.values())
        step = max(1, len(units) // n)
        return [(u["unit_lat"], u["unit_lon"]) for u in units[::step][:n]]

    def wave1(self, api: Http, gen: LoadGen, daphnes: list[Service], city: City) -> None:
        args = self.args
        posts = []
        profilers = []
        for i, (lat, lon) in enumerate(self.spots(args.incidents + args.warmup)):
            if i == args.warmup:
                profilers = self._profile_start(daphnes, city, "wave1")
            post = self._post(api, "fight", lat, lon)
            if i >= args.warmup and post[3]:
                posts.append(post)
            time.sleep(args.spacing)
        time.sleep(1.5)
        self._profile_stop(profilers)
        waves = Waves()
        waves.score(posts, gen.collect())
        unstamped = gen.status()["unstamped"]
        if unstamped:
            print(f"  ({unstamped} frames stamped without the kernel's receive time)", flush=True)
        self.note_load("wave1")
        self.figures["wave1"] = waves
        print(
            f"  wave 1: POST -> last frame p50 {pct(waves.last_ms, 50):.1f} ms, "
            f"p99 {pct(waves.last_ms, 99):.1f} ms (POST alone p50 {pct(waves.post_ms, 50):.1f} ms, "
            f"first -> last frame p50 {pct(waves.spread_ms, 50):.1f} ms; to the last phone's "
            f"turn in the load generator p50 {pct(waves.handled_ms, 50):.1f} ms, "
            f"p99 {pct(waves.handled_ms, 99):.1f} ms), "
            f"{waves.delivered}/{waves.targets} delivered; slowest (first frame, POST "
            f"alone) {waves.slowest()} ms;"
            f" load {load()}",
            flush=True,
        )

    def _profile_start(self, daphnes: list[Service], city: City, phase: str) -> list:
        """py-spy on each daphne for one phase (``--profile``): flame graphs, or
        collapsed stacks with ``--profile raw``."""
        args = self.args
        if not args.profile:
            return []
        profilers = []
        for d in daphnes:
            ext = "svg" if args.profile == "svg" else "txt"
            out = city.root / f"pyspy-{phase}-{d.name}.{ext}"
            self.profiles.append(out)
            profilers.append(
                subprocess.Popen(
                    [
                        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                        *("record", "--pid", str(d.pid), "--rate", "200"),
                        "--output",
                        str(out),
                        # Native frames (the garbage collector's, C extensions')
                        # need the process paused for each sample.
                        *(("--native",) if args.profile == "native" else ("--nonblocking",)),
                        *(("--format", "raw") if args.profile != "svg" else ()),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(1)
        return profilers

    @staticmethod
    def _profile_stop(profilers: list) -> None:
        for p in profilers:
            p.send_signal(2)  # SIGINT: py-spy writes its output
        for p in profilers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)

    def wide(self, api: Http, gen: LoadGen, daphnes: list[Service], city: City) -> None:
        args = self.args
        lat, lon = self.spots(1)[0]
        profilers = self._profile_start(daphnes, city, "wide")
        posts = []
        for _ in range(args.wide):
            posts.append(self._post(api, "crowd", lat, lon, timeout=120))
            time.sleep(args.wide_spacing)
        # Until every target has its frame, or none has come for a while: a
        # late frame counts in the latency, a missing one as not delivered.
        records = []
        targets = sum(len(ts) for *_rest, ts in posts)
        last_new = time.monotonic()
        while time.monotonic() - last_new < 10:
            time.sleep(1)
            got = gen.collect()
            records += got
            if got:
                last_new = time.monotonic()
            wide = {incident_id for incident_id, *_rest in posts}
            if len({(r[0], r[1]) for r in records if r[0] in wide}) >= targets:
                break
        self._profile_stop(profilers)
        waves = Waves()
        waves.score(posts, records)
        self.note_load("wide")
        self.figures["wide"] = waves
        print(
            f"  city-wide: {int(waves.targets / max(1, len(posts)))} targets, POST -> last frame "
            f"p50 {pct(waves.last_ms, 50):.0f} ms, max {pct(waves.last_ms, 100):.0f} ms, "
            f"{waves.delivered}/{waves.targets} delivered (each alert: "
            f"{', '.join(f'{ms:.0f}' for ms in waves.last_ms)} ms; their POST alone "
            f"{', '.join(f'{ms:.0f}' for ms in waves.post_ms)} ms; to the last phone's turn in "
            f"the load generator {', '.join(f'{ms:.0f}' for ms in waves.handled_ms)} ms), "
            f"{waves.copies} copies "
            f"of alerts a phone had; load {load()}",
            flush=True,
        )
        self._receipts_stored(city, sorted(wide))

    @staticmethod
    def _receipts_stored(city: City, incident_ids: list[int]) -> None:
        """When the database knew each city-wide alert had reached every phone:
        the last receipt stored, from the wave's own time (the chain's first
        step asks the database, not the sockets, who has it)."""
        for incident_id in incident_ids:
            rows = city.db.query(
                "SELECT COUNT(*), COUNT(d.delivered_at), MIN(w.created_at), MAX(d.delivered_at)"
                " FROM dispatch_delivery d JOIN dispatch_dispatch x ON x.id = d.dispatch_id"
                " JOIN dispatch_wave w ON w.id = x.wave_id WHERE x.incident_id = %s",
                (incident_id,),
            )
            total, stored, sent, last = rows[0]
            if isinstance(sent, str):  # SQLite keeps times as text
                sent, last = (dt.datetime.fromisoformat(t) if t else None for t in (sent, last))
            after = f"{(last - sent).total_seconds():.1f} s after the wave" if last else "-"
            print(
                f"    incident {incident_id}: {stored} of {total} receipts stored, "
                f"the last {after}",
                flush=True,
            )

    def storm(
        self, api: Http, direct: Http, gen: LoadGen, proxy, daphnes: list[Service], city: City
    ) -> None:
        """nginx restarts: every socket drops and comes back, resuming."""
        args = self.args
        spots = self.spots(40)
        gen.forget_drops()
        gen.collect()
        posts = []
        specific_before = (self._specific_channels(city), gen.status()["connected"])
        stopped_at = time.monotonic()
        proxy.stop()
        # Alerts while the proxy is down: raised straight at a daphne (another
        # proxy, the 110 integration); no phone can hear them live.
        for lat, lon in spots[:5]:
            posts.append(self._post(direct, "fight", lat, lon))
        time.sleep(args.storm_down)
        profilers = self._profile_start(daphnes, city, "storm")
        proxy.start(port=proxy.port)
        back_at = time.monotonic()
        # And while the phones are reconnecting: wave 1s and one city-wide alert.
        for lat, lon in spots[5:10]:
            posts.append(self._post(api, "fight", lat, lon))
            time.sleep(0.2)
        posts.append(self._post(api, "crowd", *spots[10], timeout=120))
        deadline = time.monotonic() + args.storm_timeout
        status = gen.status()
        shown = 0.0
        while time.monotonic() < deadline:
            status = gen.status()
            if status["resumed"] >= status["dropped"] and status["dropped"] > 0:
                break
            if time.monotonic() - shown >= 5:
                shown = time.monotonic()
                print(
                    f"    {shown - back_at:5.1f} s: {status['connected']} connected, "
                    f"{status['resumed']}/{status['dropped']} resumed, "
                    f"{status['reconnects']} reconnects; errors {status['errors'][:2]}",
                    flush=True,
                )
            time.sleep(0.5)
        self._profile_stop(profilers)
        all_resumed = status["resumed"] >= status["dropped"] > 0
        # Redelivery of anything still unacked (two heartbeats), then until no
        # frame has come for a heartbeat: a loaded daphne may still be writing
        # its backlog, and a frame still on its way is late, not lost.
        records = []
        waited_from = last_new = time.monotonic()
        while True:
            time.sleep(5.0)
            got = gen.collect()
            records += got
            now = time.monotonic()
            if got:
                last_new = now
            settled = now - waited_from >= 2 * args.heartbeat and now - last_new >= args.heartbeat
            if settled or now - waited_from >= args.storm_timeout:
                break
        seen: dict[tuple[int, int], set[int]] = {}
        copies = 0
        for incident_id, member_id, event_id, _at, _replay, copy, _handled in records:
            if copy:
                copies += 1
                continue
            seen.setdefault((incident_id, member_id), set()).add(event_id)
        targets = [(i, m) for i, _s, _p, ts in posts for m in ts]
        lost = sum(1 for key in targets if key not in seen)
        twice = sum(1 for key in targets if len(seen.get(key, ())) > 1)
        # A phone that has resumed must have every alert: the replay brought
        # those raised while it was away, the live path the rest.
        resumed = gen.resumed_members()
        on_resumed = [key for key in targets if key[1] in resumed]
        lost_resumed = sum(1 for key in on_resumed if key not in seen)
        if lost_resumed:
            self._explain_missing(city, gen, posts, [k for k in on_resumed if k not in seen])
        # Every closed socket's own channel unsubscribed: what Redis still has
        # beyond the open sockets is a stale subscription.
        connected = gen.status()["connected"]
        specific = self._specific_channels(city)
        self.note_load("storm")
        timings = gen.timings()
        self.figures["storm"] = {
            "handshake_ms": (
                pct(timings["handshake"], 50) * 1000,
                pct(timings["handshake"], 99) * 1000,
            ),
            "resume_ms": (pct(timings["resume"], 50) * 1000, pct(timings["resume"], 99) * 1000),
            "dropped": status["dropped"],
            "resumed": status["resumed"],
            "all_resumed": all_resumed,
            "resume_s": (status["last_resumed"] - back_at) if status["last_resumed"] else None,
            "down_s": back_at - stopped_at,
            "targets": len(targets),
            "lost": lost,
            "targets_resumed": len(on_resumed),
            "lost_resumed": lost_resumed,
            "connected_after": connected,
            "specific_channels": specific,
            "specific_before": specific_before,
            "rung_twice": twice,
            "copies": copies,
            "alerts": len(posts),
        }
        print(
            f"  storm: {status['resumed']}/{status['dropped']} resumed, "
            f"{self.figures['storm']['resume_s'] or float('nan'):.1f} s after nginx was back; "
            f"{lost} not shown ({lost_resumed} of {len(on_resumed)} on resumed phones), "
            f"{twice} rung twice, {copies} copies dropped of {len(targets)} alert deliveries; "
            f"{specific} socket channels subscribed in Redis for {connected} open sockets "
            f"({specific_before[0]} for {specific_before[1]} before); handshake p50/p99 "
            f"{self.figures['storm']['handshake_ms'][0]:.0f}/"
            f"{self.figures['storm']['handshake_ms'][1]:.0f} ms, resume p50/p99 "
            f"{self.figures['storm']['resume_ms'][0]:.0f}/{self.figures['storm']['resume_ms'][1]:.0f}"
            " ms; "
            f"load {load()}",
            flush=True,
        )

    @staticmethod
    def _explain_missing(city: City, gen: LoadGen, posts, missing) -> None:
        """What the database and the phone say of each alert a resumed phone
        does not show: the first ten."""
        phones = gen.phones()
        posted = {incident_id: started for incident_id, started, _p, _t in posts}
        for incident_id, member_id in missing[:10]:
            rows = city.db.query(
                "SELECT d.created_at, d.delivered_at, d.seen_at FROM dispatch_delivery d"
                " JOIN dispatch_dispatch x ON x.id = d.dispatch_id"
                " WHERE x.incident_id = %s AND d.member_id = %s",
                (incident_id, member_id),
            )
            resumed_at, resume_sent_at, reconnects, connected = phones.get(member_id, (None,) * 4)
            at = posted[incident_id]

            def rel(t, at=at):
                return f"{t - at:+.1f} s" if t else "-"

            print(
                f"    not shown: incident {incident_id} to member {member_id}: delivery rows "
                f"{rows}; phone resume sent {rel(resume_sent_at)}, resumed {rel(resumed_at)} "
                f"from the POST, {reconnects} reconnects, connected {connected}",
                flush=True,
            )

    @staticmethod
    def _specific_channels(city: City) -> int:
        """Socket channels (channels_redis ``specific.``) with a subscriber."""
        import redis

        client = redis.Redis(port=city.redis_port)
        try:
            return len(client.pubsub_channels("*specific.*"))
        finally:
            client.close()

    # --- the report ----------------------------------------------------------------------

    def table(self) -> str:
        f, a = self.figures, self.args
        loads = f["loads"]
        rows = [
            "| figure | goal | result | result / goal | load avg (1/5/15 min) |",
            "|---|---|---|---|---|",
        ]

        def row(name, goal, result, ratio, when):
            rows.append(f"| {name} | {goal} | {result} | {ratio} | {loads.get(when, '-')} |")

        row(
            "member sockets connected through nginx",
            f"{GOALS['sockets']:,}",
            f"{f['connected']:,} of {a.sockets:,} in {f['connect_s']:.0f} s",
            f"{f['connected'] / GOALS['sockets']:.2f}",
            "connect",
        )
        for name, d in f["per_daphne"].items():
            row(
                f"memory per socket, {name} ({d['sockets']:,} sockets, RSS "
                f"{d['rss_before_mb']:.0f} -> {d['rss_after_mb']:.0f} MB)",
                f"<= {GOALS['kb_per_socket']:.0f} KB",
                f"{d['kb_per_socket']:.1f} KB",
                f"{d['kb_per_socket'] / GOALS['kb_per_socket']:.2f}",
                "connect",
            )
        w = f["wave1"]
        p50, p99 = pct(w.last_ms, 50), pct(w.last_ms, 99)
        row(
            f"wave 1, POST -> last frame p50 ({len(w.last_ms)} incidents, "
            f"{w.targets / max(1, len(w.last_ms)):.0f} sockets each; POST alone p50 "
            f"{pct(w.post_ms, 50):.1f} ms, first -> last frame p50 {pct(w.spread_ms, 50):.1f} ms; "
            f"to the last phone's turn in the load generator p50 {pct(w.handled_ms, 50):.1f} ms)",
            f"<= {GOALS['wave1_p50_ms']:.0f} ms",
            f"{p50:.1f} ms",
            f"{p50 / GOALS['wave1_p50_ms']:.2f}",
            "wave1",
        )
        row(
            f"wave 1, POST -> last frame p99 (to the last phone's turn: "
            f"{pct(w.handled_ms, 99):.1f} ms)",
            f"<= {GOALS['wave1_p99_ms']:.0f} ms",
            f"{p99:.1f} ms",
            f"{p99 / GOALS['wave1_p99_ms']:.2f}",
            "wave1",
        )
        w = f["wide"]
        n = max(1, len(w.post_ms))
        wp50, wmax = pct(w.last_ms, 50), pct(w.last_ms, 100)
        row(
            f"city-wide alert, POST -> last frame p50 / max ({n} alerts, "
            f"{w.targets // n:,} sockets each; POST alone p50 {pct(w.post_ms, 50):.0f} ms, "
            f"first -> last frame p50 {pct(w.spread_ms, 50):.0f} ms; to the last phone's turn in "
            f"the load generator p50 / max {pct(w.handled_ms, 50):.0f} / "
            f"{pct(w.handled_ms, 100):.0f} ms)",
            f"<= {GOALS['wide_ms']:.0f} ms",
            f"{wp50:.0f} / {wmax:.0f} ms",
            f"{wp50 / GOALS['wide_ms']:.2f} / {wmax / GOALS['wide_ms']:.2f}",
            "wide",
        )
        share = w.delivered / max(1, w.targets)
        row(
            "city-wide alert, delivered",
            "100%",
            f"{share:.2%} ({w.delivered:,} of {w.targets:,})",
            f"{share:.4f}",
            "wide",
        )
        s = f.get("storm")
        if s:
            resume = f"{s['resume_s']:.1f} s" if s["resume_s"] is not None else "-"
            row(
                f"reconnect storm: nginx restarted ({s['down_s']:.1f} s down), "
                f"time until every phone resumed",
                "report",
                f"{resume} ({s['resumed']:,} of {s['dropped']:,} resumed; a phone's handshake "
                f"p50/p99 {s['handshake_ms'][0]:.0f}/{s['handshake_ms'][1]:.0f} ms, its resume "
                f"{s['resume_ms'][0]:.0f}/{s['resume_ms'][1]:.0f} ms)",
                "-",
                "storm",
            )
            row(
                f"reconnect storm: alerts lost on resumed phones / rung twice ({s['alerts']} "
                f"alerts, {s['targets_resumed']:,} deliveries to resumed phones; "
                f"{s['copies']:,} copies of known ids dropped)",
                "0 / 0",
                f"{s['lost_resumed']} / {s['rung_twice']}",
                "-",
                "storm",
            )
            row(
                "reconnect storm: deliveries not shown, all phones (those not resumed included)",
                "report",
                f"{s['lost']:,} of {s['targets']:,}",
                "-",
                "storm",
            )
            row(
                "reconnect storm: socket channels still subscribed in Redis / open sockets, "
                "after (before)",
                "equal",
                f"{s['specific_channels']:,} / {s['connected_after']:,} "
                f"({s['specific_before'][0]:,} / {s['specific_before'][1]:,})",
                "-",
                "storm",
            )
        rows.append("")
        rows.append(
            f"nginx: {f['nginx_kb_per_socket']:.1f} KB per socket; load generator "
            f"({a.loadgens} processes): {f['loadgen_mb']:.0f} MB. "
            f"Group sends failed in daphne: {f['push_failures']}; tracebacks in daphne logs: "
            f"{f['tracebacks']}."
        )
        return "\n".join(rows)


def write_doc(args, section: str) -> None:
    label = f"city:{args.daphnes}x{args.sockets}" + (f"+web{args.web}" if args.web else "")
    start, end = f"<!-- {label}:start -->", f"<!-- {label}:end -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{start}\n{section.strip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--units", type=int, default=0, help="default: sockets / 9.5")
    parser.add_argument("--daphnes", type=int, default=2, help="daphne processes for sockets")
    # The layout deploy/nginx.conf.template recommends for a city: the intake API
    # must not wait behind a daphne busy writing a city-wide alert's frames.
    parser.add_argument(
        "--web", type=int, default=1, help="daphne processes for HTTP only (0: shared)"
    )
    parser.add_argument("--loadgens", type=int, default=2, help="load generator processes")
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--spacing", type=float, default=0.2)
    parser.add_argument("--wide", type=int, default=3, help="city-wide alerts")
    parser.add_argument("--wide-spacing", type=float, default=4.0)
    parser.add_argument("--heartbeat", type=float, default=20.0, help="WS_HEARTBEAT_S")
    # Handshakes in flight per load generator process. More than daphne answers
    # within its handshake timeout only turns into resets and retries.
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--connect-timeout", type=float, default=1800.0)
    parser.add_argument("--no-ack", action="store_true", help="phones do not ack alerts")
    parser.add_argument("--no-storm", action="store_true")
    parser.add_argument("--storm-down", type=float, default=1.0, help="seconds nginx is down")
    parser.add_argument(
        "--storm-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for every phone to resume",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="svg",
        choices=["svg", "raw", "native"],
        help="py-spy the wave-one and city-wide waves: flame graphs, or collapsed stacks "
        "(raw; native: with C frames, pausing the process per sample)",
    )
    parser.add_argument(
        "--gc", action="store_true", help="log each daphne's garbage collector pauses"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace each daphne's allocations: which lines hold the memory per socket",
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args, _unknown = parser.parse_known_args()
    args.units = args.units or int(args.sockets / 9.5) + 10

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, max(hard, 65536)))

    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="city-"))
    city = None
    run = Run(args)
    try:
        print(f"Seeding {args.units} units, everyone on duty, {args.sockets} sessions...")
        city = City.create(
            root,
            outer_database_url=os.environ.get("DATABASE_URL"),
            units=args.units,
            extra_env={"ESCALATION_POLICIES": json.dumps(BENCH_POLICIES)},
        )
        logins = city.run_setup("bench-city-duty", timeout=600, count=args.sockets)
        if len(logins) < args.sockets:
            print(f"  only {len(logins)} members: raise --units", flush=True)
            args.sockets = len(logins)
        run.logins = logins
        print(f"  seeded in {time.monotonic() - began:.0f} s", flush=True)
        run.run(city, logins)
    except ServiceError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        if city is not None:
            city.close()
        if args.keep or args.profile:
            print(f"Logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    table = run.table()
    print()
    print(table)
    print(f"\n(total {time.monotonic() - began:.0f} s)")
    city_engine = (
        "PostgreSQL 15" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    )
    web_daphnes = f", HTTP on {args.web} more daphne holding no sockets" if args.web else ""
    if not args.no_write:
        write_doc(
            args,
            f"## The whole city on duty: {args.sockets:,} member sockets, {args.daphnes} daphne "
            f"behind nginx{web_daphnes} (`bench/city.py`)\n\n"
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}; load average "
            "beside each figure (the machine is shared: figures are noisy). Loopback; "
            f"{city_engine}"
            f" + embedded redis-server (pub/sub layer) + {args.daphnes} daphne behind nginx"
            f"{web_daphnes} "
            "(deploy/nginx.conf.template) + a Celery worker + beat; every member of a "
            f"{args.units}-unit city on duty; {args.sockets:,} member websockets held by "
            f"bench/loadgen.py in {args.loadgens} processes, acking every alert"
            f"{' (no acks)' if args.no_ack else ''}; heartbeat every {args.heartbeat:.0f} s.\n\n"
            f"{table}\n\n"
            f"Reproduce: `.venv/bin/python bench/city.py --sockets {args.sockets} "
            f"--daphnes {args.daphnes} --web {args.web}`.\n",
        )
        print(f"Wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
