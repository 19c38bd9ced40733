"""Run the whole system on the embedded default, in the foreground.

Embedded Redis (unless REDIS_URL is set) + migrate + seed an empty database +
daphne + Celery worker + Celery beat. A child that exits on its own (a crash,
kill -9, the OOM killer) is restarted with backoff; Ctrl-C or SIGTERM stops
every process it started. Production supervises the same processes with
systemd or supervisord instead (docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.embedded_redis import redis_ping, redis_start
from review import services as review_services
from units.models import Unit

DEMO_PASSWORD = "demo12345"  # noqa: S105 - the documented demo logins

# Restart backoff: 1 s, 2 s, 4 s ... at most 30 s; a child that ran this long
# before it exited starts over at 1 s (a crash now and then, not a crash loop).
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
BACKOFF_RESET_AFTER_S = 60.0


class _Stop(Exception):
    """SIGTERM arrived: stop like on Ctrl-C."""


@dataclass
class Child:
    """One supervised process, restarted by ``start`` whenever it exits on its own."""

    name: str
    start: Callable[[], subprocess.Popen]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff_s: float = BACKOFF_FIRST_S
    restart_at: float | None = None  # when a crashed child is due to start again


# A modest past for a new city: about one incident a day per 20 units, at most
# 1,000 over HISTORY_DAYS (about 10 s to write on a laptop). Enough for the index,
# the warning map and the reports to show something on first start.
HISTORY_DAYS = 90
HISTORY_MAX = 1_000
DRILL_DAYS = 42


def first_start_seed(*, units: int, password: str, out) -> None:
    """An empty database becomes the demo city: roster, a past, and the review's
    derived tables (facts, rollups, coverage gaps) computed before the first page."""
    started = time.monotonic()
    out.write(f"Empty database: seeding the demo city ({units} units)")
    call_command("seed_demo", units=units, password=password)
    count = max(30, min(HISTORY_MAX, units // 20))
    out.write(f"Seeding {count} past incidents over {HISTORY_DAYS} days")
    call_command("seed_incidents", count=count, days=HISTORY_DAYS, no_progress=True, verbosity=0)
    # Police stations' drills of the last weeks: the drill pages, and the index's
    # drill leaves, have a record to show (review/seeding_drills.py).
    out.write(f"Seeding the drills of the last {DRILL_DAYS} days")
    call_command("seed_drills", days=DRILL_DAYS, verbosity=0)
    # The beat task would compute the gaps only REVIEW_GAP_REFRESH_S after start.
    out.write("Computing the coverage gaps")
    review_services.coverage_compute()
    out.write(f"Demo city ready in {time.monotonic() - started:.0f} s")


class Command(BaseCommand):
    help = "Run redis (embedded), daphne, a Celery worker and beat; seed the demo city once."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument(
            "--units", type=int, default=23000, help="units to seed into an empty database"
        )
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args, port: int, host: str, units: int, password: str, **options):
        children: list[Child] = []
        previous_sigterm = signal.signal(signal.SIGTERM, _raise_stop)
        try:
            if "REDIS_URL" not in os.environ:
                rport = settings.EMBEDDED_REDIS_PORT
                if redis_ping(port=rport):
                    self.stdout.write(f"Redis already answers on 127.0.0.1:{rport}, reusing it")
                else:
                    redis = Child("redis", lambda: self._redis(rport))
                    children.append(redis)
                    self._start(redis)
                    self.stdout.write(f"Embedded Redis on 127.0.0.1:{rport}")
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            if not Unit.objects.exists():
                first_start_seed(units=units, password=password, out=self.stdout)
            py = sys.executable
            schedule = str(settings.DATA_DIR / "celerybeat-schedule")
            commands = {
                "daphne": ["-m", "config.server", "-b", host, "-p", str(port),
                           # One limit, in settings (see WS_MAX_FRAME_BYTES there).
                           "--websocket-max-message-size",
                           str(settings.WS_SERVER_MAX_MESSAGE_BYTES),
                           # The app's heartbeat pings every WS_HEARTBEAT_S and is
                           # answered; daphne's own ping only for a silent socket.
                           "--ping-interval", "60",
                           "config.asgi:application"],
                "worker": ["-m", "celery", "-A", "config", "worker", "-l", "warning",
                           "--concurrency", "2", "-n", "worker@%h"],
                "beat": ["-m", "celery", "-A", "config", "beat", "-l", "warning", "-s", schedule],
            }  # fmt: skip
            for name, args in commands.items():
                child = Child(name, _spawner([py, *args]))
                children.append(child)
                self._start(child)
            self._banner(host, port, password)
            while True:
                self._supervise(children)
                time.sleep(0.5)
        except (KeyboardInterrupt, _Stop):
            self.stdout.write("\nStopping...")
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)
            _stop_all(children)

    def _redis(self, port: int) -> subprocess.Popen:
        return redis_start(port=port, data_dir=settings.DATA_DIR / "redis", new_session=True)

    def _start(self, child: Child) -> None:
        child.proc = child.start()
        child.started_at = time.monotonic()
        child.restart_at = None
        self.stdout.write(f"{child.name} started (pid {child.proc.pid})")

    def _supervise(self, children: list[Child]) -> None:
        """Restart each child that exited on its own, once its backoff has passed."""
        now = time.monotonic()
        for child in children:
            if child.restart_at is None:
                code = child.proc.poll()
                if code is None:
                    continue
                # Its own pool children (a prefork worker's) must not outlive it.
                _kill_group(child.proc, signal.SIGKILL)
                if now - child.started_at >= BACKOFF_RESET_AFTER_S:
                    child.backoff_s = BACKOFF_FIRST_S
                child.restart_at = now + child.backoff_s
                self.stderr.write(
                    f"{child.name} exited with {code}; restarting in {child.backoff_s:.0f} s"
                )
                child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)
            elif now >= child.restart_at:
                try:
                    self._start(child)
                except (OSError, RuntimeError) as exc:  # redis would not start: try later
                    child.restart_at = now + child.backoff_s
                    self.stderr.write(
                        f"{child.name} did not start ({exc}); retrying in {child.backoff_s:.0f} s"
                    )
                    child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)

    def _banner(self, host: str, port: int, password: str) -> None:
        url = f"http://{host}:{port}"
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  最小应急处置单元 is running at {url}/\n"
                f"  Admin:   {url}/admin/      API: {url}/api/v1/schema/swagger/\n"
                f"  Logins (password {password}): admin (city admin), tianhe_admin (district),\n"
                f"          reviewer (police reviewer); members: see `manage.py demo_logins`\n"
                f"  Ctrl-C stops everything.\n"
            )
        )


def _raise_stop(signum, frame):
    raise _Stop


def _spawner(args: list[str]) -> Callable[[], subprocess.Popen]:
    # Each child in its own session (process group): a crashed worker's pool
    # processes are killed with it, and Ctrl-C reaches the children only through
    # the orderly stop below (daphne and beat before Redis goes away).
    return lambda: subprocess.Popen(args, env=os.environ.copy(), start_new_session=True)  # noqa: S603


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop_all(children: list[Child]) -> None:
    """SIGTERM every child's group (last started first), wait, then SIGKILL the rest."""
    running = [c.proc for c in reversed(children) if c.proc is not None]
    for proc in running:
        if proc.poll() is None:
            _kill_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        _kill_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
