"""Command board benchmark on the real system: a board showing 50 open incidents
with 500 responders moving, and the time from a member's tap to the board.

    .venv/bin/python bench/board.py [--incidents 50] [--responders 500] [--seconds 30]
                                    [--taps 100] [--no-write]

Starts a throwaway city (tests/e2e/harness.py): SQLite, the embedded redis-server,
daphne + a Celery worker. ``--responders`` on-duty members get sessions; their
units are spread over ``--incidents`` incidents (opened and alerted through
dispatch's public API, one unit of each accepting, so every member may share
its position). A load generator in its OWN process holds the members' sockets
and sends each member's position every 5 s (staggered): responders moving.

The board is headless Chromium (Debian's) at 1920x1080, signed in as city-wide
staff. Over ``--seconds``: the websocket frames it receives per second (CDP
``Network.webSocketFrameReceived``), and the renderer's main-thread tasks from a
Chromium trace (``RunTask`` on ``CrRendererMain``): how many took over 50 ms.

Tap -> board: ``--taps`` members each accept for their unit (one tap each, from
this process's sockets) while the load runs; the time from sending the accept to
the board's DOM showing that unit "accepted" (a MutationObserver in the page
stamps ``Date.now()``; same machine clock as ``time.time()`` here).

Loopback only; prints the figures and appends them to docs/benchmarks.md (between
the board markers) unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import City, Http, MemberSocket, ServiceError, System  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- board:start -->", "<!-- board:end -->"
# Nothing escalates or stands down during a run: every alerted unit stays on.
BENCH_POLICIES = {
    "default": {
        "wave1": {"radius_m": 1500, "units": 5},
        "enough_accepts": {"1": 100000, "2": 100000, "3": 100000, "4": 100000},
        "tiers": [],
    }
}
POSITION_EVERY_S = 5.0


def django_run(city: City, code: str) -> Any:
    script = "import json, django\ndjango.setup()\nresult = None\n" + code
    script += "\nprint(json.dumps(result))\n"
    # On stdin: the logins it carries pass the 128 KB limit of one argument.
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-"],
        input=script,
        cwd=ROOT,
        env=city.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise ServiceError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


SETUP = """
from dispatch import services
from dispatch.models import Dispatch, Incident
from units.models import Member
logins = {logins}
incidents = {incidents}
tap_per = {tap_per}
by_unit = {{}}
for c in logins:
    by_unit.setdefault(c["unit_id"], []).append(c)
unit_ids = sorted(by_unit)
groups = [unit_ids[i::incidents] for i in range(incidents)]
responders, taps = [], []
for group in groups:
    if len(group) < 2:
        continue
    first = by_unit[group[0]][0]
    incident = services.incident_create(
        kind="fight", lat=first["unit_lat"] + 0.001, lon=first["unit_lon"],
        source=Incident.Source.CONSOLE, send_wave1=False,
    ).incident
    services.wave_send(incident=incident, unit_ids=group, reason="bench")
    cut = max(1, len(group) - tap_per)
    # These units accept now (their members move); the rest wait for the taps.
    for unit_id in group[:cut]:
        services.dispatch_act(incident_id=incident.pk,
            member=Member.objects.get(pk=by_unit[unit_id][0]["member_id"]), action="accept")
        for c in by_unit[unit_id]:
            responders.append({{**c, "incident_id": incident.pk,
                "lat": incident.lat, "lon": incident.lon}})
    for unit_id in group[cut:]:
        taps.append({{**by_unit[unit_id][0], "incident_id": incident.pk}})
# Every phone has acked its alert already (the socket re-sends unacked ones).
for c in logins:
    for incident_id in Dispatch.objects.filter(unit_id=c["unit_id"]).values_list(
            "incident_id", flat=True):
        services.delivery_ack(incident_id=incident_id,
            member=Member.objects.get(pk=c["member_id"]))
