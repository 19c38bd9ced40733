"""Hole 6: staff logins are locked after repeated failures (django-axes).

Admin login, the API's token and session logins. Same answer for a known and an
unknown username, 429 with Retry-After on the API, the client address taken
from the socket unless proxies are declared, admin unlock.
"""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "Staff-pass-123"
ATTACKER = "203.0.113.9"


@pytest.fixture
def staff(db):
    return UserFactory(username="duty_officer", password=PASSWORD, is_staff=True)


@pytest.fixture
def limit(settings) -> int:
    return settings.AXES_FAILURE_LIMIT


def _token(client: Client, username: str, password: str, ip: str = ATTACKER, **extra):
    return client.post(
        "/api/v1/auth/token/",
        {"username": username, "password": password},
        content_type="application/json",
        REMOTE_ADDR=ip,
        **extra,
    )


def _admin(client: Client, username: str, password: str, ip: str = ATTACKER):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
    )


def test_repeated_wrong_passwords_on_the_api_token_lock_with_429_and_retry_after(staff, limit):
    client = Client()
    for _ in range(limit - 1):
        assert _token(client, staff.username, "wrong").status_code == 400

    locked = _token(client, staff.username, "wrong")
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) > 0
    assert "detail" in locked.json()
    # While locked, even the right password is refused from that address.
    assert _token(client, staff.username, PASSWORD).status_code == 429


def test_a_lockout_answers_the_same_for_a_known_and_an_unknown_username(staff, limit):
    known = [_token(Client(), staff.username, "wrong") for _ in range(limit + 1)]
    unknown = [_token(Client(), "nobody_here", "wrong") for _ in range(limit + 1)]

    for a, b in zip(known, unknown, strict=True):
        assert (a.status_code, a.json()) == (b.status_code, b.json())
    assert known[-1].status_code == 429


def test_the_api_session_login_is_locked_too(staff, limit):
    client = Client()
    for _ in range(limit):
        client.post(
            "/api/v1/auth/login/",
            {"username": staff.username, "password": "wrong"},
            content_type="application/json",
            REMOTE_ADDR=ATTACKER,
        )
    locked = client.post(
        "/api/v1/auth/login/",
        {"username": staff.username, "password": PASSWORD},
        content_type="application/json",
        REMOTE_ADDR=ATTACKER,
    )
    assert locked.status_code == 429
    assert "Retry-After" in locked


def test_repeated_wrong_passwords_on_the_admin_login_lock_it(staff, limit):
    client = Client()
    for _ in range(limit - 1):
        assert _admin(client, staff.username, "wrong").status_code == 200  # the form again
    assert _admin(client, staff.username, "wrong").status_code == 429

    locked = _admin(client, staff.username, PASSWORD)
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) > 0
    assert "/admin/" not in locked.get("Location", "")


def test_a_stranger_elsewhere_does_not_lock_the_officer_out(staff, limit):
    for _ in range(limit + 2):
        _token(Client(), staff.username, "wrong", ip=ATTACKER)

    assert _token(Client(), staff.username, PASSWORD, ip="198.51.100.7").status_code == 200


def test_a_forged_x_forwarded_for_is_ignored_without_a_declared_proxy(staff, limit):
    """Rotating the header must not buy an attacker fresh attempts."""
    for i in range(limit):
        _token(Client(), staff.username, "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")

    assert (
        _token(Client(), staff.username, "wrong", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code
        == 429
    )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_behind_a_declared_proxy_the_forwarded_client_address_is_used(staff, limit, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.1"
    for i in range(limit):
        # The proxy appends the address it saw; what the client wrote comes first.
        forged = f"10.0.0.{i + 2}, {ATTACKER}"
        _token(Client(), staff.username, "wrong", ip=proxy, HTTP_X_FORWARDED_FOR=forged)

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    # Another client behind the same proxy is not locked out.
    other = _token(
        Client(), staff.username, PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="198.51.100.7"
    )
    assert other.status_code == 200


def test_an_admin_unlocks_a_locked_out_officer(staff, limit, admin_client):
    for _ in range(limit + 1):
        _token(Client(), staff.username, "wrong")
    attempt = AccessAttempt.objects.get(username=staff.username)

    listed = admin_client.get("/admin/axes/accessattempt/")
    assert listed.status_code == 200
    admin_client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )

    assert not AccessAttempt.objects.exists()
    assert _token(Client(), staff.username, PASSWORD).status_code == 200


def test_the_client_address_ignores_a_header_shorter_than_the_proxy_chain(settings, rf):
    from config.client_ip import client_ip

    settings.TRUSTED_PROXY_COUNT = 2
    two_hops = rf.get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9, 10.0.0.1"
    )
    one_hop = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    garbage = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="nonsense, 10.0.0.1")

    assert client_ip(two_hops) == "203.0.113.9"
    assert client_ip(one_hop) == "10.0.0.2"
    assert client_ip(garbage) == "10.0.0.2"
