"""Real processes for the end-to-end tests, the chaos tests and the benchmarks.

A ``City`` is a database (a SQLite file, or a fresh PostgreSQL database when the
outer ``DATABASE_URL`` points at PostgreSQL), an embedded redis-server on a free
port and the environment every process shares; it is migrated and seeded by one
``manage``-style subprocess. A ``System`` runs daphne, Celery workers and beat
against a city, each in its own session (process group) so that a test can
``kill -9`` a prefork worker with its children, and teardown never leaves one
behind.

Nothing here touches the in-process test database: the tests talk HTTP and
websocket to the real processes and read rows with a plain driver connection.

Run as ``python -m tests.e2e.harness <command> '<json>'`` (with the city's
environment) it builds fixtures inside the city's database: see ``_COMMANDS``.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from config.embedded_redis import free_port, redis_server_binary

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
PASSWORD = "e2e-pass-12345"  # every login the harness makes (staff and members)

# Short escalation for tests: wave 1 to the 5 nearest units within 1 km; no
# accept within 4 s sends wave 2 (3 km, up to 30 more units). The handle tier
# fires long after any test (and inside Redis's one-hour visibility timeout).
E2E_POLICIES: dict[str, Any] = {
    "default": {
        "wave1": {"radius_m": 1000, "units": 5},
        "enough_accepts": {"1": 1, "2": 1, "3": 2, "4": 3},
        "tiers": [
            {
                "name": "respond_1min",
                "after_s": 4,
                "unless": "responded_at",
                "wave": {"radius_m": 3000, "units": 30},
                "notify": ["station"],
                "flag": False,
            },
            {
                "name": "handle_5min",
                "after_s": 1800,
                "unless": "handled_at",
                "wave": None,
                "notify": ["station"],
                "flag": True,
            },
        ],
    }
}


def respond_after_env(seconds: int) -> dict[str, str]:
    """The environment for ``E2E_POLICIES`` with the respond tier (wave 2)
    after ``seconds``, for tests that need more than 4 s before it."""
    policies = copy.deepcopy(E2E_POLICIES)
    policies["default"]["tiers"][0]["after_s"] = seconds
    return {"ESCALATION_POLICIES": json.dumps(policies)}


class ServiceError(RuntimeError):
    """A real service would not start or a setup step failed; carries its log tail."""


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- database -------------------------------------------------------------------------


@dataclass
class Database:
    """The city's database, reachable by URL (for the processes) and by a plain driver."""

    url: str
    engine: str  # "sqlite" or "postgres"
    _admin_url: str | None = None  # PostgreSQL: where to CREATE/DROP it from
    _name: str | None = None

    @classmethod
    def create(
        cls, *, root: Path, outer_url: str | None, template: Database | None = None
    ) -> Database:
        """An empty database, or a copy of ``template`` (of the same engine)."""
        if outer_url and urlsplit(outer_url).scheme in {"postgres", "postgresql", "pgsql"}:
            return cls._postgres_create(outer_url, template=template)
        path = root / "e2e.sqlite3"
        if template is not None:
            import sqlite3

            source = template.url.removeprefix("sqlite:///")
            # The backup API copies what a WAL file may still hold, too.
            with (
                contextlib.closing(sqlite3.connect(source)) as src,
                contextlib.closing(sqlite3.connect(path)) as dst,
            ):
                src.backup(dst)
        return cls(url=f"sqlite:///{path}", engine="sqlite")

    @classmethod
    def _postgres_create(cls, outer_url: str, *, template: Database | None = None) -> Database:
        import psycopg

        name = f"e2e_{secrets.token_hex(6)}"
        parts = urlsplit(outer_url)
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            sql += f' TEMPLATE "{template._name}"'
        try:
            with psycopg.connect(_pg_conninfo(outer_url), autocommit=True) as conn:
                for attempt in range(50):
                    try:
                        conn.execute(sql)
                        break
                    except psycopg.errors.ObjectInUse:
                        # An autovacuum worker in the template's new tables: a
                        # template may have no other session while it is copied.
                        if attempt == 49:
                            raise
                        time.sleep(0.2)
        except psycopg.Error as exc:
            raise ServiceError(f"cannot create PostgreSQL database {name}: {exc}") from exc
        url = urlunsplit(parts._replace(scheme="postgres", path=f"/{name}"))
        return cls(url=url, engine="postgres", _admin_url=outer_url, _name=name)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows for ``sql`` (``%s`` placeholders on both engines), read-only use."""
        if self.engine == "sqlite":
            import sqlite3

            path = self.url.removeprefix("sqlite:///")
            with contextlib.closing(sqlite3.connect(path, timeout=20)) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(_pg_conninfo(self.url)) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: tuple = ()) -> Any:
        return self.query(sql, params)[0][0]

    def drop(self) -> None:
        if self.engine != "postgres":
            return
        import psycopg

        with psycopg.connect(_pg_conninfo(self._admin_url), autocommit=True) as conn:
            for attempt in range(20):
                try:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
                    return
                except psycopg.errors.InsufficientPrivilege:
                    # An autovacuum worker (the superuser's) is in the new
                    # tables, and a role that is not superuser may not end it:
                    # it finishes on its own.
                    if attempt == 19:
                        raise
                    time.sleep(0.5)


def _pg_conninfo(url: str) -> str:
    # psycopg takes postgresql:// URLs; django-environ also accepts postgres://.
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


# --- processes --------------------------------------------------------------------------


@dataclass
class Service:
    """One real process (and, for a prefork worker, its children) in its own session."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    port: int | None = None
    # Until it has been seen ready: how to tell (a check, what it means, a timeout).
    readiness: tuple[Callable[[], bool], str, float] | None = None

    def wait_ready(self) -> Service:
        """Wait until it is ready (at once if it was seen ready); ServiceError with
        its log tail if it exits or is not ready in time."""
        if self.readiness is not None:
            check, what, timeout = self.readiness
            _wait(check, service=self, what=what, timeout=timeout)
            self.readiness = None
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def failure(self, what: str) -> ServiceError:
        state = "running" if self.alive() else f"exited with {self.proc.returncode}"
        return ServiceError(
            f"{self.name} {what} ({state}); log {self.log_path}:\n{tail(self.log())}"
        )

    def kill_hard(self) -> None:
        """SIGKILL the whole process group: a crash, no shutdown handlers run."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL whatever is left of the group."""
        if self.alive():
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # Prefork children or a stuck main process: nothing of the group survives.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/member/"


