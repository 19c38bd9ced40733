from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from mobile.auth import (
    SignInError,
    member_activate,
    member_login_code_issue,
    member_login_code_send,
    member_sign_in,
    phone_normalize,
)
from mobile.models import MemberLoginCode, SignInThrottle

PASSWORD = "Resp0nd-now"
STRANGER = "203.0.113.9"
MEMBER = "198.51.100.7"


@pytest.fixture
def activated(near_member):
    issued = member_login_code_issue(member=near_member)
    member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    near_member.refresh_from_db()
    return near_member


def test_phone_is_normalised_from_common_spellings():
    assert phone_normalize("+86 139-1234-5678") == "13912345678"
    assert phone_normalize("0086 13912345678") == "13912345678"
    with pytest.raises(SignInError) as exc:
        phone_normalize("12345")
    assert exc.value.field == "phone"


def test_first_sign_in_with_a_code_creates_the_user_and_sets_the_password(near_member):
    issued = member_login_code_issue(member=near_member)
    user = member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    near_member.refresh_from_db()
    assert near_member.user == user
    assert user.check_password(PASSWORD)
    assert member_sign_in(phone=near_member.phone, password=PASSWORD) == user


def test_a_code_works_only_once(near_member):
    issued = member_login_code_issue(member=near_member)
    member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    with pytest.raises(SignInError) as exc:
        member_activate(phone=near_member.phone, code=issued.code, password="Other-pass-1")
    assert exc.value.code == "bad_credentials"
    near_member.refresh_from_db()
    assert near_member.user.check_password(PASSWORD)


def test_a_new_code_retires_the_older_one(near_member):
    old = member_login_code_issue(member=near_member)
    new = member_login_code_issue(member=near_member)
    with pytest.raises(SignInError):
        member_activate(phone=near_member.phone, code=old.code, password=PASSWORD)
    member_activate(phone=near_member.phone, code=new.code, password=PASSWORD)


def test_an_expired_code_is_refused(near_member):
    issued = member_login_code_issue(member=near_member)
    MemberLoginCode.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(SignInError) as exc:
        member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    assert exc.value.field == "code"
    near_member.refresh_from_db()
    assert near_member.user is None


def test_a_weak_password_leaves_the_code_usable(near_member):
    issued = member_login_code_issue(member=near_member)
    with pytest.raises(SignInError) as exc:
        member_activate(phone=near_member.phone, code=issued.code, password="123")
    assert exc.value.code == "weak_password"
    near_member.refresh_from_db()
    assert near_member.user is None
    member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)


def test_only_a_hash_of_the_code_is_stored(near_member):
    issued = member_login_code_issue(member=near_member)
    row = MemberLoginCode.objects.get()
    assert issued.code not in row.code_hash


def test_sign_in_before_activation_answers_like_a_wrong_password(near_member):
    # Saying "set a password first" would tell a stranger the number is rostered.
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone=near_member.phone, password="anything")
    assert exc.value.code == "bad_credentials"
    assert "验证码登录" in exc.value.message


def test_wrong_passwords_are_throttled_not_locked(activated):
    for _ in range(3):  # the pair's free budget
        with pytest.raises(SignInError) as exc:
            member_sign_in(phone=activated.phone, password="wrong-one", ip=STRANGER)
        assert exc.value.code == "bad_credentials"
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone=activated.phone, password=PASSWORD, ip=STRANGER)
    assert exc.value.code == "throttled" and exc.value.retry_after >= 1
    # The member's own phone is not held up by the stranger's tries.
    assert member_sign_in(phone=activated.phone, password=PASSWORD, ip=MEMBER) == activated.user
    # And the stranger's address may try again once its wait is over.
    SignInThrottle.objects.update(next_try_at=timezone.now() - dt.timedelta(seconds=1))
    assert member_sign_in(phone=activated.phone, password=PASSWORD, ip=STRANGER) == activated.user
    assert not SignInThrottle.objects.filter(phone__startswith="pair:").exists()


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (1, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]),
        (5, [5, 10, 20, 40, 80, 160, 320, 640, 900, 900, 900, 900]),
    ],
)
def test_the_wait_doubles_up_to_its_cap(activated, settings, first, expected):
    settings.MEMBER_SIGNIN_THROTTLES = {"pair": (3, 900), "ip": (100, 900), "phone": (100, 60)}
    settings.MEMBER_SIGNIN_FIRST_WAIT_S = first
    waits = []
    for _ in range(14):
        SignInThrottle.objects.update(next_try_at=None)  # as if the attacker waited
        with pytest.raises(SignInError):
            member_sign_in(phone=activated.phone, password="wrong-one", ip=STRANGER)
        row = SignInThrottle.objects.get(phone=f"pair:{activated.phone}|{STRANGER}")
        if row.next_try_at:
            waits.append(round((row.next_try_at - row.last_failure_at).total_seconds()))
    assert waits == expected


