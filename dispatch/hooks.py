"""Provider callbacks: delivery receipts, SMS replies (uplink) and call key presses.

Mounted at ``/hooks/`` (config/urls.py). No session, no CSRF (the providers post
from their servers); each request is authenticated before anything is read
into the database, and refused with 403 otherwise:

- Alibaba Cloud (HTTP batch push of SmsReport / SmsUp / VoiceReport) and Tencent
  Cloud (SMS status and reply callbacks, voice callbacks) document no signature
  on these pushes; the URL configured in their consoles carries our secret,
  ``/hooks/aliyun/<ALIYUN_CALLBACK_TOKEN>/...`` and
  ``/hooks/tencent/<TENCENT_CALLBACK_TOKEN>/...``, compared in constant time.
  Serve them over HTTPS only. A receipt or key press must also name a message or
  call of ours to that number (``notify.attempt_for``), so a leaked URL alone
  cannot mark anyone reached or answer for them.
- The government SMS platform signs every request (HMAC-SHA256 over timestamp,
  nonce and body, ``dispatch.gateways.govsms``); a replayed nonce is refused.

Replies go through ``dispatch.replies`` (the same ``dispatch_act`` as a tap on
the phone); receipts through ``notify.receipt_record``. The answer to a reply
is texted back after commit.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from units.models import Member

from . import notify, replies
from .gateways import govsms, ratelimit

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
MAX_ITEMS = 1000


class BadPayload(ValueError):
    pass


def _json(request: HttpRequest) -> Any:
    if len(request.body) > MAX_BODY:
        raise BadPayload("body too large")
    try:
        return json.loads(request.body or b"null")
    except ValueError as exc:
        raise BadPayload("not JSON") from exc


def _items(data: Any) -> list[dict[str, Any]]:
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_ITEMS or not all(isinstance(i, dict) for i in items):
        raise BadPayload("expected a JSON object or an array of objects")
    return items


def _text(item: dict[str, Any], *names: str) -> str:
    for name in names:
        value = item.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)[:200]
    return ""


def _token_ok(given: str, expected: str) -> bool:
    return bool(expected) and constant_time_compare(given, expected)


def _refused() -> JsonResponse:
    return JsonResponse({"detail": "forbidden"}, status=403)


def _bad(exc: Exception) -> JsonResponse:
    return JsonResponse({"errors": {"body": str(exc)}}, status=400)


def _reply(*, phone: str, text: str) -> replies.SmsReply:
    reply = replies.sms_reply_handle(phone=phone, text=text)
    _answer(phone=phone, reply=reply)
    return reply


def _answer(*, phone: str, reply: replies.SmsReply) -> None:
    if not phone or not replies.answer_allowed(phone=phone, reply=reply):
        return
    # Imported here: tasks imports services, which import this app's models only
    # once the registry is ready; urls load before (a startup cost, not a cycle).
    from .tasks import sms_answer_send

    transaction.on_commit(lambda: _enqueue(sms_answer_send, phone, reply.text))


def _keypress(*, call_id: str, phone: str, keys: str, answer_refusal: bool = True) -> None:
    reply = replies.keypress_handle(provider_ref=call_id, phone=phone, keys=keys)
    if reply.ok or answer_refusal:
        _answer(phone=phone, reply=reply)


def _member_phone(member_id: str) -> str:
    if not member_id.isdigit():
        return ""
    return Member.objects.filter(pk=int(member_id)).values_list("phone", flat=True).first() or ""


def _enqueue(task, *args) -> None:
    try:
        task.delay(*args)
    except Exception:  # the reply acted; only its answer SMS is lost
        log.exception("could not enqueue %s", task.name)


def _token_items(request: HttpRequest, token: str, expected: str) -> list | JsonResponse:
    """The callback's items if its URL token is ours and its body parses;
    otherwise the refusal (403) or the field error (400) to answer with."""
    if not _token_ok(token, expected):
        return _refused()
    try:
        return _items(_json(request))
    except BadPayload as exc:
        return _bad(exc)


# --- Alibaba Cloud ---------------------------------------------------------------------


def _aliyun_ok() -> JsonResponse:
    return JsonResponse({"code": 0, "msg": "接收成功"})


def _aliyun(kind: str):
    @csrf_exempt
    @require_POST
    def view(request: HttpRequest, token: str) -> JsonResponse:
        items = _token_items(request, token, settings.ALIYUN_CALLBACK_TOKEN)
        if isinstance(items, JsonResponse):
            return items
        for item in items:
            phone = _text(item, "phone_number", "callee", "called_number")
            if kind == "sms-report":
                notify.receipt_record(
                    notify.Receipt(
                        channel="sms",
                        provider_ref=_text(item, "biz_id"),
                        phone=phone,
                        reached=item.get("success") is True,
                        error_code=_text(item, "err_code"),
                    )
                )
            elif kind == "sms-up":
                _reply(phone=phone, text=_text(item, "content"))
            elif kind == "voice-report":
                # The call record, after the call: answered or not, and (for an
                # IvrCall) the keys pressed, which VoiceCallReport usually brought
                # already; dispatch_act refuses the second, so it acts once.
                call_id = _text(item, "call_id")
                keys = _text(item, "dtmf", "digits")
                if keys:
                    # A repeat of the real-time press is refused quietly: no SMS
                    # telling the member their own answer was "already given".
                    _keypress(call_id=call_id, phone=phone, keys=keys, answer_refusal=False)
                duration = _text(item, "duration")
                answered = (duration.isdigit() and int(duration) > 0) or _text(
                    item, "status_code"
                ) == "200000"
                notify.receipt_record(
                    notify.Receipt(
                        channel="voice",
                        provider_ref=call_id,
                        phone=phone,
                        reached=answered,
                        answered=answered,
                        error_code="" if answered else _text(item, "status_code"),
                    )
                )
            elif kind == "voice-call-report":
                # Status changes during a call; 300000 is a key press on an IvrCall
                # (dtmf). The message names the call and echoes our OutId (the
                # member), not the number: the number comes from the member, and
                # attempt_for still requires that call to have gone to it.
                keys = _text(item, "dtmf")
                if _text(item, "status_code") == "300000" and keys:
                    phone = _member_phone(_text(item, "out_id"))
                    _keypress(call_id=_text(item, "call_id"), phone=phone, keys=keys)
        return _aliyun_ok()

    view.__name__ = f"aliyun_{kind.replace('-', '_')}"
    return view


# --- Tencent Cloud ---------------------------------------------------------------------


def _tencent_ok() -> JsonResponse:
    return JsonResponse({"result": 0, "errmsg": "OK"})


@csrf_exempt
@require_POST
def tencent_sms_report(request: HttpRequest, token: str) -> JsonResponse:
    items = _token_items(request, token, settings.TENCENT_CALLBACK_TOKEN)
    if isinstance(items, JsonResponse):
        return items
    for item in items:
        notify.receipt_record(
            notify.Receipt(
                channel="sms",
                provider_ref=_text(item, "sid"),
                phone=_text(item, "mobile"),
                reached=item.get("report_status") == "SUCCESS",
                error_code=_text(item, "errmsg"),
            )
        )
    return _tencent_ok()


@csrf_exempt
@require_POST
def tencent_sms_reply(request: HttpRequest, token: str) -> JsonResponse:
    items = _token_items(request, token, settings.TENCENT_CALLBACK_TOKEN)
    if isinstance(items, JsonResponse):
        return items
    for item in items:
        _reply(phone=_text(item, "mobile"), text=_text(item, "text"))
    return _tencent_ok()


@csrf_exempt
@require_POST
def tencent_voice(request: HttpRequest, token: str) -> JsonResponse:
    if not _token_ok(token, settings.TENCENT_CALLBACK_TOKEN):
        return _refused()
    try:
        data = _json(request)
        if not isinstance(data, dict):
            raise BadPayload("expected a JSON object")
    except BadPayload as exc:
        return _bad(exc)
    key = data.get("voicekey_callback")
    prompt = data.get("voiceprompt_callback")
    if isinstance(key, dict):
        phone = _text(key, "mobile")
        reply = replies.keypress_handle(
            provider_ref=_text(key, "callid"), phone=phone, keys=_text(key, "keypress")
        )
        _answer(phone=phone, reply=reply)
    elif isinstance(prompt, dict):
        # status (result in older callbacks): 0 answered, 1 not answered, 2 call failed
        status = _text(prompt, "status", "result")
        answered = status == "0"
        notify.receipt_record(
            notify.Receipt(
                channel="voice",
                provider_ref=_text(prompt, "callid"),
                phone=_text(prompt, "mobile"),
                reached=answered,
                answered=answered,
                error_code="" if answered else f"status {status}",
            )
        )
    else:
        return _bad(BadPayload("expected voicekey_callback or voiceprompt_callback"))
    return _tencent_ok()


# --- The government SMS platform -------------------------------------------------------


@csrf_exempt
@require_POST
def govsms_callback(request: HttpRequest) -> JsonResponse:
    conf = settings.NOTIFY_GATEWAYS.get("govsms", {})
    if len(request.body) > MAX_BODY:
        return _bad(BadPayload("body too large"))
    nonce = govsms.verify(secret=conf.get("secret", ""), headers=request.headers, body=request.body)
    if nonce is None or not _token_ok(request.headers.get("X-App-Id", ""), conf.get("app_id", "")):
        return _refused()
    if not ratelimit.once(f"govsms-nonce:{nonce}", ttl_s=2 * govsms.MAX_SKEW_S):
        return _refused()  # a replay of a request we took
    try:
        data = _json(request)
        if not isinstance(data, dict):
            raise BadPayload("expected a JSON object")
        if data.get("type") == "report":
            for item in _items(data.get("reports")):
                notify.receipt_record(
                    notify.Receipt(
                        channel="sms",
                        provider_ref=_text(item, "msg_id"),
                        phone=_text(item, "phone"),
                        reached=item.get("status") == "DELIVERED",
                        error_code=_text(item, "error_code"),
                    )
                )
        elif data.get("type") == "reply":
            _reply(phone=_text(data, "phone"), text=_text(data, "text"))
        else:
            raise BadPayload("type must be report or reply")
    except BadPayload as exc:
        return _bad(exc)
    return JsonResponse({"code": 0})


urlpatterns = [
    path("aliyun/<str:token>/sms-report/", _aliyun("sms-report"), name="hook-aliyun-sms-report"),
    path("aliyun/<str:token>/sms-up/", _aliyun("sms-up"), name="hook-aliyun-sms-up"),
    path("aliyun/<str:token>/voice-report/", _aliyun("voice-report"), name="hook-aliyun-voice"),
    path(
        "aliyun/<str:token>/voice-call-report/",
        _aliyun("voice-call-report"),
        name="hook-aliyun-voice-call",
    ),
    path("tencent/<str:token>/sms-report/", tencent_sms_report, name="hook-tencent-sms-report"),
    path("tencent/<str:token>/sms-reply/", tencent_sms_reply, name="hook-tencent-sms-reply"),
    path("tencent/<str:token>/voice/", tencent_voice, name="hook-tencent-voice"),
    path("govsms/", govsms_callback, name="hook-govsms"),
]
