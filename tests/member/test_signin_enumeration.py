"""Hole 7: member sign-in must not reveal the roster, and a stranger must not be
able to lock a member out.

Written against the HTTP endpoints only (and the roster models), so these tests
survive the sign-in code's move from units/ to mobile/. They fail on today's
code; the fix is in mobile/auth.py (docs/member-app.md, "Sign-in throttling").
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from units.models import Member

pytestmark = pytest.mark.django_db

PASSWORD = "Resp0nd-now"
UNKNOWN = "13912345678"
STRANGER_IP = "203.0.113.9"
MEMBER_IP = "198.51.100.7"


def _with_password(member: Member) -> Member:
    user = get_user_model().objects.create_user(username=f"m{member.phone}", password=PASSWORD)
    Member.objects.filter(pk=member.pk).update(user=user)
    member.refresh_from_db()
    return member


def _page(response, phone: str) -> tuple[int, str]:
    """Status and page with what legitimately differs (CSRF token, the echoed
    number) blanked out."""
    body = response.content.decode()
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "CSRF", body)
    return response.status_code, body.replace(phone, "PHONE")


def _post(client: Client, ip: str, **form) -> object:
    return client.post("/m/login/", form, REMOTE_ADDR=ip)


@pytest.fixture
def unknown_number(db) -> str:
    assert not Member.objects.filter(phone=UNKNOWN).exists()
    return UNKNOWN


def test_a_password_try_answers_the_same_for_a_rostered_number_and_an_unknown_one(
    near_member, unknown_number
):
    """Today a rostered number without a password gets "首次登录请先用一次性验证码设置密码"."""
    rostered = _post(Client(), STRANGER_IP, form="password", phone=near_member.phone, password="x")
    unknown = _post(Client(), STRANGER_IP, form="password", phone=unknown_number, password="x")

    assert _page(rostered, near_member.phone) == _page(unknown, unknown_number)


def test_repeated_password_tries_answer_the_same_for_rostered_and_unknown_numbers(
    near_member, unknown_number
):
    """Today the rostered number is never counted, the unknown one locks at 5."""
    for attempt in range(7):
        rostered = _post(
            Client(), STRANGER_IP, form="password", phone=near_member.phone, password=f"x{attempt}"
        )
        unknown = _post(
            Client(), STRANGER_IP, form="password", phone=unknown_number, password=f"x{attempt}"
        )
        assert _page(rostered, near_member.phone) == _page(unknown, unknown_number), attempt


def test_a_second_code_request_answers_the_same_for_rostered_and_unknown_numbers(
    near_member, unknown_number
):
    """Today the second request answers 400 "已发送" for a rostered number, 200 otherwise."""
    client = Client()
    answers = {}
    for phone in (near_member.phone, unknown_number):
        _post(client, STRANGER_IP, form="send_code", phone=phone)
        answers[phone] = _page(_post(client, STRANGER_IP, form="send_code", phone=phone), phone)

    assert answers[near_member.phone] == answers[unknown_number]


def test_a_stranger_is_slowed_but_cannot_lock_the_real_member_out(near_member):
    member = _with_password(near_member)
    stranger = Client()
    answers = [
        _post(stranger, STRANGER_IP, form="password", phone=member.phone, password=f"guess{i}")
        for i in range(10)
    ]

    # The stranger is throttled, and told when to come back.
    assert answers[-1].status_code == 429
    assert int(answers[-1]["Retry-After"]) > 0
    # The real member, from their own phone, still signs in at once.
    real = Client()
    signed_in = _post(real, MEMBER_IP, form="password", phone=member.phone, password=PASSWORD)
    assert signed_in.status_code == 302
    assert real.get("/m/api/me/").status_code == 200
