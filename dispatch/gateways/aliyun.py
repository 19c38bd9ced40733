"""Alibaba Cloud SMS (Dysmsapi 2017-05-25) and voice notification (Dyvmsapi 2017-05-25).

Sending uses the official SDKs (``alibabacloud-dysmsapi20170525``,
``alibabacloud-dyvmsapi20170525``), which sign each request with Alibaba Cloud's
V3 signature (``ACS3-HMAC-SHA256``). ``ALIYUN_ENDPOINT_SMS`` / ``ALIYUN_ENDPOINT_VOICE``
and ``ALIYUN_PROTOCOL`` point them elsewhere (the tests' local server).

- SMS: ``SendSms`` for one number, ``SendBatchSms`` (up to 100 numbers, one
  BizId for the call) for more; template code, sign name and template
  parameters from settings (``ALIYUN_SMS_TEMPLATE``, ``ALIYUN_SMS_SIGN``). The
  template is expected to take ``kind``, ``place``, ``distance`` and ``incident``
  (e.g. "【${kind}】${place}，距你约${distance}米，回复1接受2拒绝，警情${incident}").
- Voice: ``SingleCallByTts`` (one callee a call) with ``ALIYUN_VOICE_TTS_CODE``,
  a notification that cannot take an answer; or, with ``AliyunIvrBackend``,
  ``IvrCall`` (interactive voice): the start template ``ALIYUN_VOICE_IVR_CODE``
  reads the alert and the menu "按1接受，按2拒绝", and ``MenuKeyMap`` maps keys 1
  and 2 to ``ALIYUN_VOICE_IVR_KEY_CODE``, read back to confirm the choice.

Callbacks (``dispatch.hooks``) follow the documented "HTTP批量推送" (HTTP batch push)
form of the receipt configuration, not the MNS queue form: Alibaba POSTs a JSON
array - ``SmsReport`` (phone_number, success, err_code, biz_id, out_id ...),
``SmsUp`` (phone_number, content, sign_name, send_time ...), ``VoiceReport``
(call_id, status_code, duration, out_id ...) and, for calls that collect keys,
for IvrCall, the key press: in real time as ``VoiceCallReport`` (status_code
300000 with ``dtmf``; it names the call and echoes OutId, the member, not the
number), and again in the call's ``VoiceReport`` (``dtmf``). That documentation
defines no signature on the push, so the callback URL configured in the console carries our secret
(``ALIYUN_CALLBACK_TOKEN``), and a receipt is only applied when its id and
number match a message we sent.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client as SmsClient
from alibabacloud_dyvmsapi20170525 import models as vms_models
from alibabacloud_dyvmsapi20170525.client import Client as VmsClient
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.runtime import RuntimeOptions
from django.utils.translation import gettext as _

from ..notify import Notification, SendResult
from .base import GatewayBackend, TransientError, require

log = logging.getLogger(__name__)

# Business codes that say "not now" rather than "never": flow control.
_BUSY_CODES = {"isv.BUSINESS_LIMIT_CONTROL", "Throttling", "Throttling.User", "ServiceUnavailable"}


def template_params(note: Notification) -> dict[str, str]:
    if note.incident_id is None:  # a plain text (an answer, a login code): the text template
        return {"text": note.text[:60]}
    data = note.payload or {}
    return {
        "kind": str(data.get("kind_label", "")),
        "place": str(data.get("place", ""))[:35],
        "distance": str(data.get("distance_m", "")),
        "incident": str(note.incident_id or ""),
    }


def _config(conf: dict[str, Any], endpoint: str) -> Config:
    return Config(
        access_key_id=conf["access_key_id"],
        access_key_secret=conf["access_key_secret"],
        endpoint=endpoint,
        protocol=conf.get("protocol", "https"),
        connect_timeout=int(float(conf.get("timeout_s", 5)) * 1000),
        read_timeout=int(float(conf.get("timeout_s", 5)) * 1000),
    )


_clients: dict[tuple, Any] = {}


def _client(cls, conf: dict[str, Any]) -> Any:
    """One SDK client per class and settings, kept: making one costs tens of
    milliseconds, and a failed SMS must reach the voice call within a second."""
    key = (
        cls,
        conf["endpoint"],
        conf["access_key_id"],
        conf.get("protocol"),
        conf.get("timeout_s"),
    )
    if key not in _clients:
        _clients[key] = cls(_config(conf, conf["endpoint"]))
    return _clients[key]


def _call(fn, request) -> Any:
    """Run one SDK call; sort its failures into transient and final."""
    try:
        return fn(request, RuntimeOptions())
    except ClientException as exc:  # 4xx: our request is wrong, a retry will not help
        if exc.code in _BUSY_CODES or getattr(exc, "status_code", 0) == 429:
            raise TransientError(f"{exc.code}: {exc.message}") from exc
        raise
    except Exception as exc:  # 5xx, throttling, timeout, connection refused
        raise TransientError(f"{type(exc).__name__}: {exc}"[:200]) from exc


def _final_error(exc: ClientException, size: int) -> list[SendResult]:
    return [SendResult(ok=False, detail=str(exc.message)[:200], error_code=str(exc.code))] * size


class AliyunSmsBackend(GatewayBackend):
    provider = "aliyun_sms"
    batch_size = 100  # SendBatchSms takes up to 100 numbers a call

    def batch_key(self, note: Notification) -> Any:
        return note.incident_id is None  # alerts and plain texts use different templates

    def _template(self, note: Notification) -> str:
        if note.incident_id is None:
            return self.conf.get("text_template") or self.conf["template"]
        return self.conf["template"]

    def __init__(self) -> None:
        super().__init__()
        require(self.conf, "aliyun", "access_key_id", "access_key_secret")
        require(self.conf, "aliyun_sms", "sign", "template")
        self.client = _client(SmsClient, self.conf)

    def _call(self, notes: list[Notification]) -> list[SendResult]:
        try:
            if len(notes) == 1:
                note = notes[0]
                body = _call(
                    self.client.send_sms_with_options,
                    sms_models.SendSmsRequest(
                        phone_numbers=note.phone,
                        sign_name=self.conf["sign"],
                        template_code=self._template(note),
                        template_param=json.dumps(template_params(note), ensure_ascii=False),
                        out_id=str(note.member_id),
                    ),
                ).body
            else:
                body = _call(
                    self.client.send_batch_sms_with_options,
                    sms_models.SendBatchSmsRequest(
                        phone_number_json=json.dumps([n.phone for n in notes]),
                        sign_name_json=json.dumps([self.conf["sign"]] * len(notes)),
                        template_code=self._template(notes[0]),
                        template_param_json=json.dumps(
                            [template_params(n) for n in notes], ensure_ascii=False
                        ),
                    ),
                ).body
        except ClientException as exc:
            return _final_error(exc, len(notes))
        if body.code in _BUSY_CODES:
            raise TransientError(f"{body.code}: {body.message}")
        if body.code != "OK":
            return [SendResult(ok=False, detail=body.message or "", error_code=body.code)] * len(
                notes
            )
        # One BizId for the whole call: receipts name it with each phone number.
        return [SendResult(ok=True, detail="aliyun", provider_ref=body.biz_id or "")] * len(notes)


class AliyunVoiceBackend(GatewayBackend):
    provider = "aliyun_voice"
    batch_size = 1  # SingleCallByTts: one callee a call

    def __init__(self) -> None:
        super().__init__()
        require(self.conf, "aliyun", "access_key_id", "access_key_secret")
        require(self.conf, "aliyun_voice", "tts_code")
        self.client = _client(VmsClient, self.conf)

    def _call(self, notes: list[Notification]) -> list[SendResult]:
        note = notes[0]
        try:
            body = _call(
                self.client.single_call_by_tts_with_options,
                vms_models.SingleCallByTtsRequest(
                    called_number=note.phone,
                    called_show_number=self.conf.get("show_number") or None,
                    tts_code=self.conf["tts_code"],
                    tts_param=json.dumps(template_params(note), ensure_ascii=False),
                    play_times=2,
                    out_id=str(note.member_id),
                ),
            ).body
        except ClientException as exc:
            return _final_error(exc, 1)
        return _call_answered(body)


def _call_answered(body) -> list[SendResult]:
    """A voice call's answer (SingleCallByTts, IvrCall): busy is retried, any other
    code is the member's failure, OK names the call for its reports."""
    if body.code in _BUSY_CODES:
        raise TransientError(f"{body.code}: {body.message}")
    if body.code != "OK":
        return [SendResult(ok=False, detail=body.message or "", error_code=body.code)]
    return [SendResult(ok=True, detail="aliyun", provider_ref=body.call_id or "")]


