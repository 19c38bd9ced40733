"""A socket's resume replay reads on the process's reader threads
(``dispatch.events.db_read``), not behind its one database thread.

In a reconnect storm every phone of a daphne replays what it missed at once; on
the one thread each waited for all the others' round trips.
The in-memory SQLite test database is shared-cache, where readers beside a
writer fail instead of waiting, so ``db_read`` uses the one thread there: these
run on PostgreSQL (``./dev test``'s postgresql stage).
"""

from __future__ import annotations

import pytest
from django.db import connection

from dispatch import services
from dispatch.models import Incident
from tests.dispatch.conftest import SPOT
from tests.dispatch.test_consumers import database_thread_held, login_cookies, phone, run

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="readers beside a writer: PostgreSQL"
    ),
]


def test_a_phone_resumes_while_the_database_thread_is_busy(near_responder):
    incident = services.incident_create(
        kind="knife", lat=SPOT[0], lon=SPOT[1], source=Incident.Source.CAD
    ).incident
    cookies = login_cookies(near_responder.user)

    async def scenario():
        # The replay must not wait for the held database thread.
        async with phone(cookies=cookies) as p, database_thread_held() as (busy, _release):
            await p.send(type="resume", id="r", last_event_id=0)
            frames = [await p.receive(timeout=3)]
            while frames[-1]["type"] != "resumed":
                frames.append(await p.receive(timeout=3))
            alerts = [f for f in frames if f["type"] == "incident.alert"]
            assert [(a["incident"]["id"], a["replay"]) for a in alerts] == [(incident.pk, True)]
            assert frames[-1]["id"] == "r"
            assert not busy.done()

    run(scenario)


def test_with_no_reader_threads_the_replay_waits_for_the_database_thread(settings, near_responder):
    settings.WS_DB_READERS = 0
    cookies = login_cookies(near_responder.user)

    async def scenario():
        async with phone(cookies=cookies) as p, database_thread_held() as (_busy, release):
            await p.send(type="resume", id="r", last_event_id=0)
            assert await p.nothing(0.5)  # the replay waits behind the held thread
            release.set()
            assert (await p.receive_type("resumed", timeout=5))["id"] == "r"

    run(scenario)
