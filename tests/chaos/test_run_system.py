"""``./dev run`` (manage.py run_system) supervises its processes: kill -9 its
Redis and its worker, both come back and the site still answers; SIGTERM then
stops every process it started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from config.embedded_redis import free_port
from tests.e2e.harness import PYTHON, ROOT, Database, Http, _redis_pid, tail

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

STARTED = re.compile(r"^(redis|daphne|worker|beat) started \(pid (\d+)\)$", re.M)


def test_run_system_restarts_killed_children_and_stops_cleanly(tmp_path):
    db = Database.create(root=tmp_path, outer_url=os.environ.get("DATABASE_URL"))
    http_port, redis_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "DJANGO_", "CELERY_"))
        and k not in {"DATABASE_URL", "REDIS_URL"}  # run_system starts its own Redis
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=db.url,
        EMBEDDED_REDIS_PORT=str(redis_port),
        SECRET_KEY="run-system-test-" + "x7" * 30,
        LOG_LEVEL="WARNING",
    )
    log_path = tmp_path / "run_system.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [PYTHON, "manage.py", "run_system", "--port", str(http_port), "--units", "40"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: dict[str, list[int]] = {}
    try:
        site = Http(f"http://127.0.0.1:{http_port}")
        assert _wait_until(lambda: _answers(site), 240, proc), _said(log_path)
        seen = _started(log_path)
        assert set(seen) == {"redis", "daphne", "worker", "beat"}, _said(log_path)
        redis_pid, worker_pid = seen["redis"][-1], seen["worker"][-1]
        assert _redis_pid(redis_port) == redis_pid

        os.kill(redis_pid, signal.SIGKILL)
        os.kill(worker_pid, signal.SIGKILL)

        def back() -> bool:
            now = _started(log_path)
            return len(now.get("redis", [])) >= 2 and len(now.get("worker", [])) >= 2

        assert _wait_until(back, 30, proc), _said(log_path)
        seen = _started(log_path)
        said = log_path.read_text(errors="replace")
        assert re.search(r"^redis exited with -9; restarting in \d+ s$", said, re.M), said
        assert re.search(r"^worker exited with -9; restarting in \d+ s$", said, re.M), said
        assert "stopping" not in said
        new_redis, new_worker = seen["redis"][-1], seen["worker"][-1]
        assert _redis_pid(redis_port) == new_redis
        # The new worker stays up (it reconnected rather than crash-looping), and
        # daphne and beat were never restarted.
        time.sleep(3)
        assert _alive(new_worker)
        assert len(seen["worker"]) == 2 and len(seen["redis"]) == 2
        assert len(seen["daphne"]) == 1 and len(seen["beat"]) == 1
        assert _answers(site)
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, _said(log_path)
        latest = [pids[-1] for pids in seen.values()]
        assert _wait_until(lambda: not any(_alive(p) for p in latest), 10, None), (
            [p for p in latest if _alive(p)],
            _said(log_path),
        )
        assert "Stopping..." in log_path.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for pids in _started(log_path).values():  # never leave a child behind
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        db.drop()


def _started(log_path: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name, pid in STARTED.findall(log_path.read_text(errors="replace")):
        out.setdefault(name, []).append(int(pid))
    return out


def _answers(site: Http) -> bool:
    try:
        return site.get("/api/v1/auth/login/", timeout=3).status == 200
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not alive.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return False


def _said(log_path: Path) -> str:
    return tail(log_path.read_text(errors="replace"), 60)


def _wait_until(check, timeout: float, proc: subprocess.Popen | None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False
