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


def test_sign_in_before_activation_says_to_use_a_code(near_member):
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone=near_member.phone, password="anything")
    assert exc.value.code == "no_password"


def test_wrong_passwords_lock_the_number_and_even_the_right_one_then_fails(activated, settings):
    settings.MEMBER_LOGIN_MAX_FAILURES = 3
    for left in (2, 1):
        with pytest.raises(SignInError) as exc:
            member_sign_in(phone=activated.phone, password="wrong-one")
        assert exc.value.code == "bad_credentials"
        assert f"{left}" in exc.value.message
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone=activated.phone, password="wrong-one")
    assert exc.value.code == "locked"
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone=activated.phone, password=PASSWORD)
    assert exc.value.code == "locked"


def test_the_lock_runs_out(activated, settings):
    settings.MEMBER_LOGIN_MAX_FAILURES = 1
    with pytest.raises(SignInError):
        member_sign_in(phone=activated.phone, password="wrong-one")
    SignInThrottle.objects.update(locked_until=timezone.now() - dt.timedelta(seconds=1))
    assert member_sign_in(phone=activated.phone, password=PASSWORD) == activated.user
    assert not SignInThrottle.objects.exists()


def test_wrong_codes_count_toward_the_same_lockout(near_member, settings):
    settings.MEMBER_LOGIN_MAX_FAILURES = 2
    issued = member_login_code_issue(member=near_member)
    wrong = f"{(int(issued.code) + 1) % 1_000_000:06d}"
    for _ in range(2):
        with pytest.raises(SignInError):
            member_activate(phone=near_member.phone, code=wrong, password=PASSWORD)
    with pytest.raises(SignInError) as exc:
        member_activate(phone=near_member.phone, code=issued.code, password=PASSWORD)
    assert exc.value.code == "locked"


def test_an_unrostered_number_gets_the_same_answer_and_is_counted(db):
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone="13800000000", password="whatever")
    assert exc.value.code == "bad_credentials"
    assert SignInThrottle.objects.get(phone="13800000000").failures == 1


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
    with pytest.raises(SignInError) as exc:
        member_login_code_send(phone=near_member.phone)
    assert exc.value.code == "code_too_soon"


def test_an_sms_code_request_for_an_unknown_number_sends_nothing(db, settings):
    from dispatch import notify

    settings.NOTIFY_BACKENDS = {**settings.NOTIFY_BACKENDS, "sms": "dispatch.notify.LocMemBackend"}
    notify.outbox.clear()
    member_login_code_send(phone="13800000001")
    assert notify.outbox == []


def test_the_api_login_counts_toward_and_honours_the_member_lockout(activated, settings):
    from rest_framework.test import APIClient

    settings.MEMBER_LOGIN_MAX_FAILURES = 2
    api = APIClient()
    username = f"m{activated.phone}"
    for _ in range(2):
        wrong = api.post("/api/v1/auth/token/", {"username": username, "password": "nope"})
        assert wrong.status_code == 400
    assert SignInThrottle.objects.get(phone=activated.phone).locked_until is not None
    right = api.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD})
    assert right.status_code == 400
    with pytest.raises(SignInError) as exc:
        member_sign_in(phone=activated.phone, password=PASSWORD)
    assert exc.value.code == "locked"


def test_staff_logins_are_untouched_by_the_member_lockout(tianhe_admin):
    from rest_framework.test import APIClient

    r = APIClient().post(
        "/api/v1/auth/token/", {"username": tianhe_admin.username, "password": "pw-12345678"}
    )
    assert r.status_code == 200
    assert not SignInThrottle.objects.exists()
