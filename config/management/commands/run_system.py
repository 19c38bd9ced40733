"""Run the whole system on the embedded default, in the foreground.

Embedded Redis (unless REDIS_URL is set) + migrate + seed an empty database +
daphne + Celery worker + Celery beat. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.embedded_redis import redis_ping, redis_start
from units.models import Unit

DEMO_PASSWORD = "demo12345"  # noqa: S105 - the documented demo logins


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
        procs: list[tuple[str, subprocess.Popen]] = []
        env = os.environ.copy()
        try:
            if "REDIS_URL" not in os.environ:
                rport = settings.EMBEDDED_REDIS_PORT
                if redis_ping(port=rport):
                    self.stdout.write(f"Redis already answers on 127.0.0.1:{rport}, reusing it")
                else:
                    procs.append(
                        ("redis", redis_start(port=rport, data_dir=settings.DATA_DIR / "redis"))
                    )
                    self.stdout.write(f"Embedded Redis on 127.0.0.1:{rport}")
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            if not Unit.objects.exists():
                self.stdout.write(f"Empty database: seeding the demo city ({units} units)")
                call_command("seed_demo", units=units, password=password)
            py = sys.executable
            schedule = str(settings.DATA_DIR / "celerybeat-schedule")
            commands = {
                "daphne": ["-m", "daphne", "-b", host, "-p", str(port),
                           # One limit, in settings (see WS_MAX_FRAME_BYTES there).
                           "--websocket-max-message-size",
                           str(settings.WS_SERVER_MAX_MESSAGE_BYTES),
                           "config.asgi:application"],
                "worker": ["-m", "celery", "-A", "config", "worker", "-l", "warning",
                           "--concurrency", "2", "-n", "worker@%h"],
                "beat": ["-m", "celery", "-A", "config", "beat", "-l", "warning", "-s", schedule],
            }  # fmt: skip
            for name, args in commands.items():
                procs.append((name, subprocess.Popen([py, *args], env=env)))  # noqa: S603
            self._banner(host, port, password)
            while True:
                for name, proc in procs:
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping")
                        return
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping...")
        finally:
            for _name, proc in reversed(procs):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for _name, proc in reversed(procs):
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()

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
