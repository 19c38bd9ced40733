"""The member socket's pass: a signed cookie, set at sign-in beside the session
cookie, naming the member and the login it was issued for.

Without it a member socket's handshake read the session row, then the user, then
the member and unit: three round trips on daphne's one database thread per
socket, and a reconnect storm of thousands queued behind each other
(bench/city.py). With it the handshake is one query
(``selectors.member_for_socket``): the member, unit and login rows, and whether
the session is still there. It is a pointer, not a credential on its own: the
session must still exist and be unexpired, the login still active and its
password unchanged, exactly what Django's session authentication checks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare

PASS_COOKIE = "member_socket"  # noqa: S105 - a cookie name, not a secret
_SALT = "dispatch.socket_pass"


def _digest(value: str) -> str:
    # The cookie carries digests, not the session key (already in its own
    # cookie) nor the session's auth hash.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SocketPass:
    member_id: int
    user_id: int
    auth_digest: str

    def auth_hash_matches(self, session_auth_hashes: list[str]) -> bool:
        """Is one of the login's current session auth hashes (its password's) the
        one the pass was issued with? A changed password ends the pass as it ends
        the session."""
        return any(constant_time_compare(self.auth_digest, _digest(h)) for h in session_auth_hashes)


def socket_pass_make(
    *, member_id: int, user_id: int, session_key: str, session_auth_hash: str
) -> str:
    return signing.dumps(
        [member_id, user_id, _digest(session_key), _digest(session_auth_hash)], salt=_SALT
    )


def socket_pass_read(*, value: str | None, session_key: str | None) -> SocketPass | None:
    """The pass, if signed by us and issued for this session key; else None."""
    if not value or not session_key:
        return None
    try:
        data = signing.loads(value, salt=_SALT)
    except signing.BadSignature:
        return None
    if not (
        isinstance(data, list)
        and len(data) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) for v in data[:2])
        and all(isinstance(v, str) for v in data[2:])
    ):
        return None
    member_id, user_id, key_digest, auth_digest = data
    if not constant_time_compare(key_digest, _digest(session_key)):
        return None
    return SocketPass(member_id=member_id, user_id=user_id, auth_digest=auth_digest)


def socket_pass_give(request: HttpRequest, response: HttpResponse, *, member) -> None:
    """Give a signed-in member's phone its pass, unless it holds one for this session.

    At sign-in, and on each load of the app page: a phone signed in before
    passes existed gets one without signing in again.
    """
    session = request.session
    auth_hash = session.get(HASH_SESSION_KEY)
    if not session.session_key or not auth_hash:
        return
    held = socket_pass_read(value=request.COOKIES.get(PASS_COOKIE), session_key=session.session_key)
    if held is not None and held.member_id == member.pk:
        return
    socket_pass_set(
        response,
        member_id=member.pk,
        user_id=member.user_id,
        session_key=session.session_key,
        auth_hash=auth_hash,
    )


def socket_pass_set(
    response: HttpResponse, *, member_id: int, user_id: int, session_key: str, auth_hash: str
) -> None:
    """Give the phone its pass with the same lifetime and flags as its session cookie."""
    response.set_cookie(
        PASS_COOKIE,
        socket_pass_make(
            member_id=member_id,
            user_id=user_id,
            session_key=session_key,
            session_auth_hash=auth_hash,
        ),
        max_age=None if settings.SESSION_EXPIRE_AT_BROWSER_CLOSE else settings.SESSION_COOKIE_AGE,
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )


def socket_pass_clear(response: HttpResponse) -> None:
    response.delete_cookie(
        PASS_COOKIE,
        path=settings.SESSION_COOKIE_PATH,
        domain=settings.SESSION_COOKIE_DOMAIN,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )
