"""Member sign-in on the phone: phone number + password, one-time codes, lockout.

Members are rostered without a login. The first sign-in (and a forgotten
password) goes through a one-time code that an admin reads out or the SMS
backend sends; with it the member sets a password and the Django user is made.

Lockout is a small DB-backed counter per phone number (``SignInThrottle``)
rather than django-axes: axes hooks every ``authenticate()`` in the project
(admin, API token) and keys on username + IP, while this flow also has to count
wrong one-time codes and must answer the same for unrostered numbers. Wrong
passwords and wrong codes share the counter; a success resets it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
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

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


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

    Answers the same whether or not the number is rostered; at most one code per
    MEMBER_LOGIN_SMS_RESEND_S per member. Sending goes through the SMS backend
    of ``dispatch.notify`` after the code is committed.
    """
    phone = phone_normalize(phone)
    member = Member.objects.select_related("unit").filter(phone=phone).first()
    if member is None or not member.is_active or not member.unit.is_active:
        return
    recent = timezone.now() - dt.timedelta(seconds=settings.MEMBER_LOGIN_SMS_RESEND_S)
    if MemberLoginCode.objects.filter(
        member=member, channel=MemberLoginCode.Channel.SMS, created_at__gt=recent
    ).exists():
        raise SignInError(
            "code_too_soon",
            _("验证码已发送，请 %(s)d 秒后再试。") % {"s": settings.MEMBER_LOGIN_SMS_RESEND_S},
        )
    issued = member_login_code_issue(member=member, channel=MemberLoginCode.Channel.SMS)
    text = _("【应急单元】您的登录验证码：%(code)s，%(m)d 分钟内有效。") % {
        "code": issued.code,
        "m": settings.MEMBER_LOGIN_SMS_CODE_TTL_S // 60,
    }
    transaction.on_commit(lambda: notify.send_text(channel="sms", member=member, text=text))


# --- Lockout ---------------------------------------------------------------------------


def _lock_check(*, phone: str) -> None:
    row = SignInThrottle.objects.filter(phone=phone).first()
    if row and row.locked_until and row.locked_until > timezone.now():
        minutes = max(1, round((row.locked_until - timezone.now()).total_seconds() / 60))
        raise SignInError(
            "locked",
            _("尝试次数过多，该手机号已锁定，请 %(m)d 分钟后再试或联系管理员。") % {"m": minutes},
        )


def _failure_record(*, phone: str) -> int:
    """Count a failure; lock the number when the limit is reached. Returns attempts left.

    Runs in its own transaction: the caller is about to raise, and the count
    must survive that.
    """
    now = timezone.now()
    window = dt.timedelta(seconds=settings.MEMBER_LOGIN_FAILURE_WINDOW_S)
    limit = settings.MEMBER_LOGIN_MAX_FAILURES
    with transaction.atomic():
        row, _created = SignInThrottle.objects.select_for_update().get_or_create(phone=phone)
        # The row lock makes read-modify-write safe against parallel attempts.
        if row.first_failure_at is None or row.first_failure_at < now - window:
            # A fresh window (or the lock ran out): count from one again.
            row.failures, row.first_failure_at, row.locked_until = 0, now, None
        row.failures += 1
        if row.failures >= limit:
            row.locked_until = now + dt.timedelta(seconds=settings.MEMBER_LOGIN_LOCKOUT_S)
        row.save(update_fields=["failures", "first_failure_at", "locked_until"])
    return max(0, limit - row.failures)


def _failure_refuse(*, phone: str, message: str, field: str) -> SignInError:
    left = _failure_record(phone=phone)
    if left == 0:
        return SignInError(
            "locked",
            _("尝试次数过多，该手机号已锁定 %(m)d 分钟。")
            % {"m": settings.MEMBER_LOGIN_LOCKOUT_S // 60},
        )
    return SignInError(
        "bad_credentials", message + " " + _("还可尝试 %(n)d 次。") % {"n": left}, field=field
    )


def _failures_reset(*, phone: str) -> None:
    SignInThrottle.objects.filter(phone=phone).delete()


def _member_may_sign_in(member: Member) -> None:
    if not member.is_active:
        raise SignInError("member_inactive", _("该队员已停用，无法登录。请联系单元负责人。"))
    if not member.unit.is_active:
        raise SignInError(
            "unit_inactive",
            _("你所在的单元“%(u)s”已停用，无法登录接收警情。") % {"u": member.unit.name},
        )


# --- Sign-in ---------------------------------------------------------------------------


def member_sign_in(*, phone: str, password: str):
    """Check a member's phone + password; returns the Django user to log in.

    Raises SignInError: bad phone format, locked, wrong credentials (counted),
    no password yet (first sign-in needs a code), member or unit inactive. The
    inactive checks come after the password, so they tell nothing to a stranger.
    """
    phone = phone_normalize(phone)
    _lock_check(phone=phone)
    member = Member.objects.select_related("unit", "user").filter(phone=phone).first()
    user = member.user if member else None
    if member is not None and (user is None or not user.has_usable_password()):
        raise SignInError(
            "no_password", _("首次登录请先用一次性验证码设置密码。"), field="password"
        )
    if user is None or not password or not user.check_password(password):
        raise _failure_refuse(phone=phone, message=_("手机号或密码错误。"), field="password")
    if not user.is_active:
        raise SignInError("member_inactive", _("该账号已停用，无法登录。"))
    _member_may_sign_in(member)
    _failures_reset(phone=phone)
    return user


def member_activate(*, phone: str, code: str, password: str):
    """First sign-in (or a password reset): a valid one-time code sets the password.

    Creates the Django user for a rostered member without one. The code is
    consumed with a conditional update in the same transaction, so it works once.
    """
    phone = phone_normalize(phone)
    _lock_check(phone=phone)
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
        raise _failure_refuse(phone=phone, message=_("验证码错误或已过期。"), field="code")
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
    _failures_reset(phone=phone)
    return user


# --- The same lockout on the project's other login paths -------------------------------

_MEMBER_USERNAME_RE = re.compile(r"^m(1\d{10})$")


class MemberLockoutBackend(ModelBackend):
    """Refuses a locked member number on every ``authenticate()`` path (admin, the
    API's token and session logins), not only on the phone's sign-in page.

    It checks the lock and then steps aside (returns None) so the next backend,
    ``ModelBackend``, checks the password once; ``get_user`` is ModelBackend's,
    so sessions naming this backend work too.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        match = _MEMBER_USERNAME_RE.match(username or "")
        if match:
            try:
                _lock_check(phone=match.group(1))
            except SignInError as exc:
                raise PermissionDenied(exc.message) from exc
        return None


def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    """A wrong password for a member's username on another path counts too."""
    match = _MEMBER_USERNAME_RE.match(str(credentials.get("username") or ""))
    if match:
        _failure_record(phone=match.group(1))


user_login_failed.connect(_login_failed, dispatch_uid="mobile.auth.login_failed")