def wait_until(check: Callable[[], Any], timeout: float, *, step: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


def _wait(check: Callable[[], bool], *, service: Service, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise service.failure(f"exited before it was {what}")
        if check():
            return
        time.sleep(0.05)
    raise service.failure(f"not {what} within {timeout:.0f} s")


@dataclass
class City:
    """Database + embedded Redis + the environment all processes share, seeded."""

    root: Path
    db: Database
    redis: subprocess.Popen
    redis_port: int
    env: dict[str, str]
    scenario: dict[str, Any] = field(default_factory=dict)
    sentinel: SentinelSet | None = None

    @classmethod
    def create(
        cls,
        root: Path,
        *,
        outer_database_url: str | None = None,
        units: int = 300,
        extra_env: dict[str, str] | None = None,
        sentinel: bool = False,
    ) -> City:
        """Start Redis, create the database, migrate, seed ``units`` units and the
        e2e scenario (near, mid and far units with member logins).

        With ``sentinel``, Redis is Debian's redis-server as a master and a
        replica watched by three redis-sentinel processes, and every process
        finds the master through the sentinels (``REDIS_SENTINELS``)."""
        root.mkdir(parents=True, exist_ok=True)
        sentinels = None
        if sentinel:
            sentinels = SentinelSet.start(root / "redis")
            redis, port = sentinels.master, sentinels.master_port
        else:
            redis, port = redis_start_owned(data_dir=root / "redis")
        try:
            template = _migrated_template(outer_database_url, redis_port=port)
            db = Database.create(root=root, outer_url=outer_database_url, template=template)
        except BaseException:  # pytest-timeout's Failed too: no Redis left behind
            if sentinels is not None:
                sentinels.stop()
            _stop_popen(redis)
            raise
        env = _base_env(root=root, database_url=db.url, redis_port=port, extra=extra_env)
        if sentinels is not None:
            env.update(sentinels.env())
        city = cls(root=root, db=db, redis=redis, redis_port=port, env=env, sentinel=sentinels)
        try:
            city.scenario = city.run_setup("prepare", units=units, password=PASSWORD, migrated=True)
        except BaseException:  # pytest-timeout's Failed too: no Redis left behind
            city.close()
            raise
        return city

    def run_setup(self, command: str, timeout: float = 180, **kwargs: Any) -> Any:
        """Run ``python -m tests.e2e.harness <command>`` in the city; its JSON answer."""
        return _run_setup(self.env, command, timeout=timeout, **kwargs)

    def close(self) -> None:
        if self.sentinel is not None:
            self.sentinel.stop()
        _stop_popen(self.redis)
        self.db.drop()

    def redis_kill(self) -> None:
        """kill -9 the city's Redis: a crash, nothing flushed, every client cut off."""
        self.redis.kill()
        self.redis.wait(timeout=10)

    def redis_restart(self) -> None:
        """Start Redis again on the same port (empty: it saves nothing), as a
        supervisor would after a crash."""
        if self.redis.poll() is None:
            raise ServiceError("redis is still running")
        self.redis = _redis_spawn(self.redis_port, data_dir=self.root / "redis")
        deadline = time.monotonic() + 10
        while _redis_pid(self.redis_port) != self.redis.pid:
            if self.redis.poll() is not None or time.monotonic() > deadline:
                raise ServiceError(f"redis would not start again on port {self.redis_port}")
            time.sleep(0.05)


def _run_setup(env: dict[str, str], command: str, *, timeout: float, **kwargs: Any) -> Any:
    proc = subprocess.run(
        [PYTHON, "-m", "tests.e2e.harness", command, json.dumps(kwargs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise ServiceError(
            f"setup step {command!r} failed with {proc.returncode}:\n"
            f"{tail(proc.stderr)}\n{tail(proc.stdout, 10)}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# One migrated, empty database per process and engine, which every city copies:
# migrating was half of a city's set-up (5 s of 10 on SQLite, 8 of 12 on
# PostgreSQL; 45 s for the whole set-up on a loaded machine), and the e2e suite
# makes several cities per process. Dropped when the process exits.
_TEMPLATES: dict[str, Database] = {}


def _migrated_template(outer_url: str | None, *, redis_port: int) -> Database:
    key = outer_url or ""
    if key not in _TEMPLATES:
        import atexit
        import shutil
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="e2e-template-"))
        db = Database.create(root=root, outer_url=outer_url)
        try:
            env = _base_env(root=root, database_url=db.url, redis_port=redis_port, extra=None)
            _run_setup(env, "migrate", timeout=180)
        except BaseException:
            db.drop()
            shutil.rmtree(root, ignore_errors=True)
            raise

        def drop() -> None:
            with contextlib.suppress(Exception):
                db.drop()
            shutil.rmtree(root, ignore_errors=True)

        atexit.register(drop)
        _TEMPLATES[key] = db
    return _TEMPLATES[key]


def redis_start_owned(*, data_dir: Path, attempts: int = 5) -> tuple[subprocess.Popen, int]:
    """A redis-server of our own on a free loopback port: ``(process, port)``.

    redis-server cannot bind port 0 and report it, so a port is chosen here and
    bound by redis-server a moment later; another process may take it in
    between. A lost race shows as redis-server exiting ("Address already in
    use"), or as a *foreign* server answering on the port: the answer must come
    from our process id. Either way we try again with a fresh port.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for _ in range(attempts):
        port = free_port()
        log = data_dir / f"redis-{port}.log"
        proc = _redis_spawn(port, data_dir=data_dir)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            answering = _redis_pid(port)
            if answering == proc.pid:
                return proc, port
            if answering is not None:  # someone else's Redis holds the port
                break
            time.sleep(0.05)
        _stop_popen(proc)
        said = log.read_text(errors="replace") if log.exists() else ""
        problems.append(f"port {port}: {tail(said, 3)}")
    raise ServiceError("redis-server would not start:\n" + "\n".join(problems))


def _redis_spawn(port: int, *, data_dir: Path) -> subprocess.Popen:
    log = data_dir / f"redis-{port}.log"
    return subprocess.Popen(  # noqa: S603
        [
            redis_server_binary(),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)),
            *("--save", "", "--appendonly", "no", "--protected-mode", "yes"),
            *("--daemonize", "no", "--logfile", str(log)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def _redis_pid(port: int) -> int | None:
    """The process id of the Redis answering on ``port``, or None if none answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"INFO server\r\n")
            data = b""
            while b"process_id:" not in data or not data.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


SENTINEL_MASTER = "emergency"


def _debian_binary(name: str) -> str:
    import shutil

    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        raise ServiceError(f"{name} is not installed (Debian: apt-get install -y {name})")
    return found


@dataclass
class SentinelSet:
    """A Redis master, one replica and three sentinels (quorum 2), Debian's
    binaries, each on a port of its own, all stopped by ``stop``.

    The sentinels take the master for down after 1 s and fail over to the
    replica; ``failover_wait`` reports the new master's port.
    """

    data_dir: Path
    master: subprocess.Popen
    master_port: int
    replica: subprocess.Popen
    replica_port: int
    sentinels: list[tuple[subprocess.Popen, int]]

    @classmethod
    def start(cls, data_dir: Path) -> SentinelSet:
        data_dir.mkdir(parents=True, exist_ok=True)
        server = _debian_binary("redis-server")
        master, master_port = _redis_owned(data_dir, [server], "master")
        started: list[subprocess.Popen] = [master]
        try:
            replica, replica_port = _redis_owned(
                data_dir, [server], "replica", extra=["--replicaof", "127.0.0.1", str(master_port)]
            )
            started.append(replica)
            sentinels = []
            for i in range(3):
                proc, port = _sentinel_owned(
                    data_dir, _debian_binary("redis-sentinel"), i, master_port=master_port
                )
                started.append(proc)
                sentinels.append((proc, port))
        except Exception:
            for proc in started:
                _stop_popen(proc)
            raise
        found = cls(data_dir, master, master_port, replica, replica_port, sentinels)
        # The sentinels must know the replica before a failover can pick it.
        deadline = time.monotonic() + 20
        while found._replicas_known() < 1:
            if time.monotonic() > deadline:
                found.stop()
                raise ServiceError("the sentinels never saw the replica")
            time.sleep(0.2)
        return found

    def env(self) -> dict[str, str]:
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{port}" for _, port in self.sentinels),
            "REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
        }

    def _ask(self, port: int, command: str) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(command.encode() + b"\r\n")
            time.sleep(0.05)
            return s.recv(65536).decode(errors="replace")

    def _replicas_known(self) -> int:
        try:
            said = self._ask(self.sentinels[0][1], f"SENTINEL REPLICAS {SENTINEL_MASTER}")
        except OSError:
            return 0
        return said.count("127.0.0.1")

    def master_now(self) -> int | None:
        """The master's port as the first answering sentinel tells it."""
        for _, port in self.sentinels:
            try:
                said = self._ask(port, f"SENTINEL GET-MASTER-ADDR-BY-NAME {SENTINEL_MASTER}")
            except OSError:
                continue
            numbers = [line for line in said.split("\r\n") if line.isdigit()]
            if numbers:
                return int(numbers[-1])
        return None

    def failover_wait(self, timeout: float = 30) -> int:
        """Wait until the sentinels name the replica as master; its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.master_now() == self.replica_port:
                return self.replica_port
            time.sleep(0.2)
        raise ServiceError(f"no failover within {timeout:.0f} s (master: {self.master_now()})")

    def stop(self) -> None:
        for proc, _ in self.sentinels:
            _stop_popen(proc)
        _stop_popen(self.replica)
        _stop_popen(self.master)


def _redis_owned(
    data_dir: Path, binary: list[str], name: str, extra: list[str] | None = None, attempts: int = 5
) -> tuple[subprocess.Popen, int]:
    """A redis-server of ours on a fresh port, retried when another process took it."""
    problems = []
    for _ in range(attempts):
        port = free_port()
        log = data_dir / f"{name}-{port}.log"
        proc = subprocess.Popen(  # noqa: S603
            [
                *binary,
                *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                *("--logfile", str(log), "--dbfilename", f"{name}-{port}.rdb"),
                *(extra or []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            answering = _redis_pid(port)
            if answering == proc.pid:
                return proc, port
            if answering is not None:
                break
            time.sleep(0.05)
        _stop_popen(proc)
        problems.append(
            f"port {port}: {tail(log.read_text(errors='replace'), 3) if log.exists() else ''}"
        )
    raise ServiceError(f"redis-server ({name}) would not start:\n" + "\n".join(problems))


def _sentinel_owned(
    data_dir: Path, binary: str, index: int, *, master_port: int, attempts: int = 5
) -> tuple[subprocess.Popen, int]:
    problems = []
    for _ in range(attempts):
        port = free_port()
        conf = data_dir / f"sentinel-{index}-{port}.conf"
        # Sentinel rewrites its own config file: one writable file per sentinel.
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
            f"logfile {data_dir / f'sentinel-{index}-{port}.log'}\ndir {data_dir}\n"
            f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
            f"sentinel failover-timeout {SENTINEL_MASTER} 5000\n"
            f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
        )
        proc = subprocess.Popen(  # noqa: S603
            [binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            answering = _redis_pid(port)
            if answering == proc.pid:
                return proc, port
            if answering is not None:
                break
            time.sleep(0.05)
        _stop_popen(proc)
        problems.append(f"port {port}")
    raise ServiceError("redis-sentinel would not start: " + ", ".join(problems))


def listening_socket(port: int = 0) -> socket.socket:
    """A loopback TCP socket bound and listening here, to be handed to a child.

    The port is bound by the harness itself and the child inherits the bound
    socket (daphne ``--fd``), so no other process can take it in between; with
    port 0 the kernel picks a free one. A port that is taken fails loudly.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # A restarted server takes its predecessor's port despite TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot listen on 127.0.0.1:{port}: {exc}") from exc
    return sock


def _stop_popen(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _base_env(
    *, root: Path, database_url: str, redis_port: int, extra: dict[str, str] | None
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "DJANGO_", "CELERY_")) and k != "DATABASE_URL"
    }
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            # One key for every process: a session made by one daphne (or by the
            # setup script) is valid in all of them.
            "SECRET_KEY": "e2e-" + secrets.token_urlsafe(40),
            "DEBUG": "1",
            "DEADLINE_SWEEP_SECONDS": "1",
            "ESCALATION_POLICIES": json.dumps(E2E_POLICIES),
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra or {})
    return env


