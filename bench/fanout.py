"""Alert fan-out benchmark on the real system: POST an incident -> the last alert
frame of its wave on the members' websockets, with 1,000 member sockets connected.

    .venv/bin/python bench/fanout.py [--sockets 1000] [--incidents 50] [--no-write]

Starts a throwaway city (tests/e2e/harness.py): SQLite in a temp dir, the embedded
redis-server on a free port, ``--units`` seeded units, daphne + a Celery worker +
beat. ``--sockets`` on-duty members get sessions, and a load generator in its OWN
process (asyncio + websockets) connects them all and stamps every alert frame on
arrival (CLOCK_MONOTONIC, shared by all processes on Linux). This process POSTs
incidents at the seeded units one by one and, for each, takes
``last alert frame of wave 1 on any of its target sockets - POST start``: the
target sockets are the connected members of the units in the POST's candidates.
Then a few city-wide waves (every unit, every connected socket) measure how long
the whole fan-out to ~1,000 sockets takes.

Runs once per channel layer (``CHANNEL_LAYER_BACKEND``): RedisPubSubChannelLayer
(the default) and RedisChannelLayer. Loopback only; prints the figures and writes
them into docs/benchmarks.md (between the fan-out markers) unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import City, Http, ServiceError, System  # noqa: E402

BACKENDS = {
    "pubsub": "config.pubsub.BatchedPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}
WAVE1 = {"radius_m": 1500, "units": 5}
# The default wave 1 of the real policy; no tier fires within a run. "crowd"
# incidents alert every unit in the city: the whole-fan-out figure.
BENCH_POLICIES = {
    "default": {
        "wave1": WAVE1,
        "enough_accepts": {"1": 1, "2": 2, "3": 3, "4": 5},
        "tiers": [
            {
                "name": "respond_1min",
                "after_s": 1800,
                "unless": "responded_at",
                "wave": {"radius_m": 3000, "units": 10},
                "notify": ["station"],
                "flag": False,
            }
        ],
    },
    "crowd": {
        "wave1": {"radius_m": 200_000, "units": 100_000},
        "enough_accepts": {"2": 1},
        "tiers": [],
    },
}
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- fanout:start -->", "<!-- fanout:end -->"


# --- load generator (its own process) --------------------------------------------------


def loadgen(conn, ws_url: str, origin: str, clients: list[dict], concurrency: int) -> None:
    """Connect every client, then stamp alert frames until told to stop.

    Parent -> child: "collect" (reply: the records so far, then forget them),
    "stop". Child -> parent: ("ready", stats) once every connect was tried.
    """
    asyncio.run(_loadgen(conn, ws_url, origin, clients, concurrency))


async def _loadgen(conn, ws_url, origin, clients, concurrency) -> None:
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    records: list[tuple[int, int, float]] = []  # (incident id, member id, arrival)
    stats: dict[str, Any] = {"connected": 0, "failed": 0, "errors": [], "dropped": 0}
    tried = 0
    all_tried = asyncio.Event()
    started = time.monotonic()

    async def client(c: dict) -> None:
        nonlocal tried
        ws = None
        try:
            async with gate:
                ws = await connect(
                    ws_url,
                    origin=origin,
                    additional_headers={"Cookie": f"sessionid={c['sessionid']}"},
                    proxy=None,
                    compression=None,
                    open_timeout=60,
                    ping_interval=None,
                    max_queue=None,
                )
                hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if hello.get("type") != "hello":
                raise RuntimeError(f"no hello: {hello}")
            stats["connected"] += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
            stats["failed"] += 1
            if len(stats["errors"]) < 5:
                stats["errors"].append(repr(exc)[:200])
            if ws is not None:
                await ws.close()
            return
        finally:
            tried += 1
            if tried == len(clients):
                all_tried.set()
        member_id = c["member_id"]
        try:
            async for raw in ws:
                at = time.monotonic()
                if '"incident.alert"' in raw:
                    records.append((json.loads(raw)["incident"]["id"], member_id, at))
                elif '"ping"' in raw:
                    await ws.send(json.dumps({"type": "pong", "id": None}))
        except Exception:  # noqa: BLE001 - a socket dropped mid-run: counted
            stats["dropped"] += 1

    tasks = [asyncio.create_task(client(c)) for c in clients]
    await all_tried.wait()
    stats["connect_s"] = time.monotonic() - started
    conn.send(("ready", stats))
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "collect":
            conn.send(("records", list(records), stats["dropped"]))
            records.clear()
        else:
            break
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- the run ----------------------------------------------------------------------------


@dataclass
class Waves:
    """Per incident: POST time, first and last alert frame, targets, missed frames."""

    post_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    last_ms: list[float] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    missed: int = 0

    def score(self, posts, records) -> None:
        arrivals: dict[tuple[int, int], float] = {}
        for incident_id, member_id, at in records:
            arrivals.setdefault((incident_id, member_id), at)
        for incident_id, started, post_s, targets in posts:
            got = [arrivals[(incident_id, m)] for m in targets if (incident_id, m) in arrivals]
            self.missed += len(targets) - len(got)
            self.post_ms.append(post_s * 1000)
            self.targets.append(len(targets))
            if got:
                self.first_ms.append((min(got) - started) * 1000)
                self.last_ms.append((max(got) - started) * 1000)

    @property
    def spread_ms(self) -> list[float]:
        return [last - first for first, last in zip(self.first_ms, self.last_ms, strict=True)]


@dataclass
class Figures:
    backend: str
    connected: int = 0
    failed: int = 0
    connect_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    wave1: Waves = field(default_factory=Waves)
    wide: Waves = field(default_factory=Waves)
    dropped: int = 0
    push_failures: int = 0  # "channel layer push failed" warnings in daphne's log


def run_backend(city: City, name: str, logins: list[dict], args) -> Figures:
    figures = Figures(backend=name)
    system = System(city, env={"CHANNEL_LAYER_BACKEND": BACKENDS[name]})
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = None
    try:
        daphne = system.start_daphne()
        system.start_worker()
        system.start_beat()
        api = Http(daphne.http_url)
        api.login_token(city.scenario["staff"]["username"], city.scenario["staff"]["password"])
        proc = ctx.Process(
            target=loadgen,
            args=(child, daphne.ws_url, api.origin, logins, args.connect_concurrency),
            daemon=True,
        )
        proc.start()
        if not parent.poll(180):
            raise ServiceError("load generator did not finish connecting within 180 s")
        _, stats = parent.recv()
        figures.connected, figures.failed = stats["connected"], stats["failed"]
        figures.connect_s, figures.errors = stats["connect_s"], stats["errors"]
        print(
            f"  [{name}] {figures.connected} sockets connected in {figures.connect_s:.1f} s"
            f" ({figures.failed} failed{': ' + figures.errors[0] if figures.errors else ''})",
            flush=True,
        )
        members_by_unit: dict[int, list[int]] = {}
        for c in logins:
            members_by_unit.setdefault(c["unit_id"], []).append(c["member_id"])

        units = list({c["unit_id"]: c for c in logins}.values())
        step = max(1, len(units) // (args.incidents + args.warmup))
        spots = units[::step][: args.incidents + args.warmup]
        posts: list[tuple[int, float, float, set[int]]] = []  # id, start, post s, targets
        for i, spot in enumerate(spots):
            started = time.monotonic()
            r = api.post(
                "/api/v1/incidents/",
                {"kind": "fight", "lat": spot["unit_lat"], "lon": spot["unit_lon"]},
            )
            if r.status != 201:
                raise ServiceError(f"POST incident -> {r.status}: {r.body[:300]!r}")
            body = r.json()
            targets = {m for c in body["candidates"] for m in members_by_unit.get(c["unit"], [])}
            if i >= args.warmup and targets:
                posts.append((body["incident"]["id"], started, r.elapsed_s, targets))
            time.sleep(args.spacing)
        time.sleep(1.0)
        parent.send("collect")
        _, records, _dropped = parent.recv()
        figures.wave1.score(posts, records)

        wide_posts = []
        for _ in range(args.wide):
            started = time.monotonic()
            r = api.post(
                "/api/v1/incidents/",
                {"kind": "crowd", "lat": spots[0]["unit_lat"], "lon": spots[0]["unit_lon"]},
                timeout=60,
            )
            if r.status != 201:
                raise ServiceError(f"POST city-wide incident -> {r.status}: {r.body[:300]!r}")
            body = r.json()
            targets = {m for c in body["candidates"] for m in members_by_unit.get(c["unit"], [])}
            wide_posts.append((body["incident"]["id"], started, r.elapsed_s, targets))
            time.sleep(args.wide_spacing)
        time.sleep(1.0)
        parent.send("collect")
        _, records, figures.dropped = parent.recv()
        figures.wide.score(wide_posts, records)
        figures.push_failures = daphne.log().count("channel layer push failed")
    finally:
        if proc is not None:
            with contextlib.suppress(Exception):
                parent.send("stop")
            proc.join(timeout=20)
            if proc.is_alive():
                proc.kill()
        system.stop()
    return figures


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.1f}" if values else "-"


def report(results: list[Figures], args) -> str:
    def layer(f: Figures) -> str:
        return BACKENDS[f.backend].rsplit(".", 1)[-1]

    lines = [
        "| channel layer | sockets connected (s) | POST p50 / p99 ms | "
        "POST -> first frame p50 ms | POST -> last frame p50 / p99 ms | "
        "targets per wave | missed frames |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in results:
        w = f.wave1
        lines.append(
            f"| {layer(f)} | {f.connected}/{args.sockets} ({f.connect_s:.1f}) | "
            f"{pct(w.post_ms, 50)} / {pct(w.post_ms, 99)} | {pct(w.first_ms, 50)} | "
            f"**{pct(w.last_ms, 50)} / {pct(w.last_ms, 99)}** | "
            f"{np.mean(w.targets) if w.targets else 0:.1f} | {w.missed} |"
        )
    lines += [
        "",
        f"City-wide wave: one POST alerts every available unit, i.e. every connected "
        f"member of a unit with someone to spare ({args.wide} incidents, "
        f"{args.wide_spacing:.1f} s apart). First -> last frame is the fan-out itself; "
        "before the first frame the request ranks and writes the whole wave.",
        "",
        "| channel layer | target sockets | POST p50 / max ms | POST -> last frame p50 / max ms "
        "| first -> last frame p50 / max ms | missed frames |",
        "|---|---|---|---|---|---|",
    ]
    for f in results:
        w = f.wide
        lines.append(
            f"| {layer(f)} | {int(np.mean(w.targets)) if w.targets else 0} | "
            f"{pct(w.post_ms, 50)} / {pct(w.post_ms, 100)} | "
            f"{pct(w.last_ms, 50)} / {pct(w.last_ms, 100)} | "
            f"{pct(w.spread_ms, 50)} / {pct(w.spread_ms, 100)} | {w.missed} |"
        )
    for f in results:
        if f.failed or f.errors or f.dropped or f.push_failures:
            lines += [
                "",
                f"{layer(f)}: {f.failed} connects failed, {f.dropped} sockets dropped, "
                f"{f.push_failures} group sends failed in daphne (`channel layer push failed`)"
                f"{', e.g. ' + '; '.join(f.errors[:2]) if f.errors else ''}.",
            ]
    return "\n".join(lines)


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPU ({cpu or platform.processor()}), Python {platform.python_version()}"
    )


def write_doc(section: str) -> None:
    DOC.parent.mkdir(exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{START}\n{section.strip()}\n{END}"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--units", type=int, default=650, help="seeded units (~1.65 on duty each)")
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3, help="incidents not counted")
    parser.add_argument("--spacing", type=float, default=0.15, help="seconds between incidents")
    parser.add_argument("--wide", type=int, default=5, help="city-wide waves")
    parser.add_argument("--wide-spacing", type=float, default=1.5)
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument("--backends", default="pubsub,core")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (process logs)")
    args, _unknown = parser.parse_known_args()  # ./dev bench passes its args to every bench

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.sockets + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="fanout-"))
    city = None
    results: list[Figures] = []
    try:
        print(f"Seeding {args.units} units and {args.sockets} member sessions...", flush=True)
        city = City.create(
            root,
            units=args.units,
            extra_env={"ESCALATION_POLICIES": json.dumps(BENCH_POLICIES)},
        )
        logins = city.run_setup("bench-logins", count=args.sockets)
        if len(logins) < args.sockets:
            print(f"  only {len(logins)} on-duty members: raise --units", flush=True)
            args.sockets = len(logins)
        seeded = city.db.scalar("SELECT COUNT(*) FROM units_unit")
        for name in args.backends.split(","):
            print(f"Channel layer {BACKENDS[name]}:", flush=True)
            results.append(run_backend(city, name, logins, args))
    except ServiceError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        if city is not None:
            city.close()
        if args.keep:
            print(f"Logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    table = report(results, args)
    print()
    print(table)
    print(f"\n(total {time.monotonic() - began:.0f} s; load average after the run {load})")
    if not args.no_write:
        write_doc(
            "## Alert fan-out: POST -> last alert frame (`bench/fanout.py`)\n\n"
            f"{time.strftime('%Y-%m-%d')}, {machine()}, load average after the run {load}. "
            "Loopback; SQLite (WAL) + embedded "
            f"redis-server + one daphne + one Celery worker + beat, all separate processes; "
            f"{seeded} units seeded; {args.sockets} member websockets held open by a load "
            f"generator in its own process (asyncio + websockets). {args.incidents} incidents "
            f"(after {args.warmup} warm-up), {args.spacing * 1000:.0f} ms apart, each at a "
            f"seeded unit; wave 1 = up to {WAVE1['units']} units within {WAVE1['radius_m']} m. "
            '"Last frame" = the latest arrival of that incident\'s `incident.alert` over all '
            "its target sockets (connected on-duty members of the POST's candidate units), "
            "measured from the start of the POST. Goal: p50 < 25 ms, p99 < 60 ms.\n\n"
            f"{table}\n\n"
            "Reproduce: `.venv/bin/python bench/fanout.py` (about two minutes).\n"
        )
        print(f"Wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
