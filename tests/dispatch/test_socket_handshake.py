"""A member socket's handshake costs one query with the socket pass the sign-in
page gives (``dispatch.socket_pass``, ``selectors.member_for_socket``), and two
without; the pass never signs in more than the session does."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dispatch.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from dispatch.socket_pass import PASS_COOKIE, socket_pass_make
from tests.dispatch.test_consumers import login_cookies, phone, run
from units.models import Member, Unit

pytestmark = pytest.mark.django_db(transaction=True)


def _handshake_queries(cookies: str) -> tuple[int, dict]:
    hello: dict = {}

    async def scenario():
        async with phone(cookies=cookies) as p:
            hello.update(p.hello)

    with CaptureQueriesContext(connection) as captured:
        run(scenario)
    return len(captured), hello


def _session_key(cookies: str) -> str:
    return dict(part.split("=", 1) for part in cookies.split("; "))[settings.SESSION_COOKIE_NAME]


def _pass(cookies: str) -> str:
    return dict(part.split("=", 1) for part in cookies.split("; "))[PASS_COOKIE]


def _refused(cookies: str, code: int, error: str) -> None:
    async def scenario():
        async with phone(cookies=cookies, hello=False) as p:
            frame = await p.receive()
            assert (frame["type"], frame["code"]) == ("error", error)
            assert (await p.close_frame())["code"] == code

    run(scenario)


def test_a_handshake_with_the_socket_pass_costs_one_query(near_responder):
    queries, hello = _handshake_queries(login_cookies(near_responder.user))
    assert queries == 1
    assert hello["member"]["id"] == near_responder.pk
    assert hello["unit"]["id"] == near_responder.unit_id
    assert hello["on_duty"] is True


def test_a_handshake_without_a_pass_costs_two_queries(near_responder):
    queries, hello = _handshake_queries(login_cookies(near_responder.user, with_pass=False))
    assert queries == 2
    assert hello["member"]["id"] == near_responder.pk


def test_the_sign_in_page_gives_the_pass_and_sign_out_takes_it(near_responder):
    user = near_responder.user
    user.set_password("s3cret-pass!")
    user.save()
    client = Client()
    response = client.post(
        reverse("member:sign-in"),
        {"form": "password", "phone": near_responder.phone, "password": "s3cret-pass!"},
    )
    assert response.status_code == 302
    cookies = (
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}; "
        f"{PASS_COOKIE}={client.cookies[PASS_COOKIE].value}"
    )
    assert client.cookies[PASS_COOKIE]["httponly"]
    queries, hello = _handshake_queries(cookies)
    assert (queries, hello["member"]["id"]) == (1, near_responder.pk)

    client.post(reverse("member:sign-out"))
    assert client.cookies[PASS_COOKIE].value == ""
    # The old cookies after sign-out: the session is gone, so is the socket.
    _refused(cookies, CLOSE_UNAUTHENTICATED, "unauthenticated")


def test_a_pass_without_its_session_signs_in_no_one(near_responder):
    cookies = login_cookies(near_responder.user)
    Session.objects.filter(session_key=_session_key(cookies)).delete()
    _refused(cookies, CLOSE_UNAUTHENTICATED, "unauthenticated")


def test_a_pass_with_an_expired_session_signs_in_no_one(near_responder):
    cookies = login_cookies(near_responder.user)
    Session.objects.filter(session_key=_session_key(cookies)).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1)
    )
    _refused(cookies, CLOSE_UNAUTHENTICATED, "unauthenticated")


@pytest.mark.parametrize("with_pass", [True, False])
def test_a_changed_password_ends_the_handshake_as_it_ends_the_session(near_responder, with_pass):
    cookies = login_cookies(near_responder.user, with_pass=with_pass)
    user = near_responder.user
    user.set_password("a-new-password-1")
    user.save()
    _refused(cookies, CLOSE_UNAUTHENTICATED, "unauthenticated")


@pytest.mark.parametrize("with_pass", [True, False])
def test_an_inactive_login_is_refused_at_the_handshake(near_responder, with_pass):
    cookies = login_cookies(near_responder.user, with_pass=with_pass)
    get_user_model().objects.filter(pk=near_responder.user_id).update(is_active=False)
    _refused(cookies, CLOSE_UNAUTHENTICATED, "unauthenticated")


@pytest.mark.parametrize("with_pass", [True, False])
def test_an_inactive_member_or_unit_is_refused_at_the_handshake(near_responder, with_pass):
    cookies = login_cookies(near_responder.user, with_pass=with_pass)
    Member.objects.filter(pk=near_responder.pk).update(is_active=False)
    _refused(cookies, CLOSE_FORBIDDEN, "inactive")
    Member.objects.filter(pk=near_responder.pk).update(is_active=True)
    Unit.objects.filter(pk=near_responder.unit_id).update(is_active=False)
    _refused(cookies, CLOSE_FORBIDDEN, "inactive")


def test_someone_elses_pass_is_ignored_the_session_decides(near_responder, neighbour_responder):
    mine = login_cookies(near_responder.user, with_pass=False)
    theirs = login_cookies(neighbour_responder.user)
    cookies = f"{mine}; {PASS_COOKIE}={_pass(theirs)}"
    _queries, hello = _handshake_queries(cookies)
    assert hello["member"]["id"] == near_responder.pk


def test_a_forged_pass_is_ignored_the_session_decides(near_responder, neighbour_responder):
    mine = login_cookies(near_responder.user, with_pass=False)
    key = _session_key(mine)
    # Claims the neighbour for my session key, but not signed with our key.
    forged = socket_pass_make(
        member_id=neighbour_responder.pk,
        user_id=neighbour_responder.user_id,
        session_key=key,
        session_auth_hash="x",
    )
    forged = forged[:-4] + ("AAAA" if not forged.endswith("AAAA") else "BBBB")
    _queries, hello = _handshake_queries(f"{mine}; {PASS_COOKIE}={forged}")
    assert hello["member"]["id"] == near_responder.pk


def test_a_pass_for_my_session_naming_another_member_signs_in_no_one(
    near_responder, neighbour_responder
):
    # Only a server holding the secret key could issue this; still, the login
    # named must own the member named.
    mine = login_cookies(near_responder.user, with_pass=False)
    wrong = socket_pass_make(
        member_id=neighbour_responder.pk,
        user_id=near_responder.user_id,
        session_key=_session_key(mine),
        session_auth_hash="whatever",
    )
    _refused(f"{mine}; {PASS_COOKIE}={wrong}", CLOSE_UNAUTHENTICATED, "unauthenticated")


def test_the_app_page_gives_a_pass_to_a_phone_signed_in_without_one(near_responder):
    client = Client()
    client.force_login(near_responder.user)
    assert PASS_COOKIE not in client.cookies
    response = client.get(reverse("member:app"))
    assert response.status_code == 200
    cookies = (
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}; "
        f"{PASS_COOKIE}={client.cookies[PASS_COOKIE].value}"
    )
    queries, hello = _handshake_queries(cookies)
    assert (queries, hello["member"]["id"]) == (1, near_responder.pk)
    # Held and valid: not given again.
    assert PASS_COOKIE not in client.get(reverse("member:app")).cookies