class System:
    """daphne, Celery workers and beat against one city; ``stop`` ends every one.

    Each ``start_*`` waits until its process is ready. With ``wait=False`` it only
    spawns it: start several that way, then ``wait_ready()``. Their start-ups (each
    a few seconds of imports) then overlap instead of queueing: a five-process
    system took 25-33 s to start one by one on a loaded machine."""

    def __init__(self, city: City, *, env: dict[str, str] | None = None) -> None:
        self.city = city
        self.env = {**city.env, **(env or {})}
        self.services: list[Service] = []

    def _spawn(
        self,
        name: str,
        args: list[str],
        *,
        port: int | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Service:
        log_path = self.city.root / f"{name}-{len(self.services)}.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
        )
        log.close()  # the child holds its own copy
        service = Service(name=name, proc=proc, log_path=log_path, port=port)
        self.services.append(service)
        return service

    def wait_ready(self) -> None:
        """Wait for every process started so far, in the order they were started."""
        for service in self.services:
            service.wait_ready()

    def start_daphne(self, name: str = "daphne", *, port: int = 0, wait: bool = True) -> Service:
        """daphne serving a socket the harness bound (a fresh port, or ``port`` to
        come back on a stopped daphne's address)."""
        listener = listening_socket(port)
        try:
            service = self._spawn(
                name,
                [
                    *(PYTHON, "-m", "config.server", "--fd", str(listener.fileno())),
                    # A reconnect storm queues thousands of handshakes: one still
                    # waiting for its turn after daphne's default 5 s would be
                    # dropped and come back, making the queue longer.
                    *("--websocket_connect_timeout", "60"),
                    # Pings of its own only for a socket silent 60 s: the app's
                    # heartbeat (WS_HEARTBEAT_S) already pings and is answered.
                    *("--ping-interval", "60"),
                    "config.asgi:application",
                ],
                port=listener.getsockname()[1],
                pass_fds=(listener.fileno(),),
            )
        finally:
            # daphne holds its own copy; ours would keep the port accepting
            # (queueing) connections after daphne stops.
            listener.close()
        http = Http(service.http_url)

        def answers() -> bool:
            try:
                return http.get("/api/v1/auth/login/", timeout=2).status == 200
            except OSError:
                return False

        service.readiness = (answers, "answering HTTP", 30)
        return service.wait_ready() if wait else service

    def start_worker(
        self, name: str = "worker", concurrency: int = 2, *, wait: bool = True
    ) -> Service:
        service = self._spawn(
            name,
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "info",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "-n",
                f"{name}-{secrets.token_hex(3)}@%h",
                # No waiting for replies from other workers at start-up.
                "--without-mingle",
                "--without-gossip",
            ],
        )
        service.readiness = (lambda: " ready." in service.log(), "ready", 45)
        return service.wait_ready() if wait else service

    def start_beat(self, name: str = "beat", *, wait: bool = True) -> Service:
        schedule = self.city.root / "data" / f"celerybeat-{secrets.token_hex(3)}"
        service = self._spawn(
            name,
            [PYTHON, "-m", "celery", "-A", "config", "beat", "-l", "info", "-s", str(schedule)],
        )
        service.readiness = (lambda: "beat: Starting" in service.log(), "ready", 30)
        return service.wait_ready() if wait else service

    def start_proxy(
        self, daphnes: list[Service] | None = None, *, web: list[Service] | None = None
    ) -> Proxy:
        """nginx in front of ``daphnes`` (default: every daphne started so far) for
        websockets, and ``web`` for HTTP (default: the same daphnes)."""
        daphnes = daphnes or [s for s in self.services if s.name.startswith("daphne")]
        proxy = Proxy(self, daphnes, web=web)
        proxy.start()
        return proxy

    def check_alive(self) -> None:
        for service in self.services:
            if not service.alive() and service.proc.returncode not in (-signal.SIGKILL,):
                raise service.failure("died")

    def stop(self) -> None:
        """Warm shutdown for all at once, then SIGKILL each process group."""
        for service in self.services:
            if service.alive():
                service.proc.terminate()
        deadline = time.monotonic() + 8
        for service in reversed(self.services):
            service.stop(timeout=max(0.1, deadline - time.monotonic()))


