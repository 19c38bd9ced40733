"""Fixtures for tests that run the real system: a seeded city (database + Redis)
per session, and daphne / Celery processes per module.

These tests never use pytest-django's database: the processes they start read
and write a database of their own (a SQLite file, or a fresh PostgreSQL
database when ``DATABASE_URL`` points at PostgreSQL). A service that will not
start fails the test with its log tail; nothing is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.e2e import harness


@pytest.fixture(autouse=True)
def _unit_test_settings():
    """The in-process settings do not matter here: everything runs in subprocesses."""
    yield


@pytest.fixture(scope="session")
def city(tmp_path_factory) -> Iterator[harness.City]:
    try:
        city = harness.City.create(
            tmp_path_factory.mktemp("city"), outer_database_url=os.environ.get("DATABASE_URL")
        )
    except harness.ServiceError as exc:
        pytest.fail(f"could not set up the e2e city: {exc}", pytrace=False)
    yield city
    city.close()


@pytest.fixture
def system_factory(city) -> Iterator[Callable[..., harness.System]]:
    """Start a System (stopped at teardown): ``system_factory(daphnes=1, workers=1,
    beat=True)``; ``env`` is added to its processes' environment."""
    systems: list[harness.System] = []

    def start(
        *, daphnes: int = 1, workers: int = 1, beat: bool = True, env: dict[str, str] | None = None
    ) -> harness.System:
        system = harness.System(city, env=env)
        systems.append(system)
        try:
            for i in range(daphnes):
                system.start_daphne(f"daphne{i + 1}", wait=False)
            for i in range(workers):
                system.start_worker(f"worker{i + 1}", wait=False)
            if beat:
                system.start_beat(wait=False)
            system.wait_ready()
        except harness.ServiceError as exc:
            pytest.fail(f"could not start the system: {exc}", pytrace=False)
        return system

    yield start
    for system in systems:
        system.stop()


@pytest.fixture
def sockets() -> Iterator[Callable[..., harness.MemberSocket]]:
    """Open member websockets (closed at teardown): ``sockets(daphne, login, name=...)``."""
    opened: list[harness.MemberSocket] = []

    def connect(daphne: harness.Service, login: dict, *, name: str = "") -> harness.MemberSocket:
        http = harness.Http(daphne.http_url)
        try:
            sessionid = http.login_session(login["username"], login["password"])
            sock = harness.MemberSocket(
                daphne.ws_url, sessionid=sessionid, origin=http.origin, name=name
            )
        except harness.ServiceError as exc:
            pytest.fail(f"member {login['username']} could not connect: {exc}", pytrace=False)
        opened.append(sock)
        return sock

    yield connect
    for sock in opened:
        sock.close()


@pytest.fixture
def staff_api(city) -> Callable[[harness.Service], harness.Http]:
    """An HTTP client for a daphne, logged in with the staff token."""

    def client(daphne: harness.Service) -> harness.Http:
        http = harness.Http(daphne.http_url)
        staff = city.scenario["staff"]
        try:
            http.login_token(staff["username"], staff["password"])
        except harness.ServiceError as exc:
            pytest.fail(str(exc), pytrace=False)
        return http

    return client