result = {{"responders": responders, "taps": taps}}
"""


# --- load generator (its own process) --------------------------------------------------


def loadgen(conn, ws_url: str, origin: str, movers: list[dict]) -> None:
    asyncio.run(_loadgen(conn, ws_url, origin, movers))


async def _loadgen(conn, ws_url, origin, movers) -> None:
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    stats = {"connected": 0, "failed": 0, "sent": 0, "refused": 0}
    # Few handshakes at a time: each takes daphne's one database thread.
    gate = asyncio.Semaphore(8)
    running = asyncio.Event()
    stop = asyncio.Event()

    async def member(c: dict, offset: float) -> None:
        for attempt in range(3):
            try:
                ws = await connect_one(c)
                break
            except Exception:  # noqa: BLE001 - retried, then counted
                if attempt == 2:
                    stats["failed"] += 1
                    return
                await asyncio.sleep(2)
        stats["connected"] += 1
        await move(ws, c, offset)

    async def connect_one(c: dict):
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
            await asyncio.wait_for(ws.recv(), 30)
            return ws

    async def move(ws, c: dict, offset: float) -> None:
        async def reader() -> None:
            async for raw in ws:
                if '"ping"' in raw:
                    await ws.send(json.dumps({"type": "pong", "id": None}))
                elif '"incident.alert"' in raw:
                    # As a phone does: an alert not acked is re-sent every heartbeat.
                    frame = json.loads(raw)
                    await ws.send(
                        json.dumps(
                            {"type": "ack", "id": None, "incident_id": frame["incident"]["id"]}
                        )
                    )
                elif '"error"' in raw:
                    stats["refused"] += 1

        read = asyncio.create_task(reader())
        await running.wait()
        await asyncio.sleep(offset)
        rng = random.Random(c["member_id"])
        lat, lon = c["lat"] - 0.004, c["lon"]
        while not stop.is_set():
            lat += 0.0003 * rng.random()
            lon += 0.0002 * (rng.random() - 0.5)
            await ws.send(
                json.dumps(
                    {
                        "type": "location",
                        "id": None,
                        "incident_id": c["incident_id"],
                        "lat": lat,
                        "lon": lon,
                        "accuracy": 10,
                    }
                )
            )
            stats["sent"] += 1
            with contextlib_suppress():
                await asyncio.wait_for(stop.wait(), POSITION_EVERY_S)
        read.cancel()
        await ws.close()

    tasks = [
        asyncio.create_task(member(c, POSITION_EVERY_S * i / max(1, len(movers))))
        for i, c in enumerate(movers)
    ]
    while stats["connected"] + stats["failed"] < len(movers):
        await asyncio.sleep(0.1)
    conn.send(("ready", dict(stats)))
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "move":
            running.set()
        elif command == "stats":
            conn.send(("stats", dict(stats)))
        else:
            break
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


class contextlib_suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is asyncio.TimeoutError


# --- the board --------------------------------------------------------------------------

# Counted in the page itself: every message the board's sockets receive, by kind.
# (The CDP frame event of the first runs reached this process only when Playwright
# next pumped its event loop, so its count said nothing about the window.)
COUNT_FRAMES = """
(() => {
  const Real = window.WebSocket;
  window.__ws = { all: 0, location: 0, update: 0 };
  window.__arrived = {};
  window.WebSocket = class extends Real {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (m) => {
        const w = window.__ws;
        w.all++;
        if (m.data.includes('"responder.location"')) w.location++;
        else if (m.data.includes('"incident.update"')) {
          w.update++;
          // When each unit's acceptance reached the page (tap -> socket).
          if (m.data.includes('"event": "accepted"')) {
            const f = JSON.parse(m.data);
            const key = f.incident_id + ":" + f.unit_id;
            if (!(key in window.__arrived)) window.__arrived[key] = Date.now();
          }
        }
      });
    }
  };
})();
"""

# A unit's acceptance is shown by its row (cards in or near the view hold their
# rows), or by its card's tally of units by state (cards out of view): a tally
# changed after the acceptance reached the page shows it.
STAMP_ACCEPTS = """
window.__accepted = {};
window.__shownBy = { row: 0, tally: 0 };
new MutationObserver((records) => {
  for (const r of records) {
    const tr = r.target;
    if (r.attributeName === "data-status" && tr.dataset.status === "accepted") {
      const key = tr.closest("article").dataset.id + ":" + tr.dataset.unit;
      if (key in window.__arrived && !(key in window.__accepted)) {
        window.__accepted[key] = Date.now();
        window.__shownBy.row++;
      }
    } else if (r.type !== "attributes" && (tr.nodeType === 3 ? tr.parentElement : tr)
        ?.matches(".tally")) {
      const prefix = tr.parentNode.closest("article").dataset.id + ":";
      for (const key in window.__arrived) {
        if (key.startsWith(prefix) && !(key in window.__accepted)) {
          window.__accepted[key] = Date.now();
          window.__shownBy.tally++;
        }
      }
    }
  }
  for (const r of records) for (const n of r.addedNodes || []) {
    if (n.nodeType === 1) for (const tr of n.matches("tr[data-status=accepted]") ? [n] :
        n.querySelectorAll("tr[data-status=accepted]")) {
      const a = tr.closest("article");
      if (!a) continue;
      const key = a.dataset.id + ":" + tr.dataset.unit;
      if (key in window.__arrived && !(key in window.__accepted)) {
        window.__accepted[key] = Date.now();
        window.__shownBy.row++;
      }
    }
  }
}).observe(document.getElementById("incidents"),
  {subtree: true, childList: true, characterData: true, attributes: true,
   attributeFilter: ["data-status"]});
"""


# The live DOM a major garbage collection traces: nodes (elements and text) in the
# list of incidents, on the map, in the whole page.
COUNT_NODES = """
(() => {
  const count = (root) => {
    if (!root) return 0;
    let n = 0;
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    while (walk.nextNode()) n++;
    return n;
  };
  const $ = (id) => document.getElementById(id);
  return { page: count(document.documentElement), incidents: count($("incidents")),
           map: count($("map")), follow_up: count($("follow-up")) };
})()
"""


def long_tasks(trace_path: Path) -> dict[str, Any]:
    data = json.loads(trace_path.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    threads = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    main = {k for k, v in threads.items() if v == "CrRendererMain"}
    durations = [
        e["dur"] / 1000
        for e in events
        if e.get("name") == "RunTask" and e.get("ph") == "X" and (e["pid"], e["tid"]) in main
    ]
    # What the long tasks spent their time on: the events nested in them, by name.
    long = [
        (e["ts"], e["ts"] + e["dur"], (e["pid"], e["tid"]))
        for e in events
        if e.get("name") == "RunTask"
        and e.get("ph") == "X"
        and (e["pid"], e["tid"]) in main
        and e["dur"] > 50_000
    ]
    inside: dict[str, float] = {}
    for e in events:
        if (
            e.get("ph") != "X"
            or e.get("name") == "RunTask"
            or (e.get("pid"), e.get("tid")) not in main
        ):
            continue
        for start, end, _thread in long:
            if start <= e["ts"] < end:
                name = e["name"]
                if name == "FunctionCall":
                    data = e.get("args", {}).get("data", {})
                    where = data.get("url", "").rsplit("/", 1)[-1]
                    name = f"{data.get('functionName', '')} {where}:{data.get('lineNumber', '')}"
                inside[name] = inside.get(name, 0) + e["dur"] / 1000
                break
    top = sorted(inside.items(), key=lambda kv: -kv[1])[:12]
    # Garbage collections on the main thread, long or not: how many, the longest.
    gcs: dict[str, list[float]] = {}
    for e in events:
        thread = (e.get("pid"), e.get("tid"))
        if e.get("ph") == "X" and e.get("name") in ("MajorGC", "MinorGC") and thread in main:
            gcs.setdefault(e["name"], []).append(e["dur"] / 1000)
    return {
        "in_long_tasks_ms": {k: round(v, 1) for k, v in top},
        "gc_count_max_ms": {k: [len(v), round(max(v), 1)] for k, v in gcs.items()},
        "tasks": len(durations),
        "over_50ms": sum(d > 50 for d in durations),
        "max_ms": round(max(durations, default=0), 1),
        "p99_ms": round(float(np.percentile(durations, 99)), 1) if durations else 0,
    }


def _ack_alerts(sock: MemberSocket, frame: dict) -> None:
    if frame.get("type") == "incident.alert":
        sock.send({"type": "ack", "id": None, "incident_id": frame["incident"]["id"]})


def tap_socket(daphne, http: Http, t: dict, system: System) -> MemberSocket:
    for attempt in range(3):
        try:
            return MemberSocket(
                daphne.ws_url, sessionid=t["sessionid"], origin=http.origin, on_frame=_ack_alerts
            )
        except Exception as exc:  # noqa: BLE001 - retried, then reported with daphne's log
            if attempt == 2:
                raise ServiceError(f"tap socket: {exc!r}\n{daphne.log()[-3000:]}") from exc
            time.sleep(3)
    raise AssertionError("unreachable")


class FeedProbe:
    """A second client of the same supervisor feed, in Python: what the server
    sends, whatever the browser makes of it (tells a slow server from a slow page)."""

    def __init__(self, ws_url: str, origin: str, sessionid: str) -> None:
        import threading

        from websockets.sync.client import connect

        self.conn = connect(
            ws_url.replace("/ws/member/", "/ws/supervisor/"),
            origin=origin,
            additional_headers={"Cookie": f"sessionid={sessionid}"},
            proxy=None,
            compression=None,
            open_timeout=30,
            max_size=None,
        )
        self.times: list[float] = []
        self.accepted: dict[str, float] = {}
        self.error = ""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for raw in self.conn:
                self.times.append(time.monotonic())
                if '"hello"' in raw:
                    self.conn.send(json.dumps({"type": "resume", "id": 1, "seqs": {}}))
                elif '"ping"' in raw:
                    self.conn.send(json.dumps({"type": "pong", "id": None}))
                elif '"event": "accepted"' in raw:
                    f = json.loads(raw)
                    self.accepted.setdefault(f"{f['incident_id']}:{f['unit_id']}", time.time())
        except Exception as exc:  # noqa: BLE001 - closed at the end of the run
            self.error = repr(exc)

    def close(self) -> None:
        self.conn.close()


def run(args) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-board-"))
    city = system = proc = None
    try:
        city = City.create(
            root,
            units=args.units,
            extra_env={"ESCALATION_POLICIES": json.dumps(BENCH_POLICIES), "LOG_LEVEL": "WARNING"},
        )
        logins = city.run_setup("bench-logins", count=args.responders + args.taps * 3)
        tap_per = -(-args.taps // args.incidents)
        setup = django_run(
            city, SETUP.format(logins=repr(logins), incidents=args.incidents, tap_per=tap_per)
        )
        movers = setup["responders"]
        taps = setup["taps"][: args.taps]
        system = System(city)
        daphne = system.start_daphne()
        system.start_worker(concurrency=1)
        http = Http(daphne.http_url)
        moving = movers[: args.responders]
        # The tapping members' sockets (this process), open before the load starts.
        tap_socks = [(t, tap_socket(daphne, http, t, system)) for t in taps]
        parent, child = mp.Pipe()
        proc = mp.Process(
            target=loadgen, args=(child, daphne.ws_url, http.origin, moving), daemon=True
        )
        proc.start()
        _, ready = parent.recv()

        from playwright.sync_api import sync_playwright

        staff = city.scenario["staff"]
        sessionid = Http(daphne.http_url).login_session(staff["username"], staff["password"])
        figures: dict[str, Any] = {
            "incidents": args.incidents,
            "responders": ready["connected"],
            "connect_failed": ready["failed"],
            "units": args.units,
        }
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                ],
            )
            context = browser.new_context(viewport={"width": 1920, "height": 1080})
            context.add_init_script(COUNT_FRAMES)
            context.add_cookies([{"name": "sessionid", "value": sessionid, "url": daphne.http_url}])
            page = context.new_page()
            frames: list[float] = []
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.on("Network.webSocketFrameReceived", lambda e: frames.append(time.monotonic()))
            probe = FeedProbe(daphne.ws_url, http.origin, sessionid)
            page.goto(daphne.http_url + "/board/")
            page.wait_for_selector("#conn[data-state=online]", timeout=30_000)
            deadline = time.monotonic() + 60
            while page.evaluate("document.querySelectorAll('article.incident').length") < len(
                {m["incident_id"] for m in moving}
            ):
                if time.monotonic() > deadline:
                    raise ServiceError("the board did not show every incident")
                page.wait_for_timeout(200)
            figures["cards"] = page.evaluate("document.querySelectorAll('article.incident').length")
            page.wait_for_timeout(1000)
            figures["dom_nodes"] = page.evaluate(COUNT_NODES)
            page.evaluate(STAMP_ACCEPTS)
            parent.send("move")
            time.sleep(POSITION_EVERY_S + 1)  # every mover has sent once
            trace = root / "trace.json"
            browser.start_tracing(
                page=page,
                path=str(trace),
                categories=[
                    "devtools.timeline",
                    "disabled-by-default-devtools.timeline",
                    "toplevel",
                ],
            )
            frames.clear()
            counted = page.evaluate("({...window.__ws})")
            probe_before = len(probe.times)
            started = time.monotonic()
            sent: dict[str, float] = {}
            sent_mono: dict[str, float] = {}
            tap_errors: list[str] = []
            gap = max(0.05, (args.seconds - 2) / max(1, len(tap_socks)))
            for t, sock in tap_socks:
                sent[f"{t['incident_id']}:{t['unit_id']}"] = time.time()
                sent_mono[f"{t['incident_id']}:{t['unit_id']}"] = time.monotonic()
                sock.send({"type": "accept", "id": 1, "incident_id": t["incident_id"]})
                time.sleep(gap)
            while time.monotonic() - started < args.seconds:
                time.sleep(0.2)
            window = time.monotonic() - started
            browser.stop_tracing()
            received = len([f for f in frames if f >= started])
            counted_end = page.evaluate("({...window.__ws})")
            probe_fps = round((len(probe.times) - probe_before) / window, 1)
            probe_ms = sorted(
                (probe.accepted[k] - sent[k]) * 1000 for k in sent if k in probe.accepted
            )
            in_page = {k: round((counted_end[k] - counted[k]) / window, 1) for k in counted}
            # The server's answer to each tap (its ``ok``): tap -> server, for comparison.
            server_ms = []
            for t, sock in tap_socks:
                key = f"{t['incident_id']}:{t['unit_id']}"
                ok = [at for at, f in sock.frames if f.get("type") == "ok" and f.get("id") == 1]
                errors = [f for _at, f in sock.frames if f.get("type") == "error"]
                if ok:
                    server_ms.append((ok[0] - sent_mono[key]) * 1000)
                elif errors:
                    tap_errors.append(errors[0].get("code"))
            page.wait_for_timeout(2000)
            shown = page.evaluate("window.__accepted")
            figures["taps_shown_by"] = page.evaluate("window.__shownBy")
            lat_ms = sorted((shown[k] - sent[k] * 1000) for k in sent if k in shown)
            arrived = page.evaluate("window.__arrived")
            socket_ms = sorted((arrived[k] - sent[k] * 1000) for k in sent if k in arrived)
            parent.send("stats")
            _, stats = parent.recv()
            figures.update(
                {
                    "window_s": round(window, 1),
                    "frames_per_s": in_page["all"],
                    "frames_per_s_by_kind": in_page,
                    "cdp_frames_per_s": round(received / window, 1),
                    "probe_frames_per_s": probe_fps,
                    "probe_tap_p50_p99_ms": [
                        round(float(np.percentile(probe_ms, q)), 1) for q in (50, 99)
                    ]
                    if probe_ms
                    else None,
                    "tap_server_p50_ms": round(float(np.percentile(server_ms, 50)), 1)
                    if server_ms
                    else None,
                    "tap_server_answered": len(server_ms),
                    "tap_socket_p50_p99_ms": [
                        round(float(np.percentile(socket_ms, q)), 1) for q in (50, 99)
                    ]
                    if socket_ms
                    else None,
                    "tap_errors": tap_errors[:5],
                    "long_tasks": long_tasks(trace),
                    "taps": len(sent),
                    "taps_shown": len(lat_ms),
                    "tap_p50_ms": round(float(np.percentile(lat_ms, 50)), 1) if lat_ms else None,
                    "tap_p99_ms": round(float(np.percentile(lat_ms, 99)), 1) if lat_ms else None,
                    "tap_max_ms": round(max(lat_ms), 1) if lat_ms else None,
                    "location_refused": stats["refused"],
                    "positions_sent": stats["sent"],
                }
            )
            page.screenshot(path=str(root / "board.png"))
            (ROOT / "test-artifacts").mkdir(exist_ok=True)
            shutil.copy(root / "board.png", ROOT / "test-artifacts" / "bench-board.png")
            # The trace stays for reading in chrome://tracing or Perfetto.
            shutil.copy(trace, ROOT / "test-artifacts" / "bench-board-trace.json")
            for _t, sock in tap_socks:
                sock.close()
            probe.close()
            browser.close()
        return figures
    finally:
        if proc is not None:
            parent.send("stop")
            proc.join(timeout=15)
            if proc.is_alive():
                proc.kill()
        if system is not None:
            system.stop()
        if city is not None:
            city.close()
        shutil.rmtree(root, ignore_errors=True)


def report(f: dict[str, Any]) -> str:
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    lt = f["long_tasks"]
    return "\n".join(
        [
            START,
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU, "
            f"Python {platform.python_version()}, "
            f"load average after the run {load}. Loopback; SQLite + embedded redis-server + one "
            f"daphne + one Celery worker; {f['units']} units seeded. The board: headless Chromium "
            f"at 1920x1080 as city-wide staff, showing {f['cards']} open incidents; "
            f"{f['responders']} responders (member websockets in a load generator process) send "
            f"a position every {POSITION_EVERY_S:g} s each, staggered "
            f"({f['positions_sent']} positions in all, {f['location_refused']} refused). "
            f"Measured over {f['window_s']} s.",
            "",
            "| board websocket frames/s | main-thread tasks | tasks > 50 ms | longest task ms | "
            "task p99 ms | taps shown | tap -> board p50 / p99 / max ms |",
            "|---|---|---|---|---|---|---|",
            f"| {f['frames_per_s']} | {lt['tasks']} | **{lt['over_50ms']}** | {lt['max_ms']} | "
            f"{lt['p99_ms']} | {f['taps_shown']}/{f['taps']} | "
            f"**{f['tap_p50_ms']} / {f['tap_p99_ms']}** / {f['tap_max_ms']} |",
            "",
            "Tap -> board: a member's socket sends `accept` (one per unit, spread over the "
            "window) -> the board's row for that unit shows 已接受 (MutationObserver stamp), "
            "during the position load. Reproduce: `.venv/bin/python bench/board.py`.",
            END,
        ]
    )


def write(text: str) -> None:
    doc = DOC.read_text()
    if START in doc:
        head, rest = doc.split(START, 1)
        doc = head + text + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip() + "\n\n## Command board (bench/board.py)\n\n" + text + "\n"
    DOC.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=900)
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--responders", type=int, default=500)
    parser.add_argument("--taps", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    figures = run(args)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    text = report(figures)
    print(text)
    if not args.no_write:
        write(text)


if __name__ == "__main__":
    mp.set_start_method("spawn")
    main()