# --- the reverse proxy ----------------------------------------------------------------------

NGINX_TEMPLATE = ROOT / "deploy" / "nginx.conf.template"


def nginx_binary() -> str:
    import shutil

    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise ServiceError("nginx is not installed (Debian: apt-get install -y nginx-light)")
    return found


def nginx_config(
    *,
    prefix: Path,
    listen: str,
    upstreams: list[int],
    user: str | None,
    web: list[int] | None = None,
) -> str:
    """deploy/nginx.conf.template filled in for loopback daphne ports: ``upstreams``
    hold the websockets, ``web`` (default: the same) answers HTTP."""

    def servers(ports: list[int]) -> str:
        return "\n".join(f"        server 127.0.0.1:{port} max_fails=0;" for port in ports)

    values = {
        "@PREFIX@": str(prefix),
        "@ERROR_LOG@": str(prefix / "error.log"),
        "@LISTEN@": listen,
        "@WEB_UPSTREAMS@": servers(web or upstreams),
        "@UPSTREAMS@": servers(upstreams),
        "@TLS@": "",
        # As root, nginx's workers would run as "nobody", who cannot write the
        # test's private temp dirs.
        "@USER@": user or "",
    }
    lines = []
    for line in NGINX_TEMPLATE.read_text().splitlines():
        if line.lstrip().startswith("#"):  # the placeholders' own documentation
            lines.append(line)
            continue
        if "@USER@" in line and not user:
            continue  # not root: nginx runs as whoever started it
        for key, value in values.items():
            line = line.replace(key, value)
        lines.append(line)
    return "\n".join(lines) + "\n"


