"""A console phone for a demo member: connect to /ws/member/, print every frame,
and (with --respond) accept each alert, report on site and handled.

Signs the member in by making a session server-side, so it is a demo and
operator tool, not a login path.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import websockets
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management.base import BaseCommand, CommandError

from units.models import Member

# The backend the session names must be one that loads users: the first of
# AUTHENTICATION_BACKENDS is django-axes' lockout check, which has no get_user,
# and the socket's handshake failed with a 500 on it.
SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"


def member_session(member: Member) -> str:
    """A signed-in session for ``member``, as the sign-in page makes; its key."""
    session = SessionStore()
    session[SESSION_KEY] = str(member.user.pk)
    session[BACKEND_SESSION_KEY] = SESSION_BACKEND
    session[HASH_SESSION_KEY] = member.user.get_session_auth_hash()
    session.create()
    return session.session_key


class Command(BaseCommand):
    help = "Connect as member PHONE to the member websocket and print alerts."

    def add_arguments(self, parser):
        parser.add_argument("phone")
        parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/member/")
        parser.add_argument(
            "--respond", action="store_true", help="accept each alert, then on_site and handled"
        )
        parser.add_argument("--step-seconds", type=float, default=2.0)

    def handle(self, *args, phone, url, respond, step_seconds, **options):
        parts = urlsplit(url)
        if parts.scheme not in {"ws", "wss"} or not parts.hostname:
            raise CommandError(
                f"--url {url!r} is not a websocket URL: give ws://HOST:PORT/ws/member/ "
                "(with ./dev run --port N, ws://127.0.0.1:N/ws/member/)"
            )
        member = Member.objects.select_related("unit").filter(phone=phone).first()
        if member is None:
            raise CommandError(f"no member with phone {phone}")
        if member.user is None:
            member.user = get_user_model().objects.create_user(username=f"m{phone}")
            member.save(update_fields=["user"])
        session_key = member_session(member)
        self.stdout.write(f"{member.name} ({member.unit.name}), on duty: {member.on_duty}")
        try:
            asyncio.run(self._run(url, session_key, respond, step_seconds))
        except OSError as exc:  # refused, unreachable: the server is not running there
            raise CommandError(f"cannot connect to {url}: {exc} (is ./dev run running?)") from exc

    async def _run(self, url: str, session_key: str, respond: bool, step: float) -> None:
        origin = url.replace("ws://", "http://").replace("wss://", "https://").split("/ws/")[0]
        headers = {"Cookie": f"sessionid={session_key}", "Origin": origin}
        async with websockets.connect(url, additional_headers=headers) as ws:
            msg_id = 0

            async def send(kind: str, **fields) -> None:
                nonlocal msg_id
                msg_id += 1
                await ws.send(json.dumps({"type": kind, "id": msg_id, **fields}))

            await send("resume", last_event_id=0)
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "ping":
                    await send("pong")
                    continue
                self.stdout.write(json.dumps(frame, ensure_ascii=False))
                if frame["type"] == "incident.alert" and not frame.get("replay"):
                    incident_id = frame["incident"]["id"]
                    await send("ack", incident_id=incident_id)
                    if respond:
                        asyncio.ensure_future(self._respond(send, incident_id, step))

    async def _respond(self, send, incident_id: int, step: float) -> None:
        for action in ("accept", "on_site", "handled"):
            await asyncio.sleep(step)
            await send(action, incident_id=incident_id)
