"""Member sign-in on the phone: phone number + password, one-time codes, throttling.

Members are rostered without a login. The first sign-in (and a forgotten
password) goes through a one-time code that an admin reads out or the SMS
backend sends; with it the member sets a password and the Django user is made.

Sign-in never tells whether a number is on the roster (issue 10, hole 7): an
unknown number, a rostered one without a password and a wrong password get the
same answer, after the same password-hashing work; a code request always gets
the same notice. Failed tries are throttled, never locked, so a stranger who
knows a member's number can slow only themselves (docs/member-app.md, "Sign-in
throttling"). Counters are ``SignInThrottle`` rows per (number, address), per
address and per number; django-axes covers the staff logins (admin, API).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

from dispatch import notify
from units import phones
from units.models import Member

from .models import MemberLoginCode, SignInThrottle

User = get_user_model()

CODE_DIGITS = 6


class SignInError(Exception):
    """A refused sign-in; ``code`` is for programs, ``message`` for the member."""

    def __init__(
        self, code: str, message: str, *, field: str | None = None, retry_after: int = 0
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after  # seconds, for "throttled"


@dataclass(frozen=True)
class IssuedCode:
    member: Member
    code: str
    expires_at: dt.datetime


def phone_normalize(raw: str) -> str:
    """The shared normaliser, with sign-in's error."""
    try:
        return phones.phone_normalize(raw)
    except phones.PhoneInvalid:
        raise SignInError("bad_phone", _("请输入 11 位手机号。"), field="phone") from None


def member_username(member: Member) -> str:
    return f"m{member.phone}"


# --- One-time codes --------------------------------------------------------------------


def _code_hash(*, member_id: int, code: str) -> str:
    return salted_hmac("mobile.login-code", f"{member_id}:{code}").hexdigest()


@transaction.atomic
def member_login_code_issue(
    *, member: Member, channel: str = MemberLoginCode.Channel.ADMIN, issued_by=None
) -> IssuedCode:
    """Make a fresh one-time code for ``member`` and retire their older unused ones.

    Returns the code in clear text once; only its HMAC is stored.
    """
    if not member.is_active:
        raise SignInError("member_inactive", _("该队员已停用，不能下发登录码。"))
    now = timezone.now()
    ttl = (
        settings.MEMBER_LOGIN_SMS_CODE_TTL_S
        if channel == MemberLoginCode.Channel.SMS
        else settings.MEMBER_LOGIN_CODE_TTL_S
    )
    MemberLoginCode.objects.filter(member=member, used_at=None, expires_at__gt=now).update(
        expires_at=now
    )
    # A fresh code gets its own MEMBER_LOGIN_CODE_MAX_TRIES.
    SignInThrottle.objects.filter(phone=_code_key(member.phone)).delete()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    row = MemberLoginCode.objects.create(
        member=member,
        code_hash=_code_hash(member_id=member.pk, code=code),
        channel=channel,
        issued_by=issued_by,
        expires_at=now + dt.timedelta(seconds=ttl),
    )
    return IssuedCode(member=member, code=code, expires_at=row.expires_at)


def member_login_code_send(*, phone: str) -> None:
    """Text a one-time code to a rostered member (the "send me a code" button).

    Returns the same way whether or not the number is rostered, and whether or
    not a code went out: within MEMBER_LOGIN_SMS_RESEND_S of the last one it
    simply sends nothing (an error there would tell a stranger the number is
    rostered). Sending goes through the SMS backend of ``dispatch.notify`` after
    the code is committed.
    """
    phone = phone_normalize(phone)
    member = Member.objects.select_related("unit").filter(phone=phone).first()
    if member is None or not member.is_active or not member.unit.is_active:
        return
    recent = timezone.now() - dt.timedelta(seconds=settings.MEMBER_LOGIN_SMS_RESEND_S)
    if MemberLoginCode.objects.filter(
        member=member, channel=MemberLoginCode.Channel.SMS, created_at__gt=recent
    ).exists():
        return
    issued = member_login_code_issue(member=member, channel=MemberLoginCode.Channel.SMS)
    text = _("【应急单元】您的登录验证码：%(code)s，%(m)d 分钟内有效。") % {
        "code": issued.code,
        "m": settings.MEMBER_LOGIN_SMS_CODE_TTL_S // 60,
    }
    transaction.on_commit(lambda: notify.send_text(channel="sms", member=member, text=text))