class Proxy:
    """nginx from deploy/nginx.conf.template in front of daphne processes.

    nginx binds its own port; a port taken by someone else between our choice and
    its bind shows as nginx exiting ("Address already in use"), and we try another.
    ``restart`` stops it (fast shutdown: every socket through it drops) and starts
    it again on the same port, as a crash and a supervisor's restart would.
    """

    def __init__(
        self,
        system: System,
        daphnes: list[Service],
        name: str = "nginx",
        *,
        web: list[Service] | None = None,
    ) -> None:
        self.system = system
        self.name = name
        self.upstreams = [d.port for d in daphnes]
        self.web = [d.port for d in web] if web else None
        self.prefix = system.city.root / f"{name}-{secrets.token_hex(3)}"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.service: Service | None = None
        self.port: int | None = None

    def start(self, *, port: int | None = None, attempts: int = 5) -> Service:
        problems: list[str] = []
        for _ in range(1 if port else attempts):
            chosen = port or free_port()
            conf = self.prefix / "nginx.conf"
            user = None
            if os.geteuid() == 0:
                import pwd

                user = pwd.getpwuid(os.geteuid()).pw_name
            conf.write_text(
                nginx_config(
                    prefix=self.prefix,
                    listen=f"127.0.0.1:{chosen}",
                    upstreams=self.upstreams,
                    web=self.web,
                    user=user,
                )
            )
            service = self.system._spawn(
                self.name,
                [nginx_binary(), "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
                port=chosen,
            )
            http = Http(service.http_url)

            def answers(http: Http = http) -> bool:
                try:
                    return http.get("/api/v1/auth/login/", timeout=2).status == 200
                except OSError:
                    return False

            try:
                _wait(answers, service=service, what="proxying HTTP", timeout=20)
            except ServiceError as exc:
                service.stop()
                errors = (
                    (self.prefix / "error.log").read_text(errors="replace")
                    if (self.prefix / "error.log").exists()
                    else ""
                )
                problems.append(f"port {chosen}: {exc}\n{tail(errors, 5)}")
                continue
            self.service, self.port = service, chosen
            return service
        raise ServiceError("nginx would not start:\n" + "\n".join(problems))

    def stop(self) -> None:
        """Stop nginx (a stopped proxy is not a dead service for ``check_alive``)."""
        if self.service is not None:
            self.service.stop()
            with contextlib.suppress(ValueError):
                self.system.services.remove(self.service)

    def restart(self, *, down_s: float = 0.0) -> float:
        """Stop, stay down ``down_s``, start on the same port; the time it came back."""
        self.stop()
        time.sleep(down_s)
        self.start(port=self.port)
        return time.monotonic()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/member/"


# --- clients ------------------------------------------------------------------------------


@dataclass
class HttpResponse:
    status: int
    body: bytes
    elapsed_s: float

    def json(self) -> Any:
        return json.loads(self.body)


class Http:
    """A tiny HTTP/1.1 client with a cookie jar (stdlib only, never via a proxy)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.origin = f"http://{self.host}:{self.port}"
        self.cookies: dict[str, str] = {}
        self.token: str | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 15,
    ) -> HttpResponse:
        hdrs = {"Accept": "application/json", "Connection": "close", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.token:
            hdrs["Authorization"] = f"Token {self.token}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            started = time.monotonic()
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            elapsed = time.monotonic() - started
            for header in resp.headers.get_all("Set-Cookie") or []:
                cookie = SimpleCookie()
                cookie.load(header)
                self.cookies.update({k: m.value for k, m in cookie.items()})
        finally:
            conn.close()
        return HttpResponse(status=resp.status, body=payload, elapsed_s=elapsed)

    def get(self, path: str, **kw: Any) -> HttpResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> HttpResponse:
        return self.request("POST", path, body=body, **kw)

    def get_json(self, path: str, **kw: Any) -> Any:
        """GET that must answer 200 with JSON; anything else fails with the body."""
        r = self.get(path, **kw)
        if r.status != 200:
            raise AssertionError(
                f"GET {path} -> {r.status}: {tail(r.body.decode(errors='replace'))}"
            )
        return r.json()

    def login_token(self, username: str, password: str) -> str:
        r = self.post("/api/v1/auth/token/", {"username": username, "password": password})
        if r.status != 200:
            raise ServiceError(f"token login for {username} -> {r.status}: {r.body[:300]!r}")
        self.token = r.json()["token"]
        return self.token

    def login_session(self, username: str, password: str) -> str:
        """Browser-style login: GET for the CSRF cookie, POST with it; the session id."""
        r = self.get("/api/v1/auth/login/")
        if r.status != 200 or "csrftoken" not in self.cookies:
            raise ServiceError(f"GET login -> {r.status}, cookies {sorted(self.cookies)}")
        r = self.post(
            "/api/v1/auth/login/",
            {"username": username, "password": password},
            headers={"X-CSRFToken": self.cookies["csrftoken"], "Referer": self.origin + "/"},
        )
        if r.status != 200 or "sessionid" not in self.cookies:
            raise ServiceError(f"session login for {username} -> {r.status}: {r.body[:300]!r}")
        return self.cookies["sessionid"]


class MemberSocket:
    """A member's phone on ``/ws/member/``: a reader thread stamps every frame on
    arrival (``time.monotonic()``) and answers the server's heartbeat."""

    def __init__(
        self,
        ws_url: str,
        *,
        sessionid: str,
        origin: str,
        name: str = "",
        on_frame: Callable[[MemberSocket, dict[str, Any]], None] | None = None,
    ) -> None:
        from websockets.sync.client import connect

        self.name = name
        self.on_frame = on_frame  # called on the reader thread, like a phone's handler
        self._stack = contextlib.ExitStack()
        self.conn = self._stack.enter_context(
            connect(
                ws_url,
                origin=origin,
                additional_headers={"Cookie": f"sessionid={sessionid}"},
                proxy=None,
                compression=None,
                open_timeout=10,
            )
        )
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self.closed = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"ws-{name}")
        self._reader.start()
        hello = self.wait_for(lambda f: f["type"] in {"hello", "error"}, timeout=10)
        if hello is None or hello["type"] != "hello":
            self.close()
            raise ServiceError(f"websocket {name}: no hello, got {hello!r}")
        self.hello = hello

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                raw = self.conn.recv()
                at = time.monotonic()
                frame = json.loads(raw)
                if frame.get("type") == "ping":
                    self.send({"type": "pong", "id": frame.get("id")})
                if self.on_frame is not None:
                    self.on_frame(self, frame)
                with self._cond:
                    self.frames.append((at, frame))
                    self._cond.notify_all()
        except (ConnectionClosed, OSError):
            pass
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def send(self, frame: dict[str, Any]) -> None:
        self.conn.send(json.dumps(frame))

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        """The first frame so far (or arriving within ``timeout``) that matches."""
        found = self.wait_for_stamped(predicate, timeout)
        return found[1] if found else None

    def wait_for_stamped(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> tuple[float, dict[str, Any]] | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for at, frame in self.frames[seen:]:
                    if predicate(frame):
                        return at, frame
                seen = len(self.frames)
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self._cond.wait(left)

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Matching frames as the phone shows them: a copy of an event id already
        received (the server re-sends alerts a socket has not acked) counts once."""
        with self._cond:
            seen: set[tuple[str, int]] = set()
            out = []
            for _at, f in self.frames:
                key = (f.get("type"), f.get("id"))
                if f.get("id") is not None and key in seen:
                    continue
                seen.add(key)
                if predicate(f):
                    out.append(f)
            return out

    def request(self, frame: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Send a client message with a fresh id; the ``ok``/``error`` reply to it."""
        msg_id = secrets.randbelow(1 << 30)
        self.send({**frame, "id": msg_id})
        reply = self.wait_for(
            lambda f: f.get("id") == msg_id and f["type"] in {"ok", "error", "resumed"},
            timeout=timeout,
        )
        if reply is None:
            raise ServiceError(f"websocket {self.name}: no reply to {frame!r}")
        return reply

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
        self._reader.join(timeout=5)


def alert_for(incident_id: int) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] == "incident.alert" and f["incident"]["id"] == incident_id


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.3):
        return True
    return False