class AliyunIvrBackend(AliyunVoiceBackend):
    """An alert call that takes the answer: IvrCall, keys 1 (accept) and 2 (decline).

    The press comes back through ``dispatch.hooks`` (VoiceCallReport) into the
    same ``sms_reply_handle`` / ``dispatch_act`` as a text reply or a tap."""

    # Milliseconds the call waits for a key after the menu (Timeout).
    key_timeout_ms = 10_000

    def __init__(self) -> None:
        GatewayBackend.__init__(self)
        # IvrCall, unlike SingleCallByTts, needs the caller number (one bought
        # for interactive calls): without it every call would be refused.
        require(self.conf, "aliyun", "access_key_id", "access_key_secret")
        require(self.conf, "aliyun_voice", "ivr_code", "show_number")
        self.client = _client(VmsClient, self.conf)
        # Built here, in the caller's thread: calls run in worker threads, where
        # the caller's active language is not.
        code = self.conf.get("ivr_key_code") or self.conf["ivr_code"]
        self.menu = [
            {"key": key, "code": code, "tts_params": json.dumps({"choice": c}, ensure_ascii=False)}
            for key, c in (("1", _("接受")), ("2", _("拒绝")))
        ]

    def _call(self, notes: list[Notification]) -> list[SendResult]:
        note = notes[0]
        try:
            body = _call(
                self.client.ivr_call_with_options,
                vms_models.IvrCallRequest(
                    called_number=note.phone,
                    called_show_number=self.conf["show_number"],
                    start_code=self.conf["ivr_code"],
                    start_tts_params=json.dumps(template_params(note), ensure_ascii=False),
                    menu_key_map=[
                        vms_models.IvrCallRequestMenuKeyMap(**item) for item in self.menu
                    ],
                    play_times=2,
                    timeout=self.key_timeout_ms,
                    # Echoed back in VoiceCallReport, which names no number.
                    out_id=str(note.member_id),
                ),
            ).body
        except ClientException as exc:
            return _final_error(exc, 1)
        return _call_answered(body)