# --- Throttling ------------------------------------------------------------------------
#
# Each failed try (wrong password, unknown number, wrong code) counts on three
# rows: the (number, address) pair, the address, and the number. Up to a row's
# free budget nothing happens; after that, the n-th failure makes the next try
# wait 2**(n - free) seconds, up to the row's cap. A try that comes too early
# is answered 429 with Retry-After and checks no password, so it costs the
# attacker time and us nothing. Nothing is ever locked: the number's own row
# has a short cap, so the real member on their own phone waits a minute at
# worst even when a botnet guesses from many addresses.


def _throttle_keys(*, phone: str, ip: str | None) -> dict[str, str]:
    ip = ip or "-"
    return {"pair": f"pair:{phone}|{ip}", "ip": f"ip:{ip}", "phone": f"phone:{phone}"}


def _code_key(phone: str) -> str:
    return f"code:{phone}"


def _throttle_check(keys: dict[str, str]) -> None:
    now = timezone.now()
    waits = SignInThrottle.objects.filter(phone__in=keys.values(), next_try_at__gt=now).values_list(
        "next_try_at", flat=True
    )
    if waits:
        seconds = math.ceil((max(waits) - now).total_seconds())
        raise SignInError("throttled", _("尝试过于频繁，请稍后再试。"), retry_after=max(1, seconds))


def _throttle_row(key: str) -> SignInThrottle:
    """The row for ``key``, locked for update (created if missing, race-safe)."""
    try:
        with transaction.atomic():
            return SignInThrottle.objects.select_for_update().get_or_create(phone=key)[0]
    except IntegrityError:  # a parallel failure created it first
        return SignInThrottle.objects.select_for_update().get(phone=key)


def _failure_record(keys: dict[str, str]) -> None:
    """Count a failure on every row of ``keys`` and set when each may try next.

    Runs in its own transaction: the caller is about to raise, and the count
    must survive that. Rows are locked in key order, so two parallel failures
    never wait on each other crosswise.
    """
    now = timezone.now()
    forget = dt.timedelta(seconds=settings.MEMBER_SIGNIN_FORGET_S)
    with transaction.atomic():
        for kind, key in sorted(keys.items(), key=lambda kv: kv[1]):
            free, cap = settings.MEMBER_SIGNIN_THROTTLES[kind]
            row = _throttle_row(key)
            if row.last_failure_at is None or row.last_failure_at < now - forget:
                row.failures = 0  # quiet for long enough: start again
            row.failures += 1
            row.last_failure_at = now
            if row.failures >= free:
                first = settings.MEMBER_SIGNIN_FIRST_WAIT_S
                delay = min(cap, first * 2 ** min(row.failures - free, 32))
                row.next_try_at = now + dt.timedelta(seconds=delay)
            row.save(update_fields=["failures", "last_failure_at", "next_try_at"])


def _code_failure_record(*, phone: str, member: Member | None) -> None:
    """A wrong code: after MEMBER_LOGIN_CODE_MAX_TRIES the live codes are void."""
    with transaction.atomic():
        row = _throttle_row(_code_key(phone))
        row.failures += 1
        row.last_failure_at = timezone.now()
        row.save(update_fields=["failures", "last_failure_at"])
        if row.failures >= settings.MEMBER_LOGIN_CODE_MAX_TRIES:
            if member is not None:
                MemberLoginCode.objects.filter(
                    member=member, used_at=None, expires_at__gt=row.last_failure_at
                ).update(expires_at=row.last_failure_at)
            row.delete()


def _failures_reset(keys: dict[str, str]) -> None:
    # The address's own row stays: one success must not reset a sprayer's budget.
    SignInThrottle.objects.filter(phone__in=[keys["pair"], keys["phone"]]).delete()