def test_a_number_guessed_from_many_addresses_waits_at_most_a_minute(activated):
    for i in range(12):
        with pytest.raises(SignInError):
            member_sign_in(phone=activated.phone, password="wrong-one", ip=f"203.0.113.{i}")
    row = SignInThrottle.objects.get(phone=f"phone:{activated.phone}")
    assert 0 < (row.next_try_at - timezone.now()).total_seconds() <= 60
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone=activated.phone, password=PASSWORD, ip=MEMBER)
    assert exc.value.code == "throttled" and exc.value.retry_after <= 60


def test_one_address_spraying_numbers_is_slowed(db):
    for i in range(20):  # the address's free budget, one try per number
        with pytest.raises(SignInError) as exc:
            member_sign_in(phone=f"138000000{i:02d}", password="x", ip=STRANGER)
        assert exc.value.code == "bad_credentials"
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone="13800000099", password="x", ip=STRANGER)
    assert exc.value.code == "throttled"


def test_a_code_is_void_after_five_wrong_tries(near_member, settings):
    issued = member_login_code_issue(member=near_member)
    wrong = f"{(int(issued.code) + 1) % 1_000_000:06d}"
    for i in range(settings.MEMBER_LOGIN_CODE_MAX_TRIES):
        with pytest.raises(SignInError) as exc:
            # From different addresses, so the throttle is not what stops them.
            member_activate(
                phone=near_member.phone, code=wrong, password=PASSWORD, ip=f"203.0.113.{i}"
            )
        assert exc.value.code == "bad_credentials"
    with pytest.raises(SignInError) as exc:
        member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD, ip=MEMBER)
    assert exc.value.code == "bad_credentials"
    # A new code works.
    fresh = member_login_code_issue(member=near_member)
    member_activate(phone=near_member.phone, code=fresh.code, password=PASSWORD, ip=MEMBER)


def test_an_unrostered_number_gets_the_same_answer_and_is_counted(db):
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone="13800000000", password="whatever")
    assert exc.value.code == "bad_credentials"
    assert SignInThrottle.objects.get(phone="phone:13800000000").failures == 1


def test_a_member_of_an_inactive_unit_cannot_sign_in(activated):
    activated.unit.is_active = False
    activated.unit.save()
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone=activated.phone, password=PASSWORD)
    assert exc.value.code == "unit_inactive"
    assert activated.unit.name in exc.value.message


def test_a_member_of_an_inactive_unit_cannot_activate(near_member):
    near_member.unit.is_active = False
    near_member.unit.save()
    issued = member_login_code_issue(member=near_member)
    with pytest.raises(SignInError) as exc:
        member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    assert exc.value.code == "unit_inactive"
    assert MemberLoginCode.objects.get().used_at is None


def test_an_sms_code_goes_through_the_sms_backend(
    near_member, settings, django_capture_on_commit_callbacks
):
    from dispatch import notify

    settings.NOTIFY_BACKENDS = {**settings.NOTIFY_BACKENDS, "sms": "dispatch.notify.LocMemBackend"}
    notify.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        member_login_code_send(phone=near_member.phone)
    assert len(notify.outbox) == 1
    sent = notify.outbox[0]
    assert sent.phone == near_member.phone
    code = next(w for w in sent.text.replace("，", " ").replace("：", " ").split() if w.isdigit())
    member_activate(phone=near_member.phone, code=code, password=PASSWORD)
    # A second request within the resend interval answers the same and sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        member_login_code_send(phone=near_member.phone)
    assert len(notify.outbox) == 1


def test_an_sms_code_request_for_an_unknown_number_sends_nothing(db, settings):
    from dispatch import notify

    settings.NOTIFY_BACKENDS = {**settings.NOTIFY_BACKENDS, "sms": "dispatch.notify.LocMemBackend"}
    notify.outbox.clear()
    member_login_code_send(phone="13800000001")
    assert notify.outbox == []


def test_the_api_login_of_a_member_account_is_limited_by_axes(activated, settings):
    # The member throttle covers the phone's page; django-axes every other login.
    from rest_framework.test import APIClient

    api = APIClient()
    username = f"m{activated.phone}"
    for _ in range(settings.AXES_FAILURE_LIMIT):
        api.post("/api/v1/auth/token/", {"username": username, "password": "nope"})
    right = api.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD})
    assert right.status_code == 429


def test_staff_logins_are_untouched_by_the_member_throttle(tianhe_admin):
    from rest_framework.test import APIClient

    r = APIClient().post(
        "/api/v1/auth/token/", {"username": tianhe_admin.username, "password": "pw-12345678"}
    )
    assert r.status_code == 200
    assert not SignInThrottle.objects.exists()