# --- setup commands (run inside the city's environment, with Django) ----------------------


def _migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def _prepare(*, units: int, password: str, migrated: bool = False) -> dict[str, Any]:
    """Seed the city; migrate first unless it is a copy of a migrated template."""
    from django.core.management import call_command

    if not migrated:
        _migrate()
    call_command("seed_demo", units=units, password=password, verbosity=0)
    return _scenario_build(password=password)


def _offset(lat: float, lon: float, *, north_m: float, east_m: float) -> tuple[float, float]:
    import math

    return (
        lat + north_m / 111_320.0,
        lon + east_m / (111_320.0 * math.cos(math.radians(lat))),
    )


def _scenario_build(*, password: str) -> dict[str, Any]:
    """Three units of our own around a quiet spot of the seeded city.

    ``near`` stands 30 m from the spot (the nearest unit by far), ``mid`` 1.8 km
    east (outside wave 1's 1 km, inside wave 2's 3 km) and ``far`` about 20 km
    away. Each has a full kit and three members on duty (post_min 1), one with a
    login. The spot is the first street point (by code) with no seeded unit
    within 400 m and few within 3 km, so wave 2 surely reaches ``mid``.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from units import geo
    from units.locate import street_at
    from units.models import STANDARD_KIT, Equipment, Member, Region, StaffProfile, Unit
    from units.seeding import MOBILE_PREFIXES
    from units.services import district_at

    seeded = list(Unit.objects.values_list("lat", "lon"))
    spot = mid = far = None
    streets = Region.objects.filter(level=Region.Level.STREET, lat__isnull=False).order_by("code")
    for street in streets:
        distances = [geo.haversine_m(street.lat, street.lon, a, b) for a, b in seeded]
        if min(distances, default=1e9) < 400 or sum(d <= 3500 for d in distances) > 15:
            continue
        if district_at(lat=street.lat, lon=street.lon) is None:
            continue
        mid_pt = _offset(street.lat, street.lon, north_m=0, east_m=1800)
        if district_at(lat=mid_pt[0], lon=mid_pt[1]) is None:
            continue
        for north, east in ((20_000, 0), (-20_000, 0), (0, 20_000), (0, -20_000)):
            far_pt = _offset(street.lat, street.lon, north_m=north, east_m=east)
            if district_at(lat=far_pt[0], lon=far_pt[1]) is not None:
                spot, mid, far = (street.lat, street.lon), mid_pt, far_pt
                break
        if spot:
            break
    if spot is None:
        raise SystemExit("no quiet spot for the e2e scenario in the seeded city")

    if 154 in MOBILE_PREFIXES:
        raise SystemExit("the e2e phones (154...) may now collide with seeded members")
    user_model = get_user_model()
    hashed = make_password(password)
    now = timezone.now()
    placed = {
        "near": _offset(*spot, north_m=30, east_m=0),
        "mid": mid,
        "far": far,
    }
    out: dict[str, Any] = {"spot": {"lat": spot[0], "lon": spot[1]}, "units": {}}
    with transaction.atomic():
        for label, (lat, lon) in placed.items():
            unit = Unit.objects.create(
                code=f"E2E-{label.upper()}",
                name=f"e2e {label} unit",
                kind=Unit.Kind.MALL,
                lat=lat,
                lon=lon,
                region=street_at(lat=lat, lon=lon),
                post_min=1,
            )
            for kind, quantity in STANDARD_KIT.items():
                Equipment.objects.create(unit=unit, kind=kind, quantity=quantity)
            logins = []
            for i in range(3):
                user = None
                if i < 2:
                    user = user_model.objects.create(username=f"e2e_{label}_{i}", password=hashed)
                    logins.append({"username": user.username, "password": password})
                member = Member.objects.create(
                    name=f"e2e {label} {i}",
                    # A valid mobile number (sign-in normalises and checks it) on
                    # the 154 prefix, which the seeding never hands out.
                    phone=f"154{len(out['units']):04d}{i:04d}",
                    unit=unit,
                    on_duty=True,
                    duty_since=now,
                    user=user,
                )
                if user is not None:
                    logins[-1]["member_id"] = member.pk
            out["units"][label] = {"id": unit.pk, "lat": lat, "lon": lon, "logins": logins}
        staff = user_model.objects.create(username="e2e_staff", password=hashed, is_staff=True)
        StaffProfile.objects.create(
            user=staff,
            role=StaffProfile.Role.CITY_ADMIN,
            region=Region.objects.get(level=Region.Level.CITY),
        )
    out["staff"] = {"username": "e2e_staff", "password": password}
    return out


def _bench_logins(*, count: int) -> list[dict[str, Any]]:
    """Log ``count`` on-duty members in at once: users with one shared password hash
    and ready-made sessions (a PBKDF2 login per member would take minutes)."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils import timezone

    from dispatch.socket_pass import socket_pass_make
    from units.models import Member

    user_model = get_user_model()
    members = list(
        Member.objects.filter(on_duty=True, is_active=True, unit__is_active=True, user=None)
        .select_related("unit")
        .order_by("unit_id", "id")
        .only("id", "unit_id", "unit__lat", "unit__lon")[:count]
    )
    hashed = make_password(PASSWORD)
    store = SessionStore()
    expire = timezone.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    out = []
    with transaction.atomic():
        users = user_model.objects.bulk_create(
            [user_model(username=f"bench_{m.pk}", password=hashed) for m in members],
            batch_size=500,
        )
        if any(u.pk is None for u in users):  # backends without RETURNING ids
            by_name = dict(
                user_model.objects.filter(username__startswith="bench_").values_list(
                    "username", "pk"
                )
            )
            for u in users:
                u.pk = by_name[u.username]
        for m, u in zip(members, users, strict=True):
            m.user_id = u.pk
        Member.objects.bulk_update(members, ["user"], batch_size=500)
        sessions = []
        for m, u in zip(members, users, strict=True):
            key = secrets.token_hex(16)
            data = {
                SESSION_KEY: str(u.pk),
                BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: u.get_session_auth_hash(),
            }
            sessions.append(
                Session(session_key=key, session_data=store.encode(data), expire_date=expire)
            )
            out.append(
                {
                    "member_id": m.pk,
                    "unit_id": m.unit_id,
                    "unit_lat": m.unit.lat,
                    "unit_lon": m.unit.lon,
                    "sessionid": key,
                    # What the sign-in page gives a phone beside its session.
                    "member_pass": socket_pass_make(
                        member_id=m.pk,
                        user_id=u.pk,
                        session_key=key,
                        session_auth_hash=data[HASH_SESSION_KEY],
                    ),
                }
            )
        Session.objects.bulk_create(sessions, batch_size=500)
    return out


def _bench_city_duty(*, count: int) -> list[dict[str, Any]]:
    """Every active member of the city on duty (the whole city's shift), then
    sessions for ``count`` of them (``_bench_logins``).

    A bulk update, before any daphne or worker starts: their ranking indexes are
    built from these rows, so no roster change needs to be logged.
    """
    from django.utils import timezone

    from units.models import Member

    Member.objects.filter(is_active=True).update(on_duty=True, duty_since=timezone.now())
    return _bench_logins(count=count)


_COMMANDS: dict[str, Callable[..., Any]] = {
    "migrate": _migrate,
    "prepare": _prepare,
    "bench-logins": _bench_logins,
    "bench-city-duty": _bench_city_duty,
}


def main(argv: list[str]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    command, kwargs = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    result = _COMMANDS[command](**kwargs)
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