def _bad_credentials() -> SignInError:
    return SignInError(
        "bad_credentials",
        _("手机号或密码错误。首次登录或忘记密码请用验证码登录"),
        field="password",
    )


def _member_may_sign_in(member: Member) -> None:
    if not member.is_active:
        raise SignInError("member_inactive", _("该队员已停用，无法登录。请联系单元负责人。"))
    if not member.unit.is_active:
        raise SignInError(
            "unit_inactive",
            _("你所在的单元“%(u)s”已停用，无法登录接收警情。") % {"u": member.unit.name},
        )


# --- Sign-in ---------------------------------------------------------------------------


def member_sign_in(*, phone: str, password: str, ip: str | None = None):
    """Check a member's phone + password; returns the Django user to log in.

    Raises SignInError: bad phone format, throttled (429), wrong credentials
    (counted; the same answer for an unknown number and for a member without a
    password yet), member or unit inactive. The inactive checks come after the
    password, so they tell nothing to a stranger.
    """
    phone = phone_normalize(phone)
    keys = _throttle_keys(phone=phone, ip=ip)
    _throttle_check(keys)
    member = Member.objects.select_related("unit", "user").filter(phone=phone).first()
    user = member.user if member else None
    if user is None or not user.has_usable_password():
        # Hash anyway, as ModelBackend does, so the time taken does not tell
        # an unknown number from a rostered one.
        User().set_password(password)
        user = None
    if user is None or not password or not user.check_password(password):
        _failure_record(keys)
        raise _bad_credentials()
    if not user.is_active:
        raise SignInError("member_inactive", _("该账号已停用，无法登录。"))
    _member_may_sign_in(member)
    _failures_reset(keys)
    return user


def member_activate(*, phone: str, code: str, password: str, ip: str | None = None):
    """First sign-in (or a password reset): a valid one-time code sets the password.

    Creates the Django user for a rostered member without one. The code is
    consumed with a conditional update in the same transaction, so it works once.
    """
    phone = phone_normalize(phone)
    keys = _throttle_keys(phone=phone, ip=ip)
    _throttle_check(keys)
    code = (code or "").strip()
    member = Member.objects.select_related("unit", "user").filter(phone=phone).first()
    now = timezone.now()
    row = None
    if member is not None and re.fullmatch(rf"\d{{{CODE_DIGITS}}}", code):
        wanted = _code_hash(member_id=member.pk, code=code)
        for candidate in MemberLoginCode.objects.filter(
            member=member, used_at=None, expires_at__gt=now
        ):
            if constant_time_compare(candidate.code_hash, wanted):
                row = candidate
    if row is None:
        _failure_record(keys)
        _code_failure_record(phone=phone, member=member)
        raise SignInError("bad_credentials", _("验证码错误或已过期。"), field="code")
    _member_may_sign_in(member)
    try:
        password_validation.validate_password(password, user=member.user)
    except ValidationError as exc:
        raise SignInError("weak_password", " ".join(exc.messages), field="password") from exc
    with transaction.atomic():
        if not MemberLoginCode.objects.filter(pk=row.pk, used_at=None).update(used_at=now):
            raise SignInError("code_used", _("该验证码已使用。"), field="code")
        user = member.user
        if user is None:
            try:
                with transaction.atomic():
                    user = User.objects.create_user(
                        username=member_username(member), password=password
                    )
            except IntegrityError as exc:
                raise SignInError("account_conflict", _("登录账号冲突，请联系管理员。")) from exc
            Member.objects.filter(pk=member.pk, user=None).update(user=user)
            member.refresh_from_db(fields=["user"])
            if member.user_id != user.pk:
                raise SignInError("race", _("账号刚被创建，请重新登录。"))
        else:
            user.set_password(password)
            user.is_active = True
            user.save(update_fields=["password", "is_active"])
    _failures_reset(keys)
    SignInThrottle.objects.filter(phone=_code_key(phone)).delete()
    return user
