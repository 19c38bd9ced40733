"""Tencent Cloud SMS (sms 2021-01-11) and voice messages (VMS, vms 2020-09-02).

Sending uses the official SDKs (``tencentcloud-sdk-python-sms``,
``tencentcloud-sdk-python-vms``), which sign each request with TC3-HMAC-SHA256.
``TENCENT_ENDPOINT_SMS`` / ``TENCENT_ENDPOINT_VOICE`` and ``TENCENT_PROTOCOL``
point them elsewhere (the tests' local server).

- SMS: ``SendSms`` takes up to 200 numbers a call and answers one
  ``SendStatus`` (SerialNo, Code) per number; ``TENCENT_SMS_APP_ID``,
  ``TENCENT_SMS_SIGN``, ``TENCENT_SMS_TEMPLATE`` (template parameters in order:
  kind, place, distance, incident).
- Voice: ``SendTtsVoice`` (one callee a call, CallId back) with
  ``TENCENT_VOICE_APP_ID`` and ``TENCENT_VOICE_TEMPLATE``.

Callbacks (``dispatch.hooks``) follow Tencent's documented SMS callbacks
(状态回执: a JSON array of ``report_status``/``errmsg``/``sid``/``mobile``;
短信回复: ``mobile``/``text``/``sign``/``time``) and voice callbacks
(``voiceprompt_callback`` with ``result`` 0 answered, 1 unanswered, 2 failed;
``voicekey_callback`` with ``keypress``). Those callbacks carry no signature,
so the callback URL set in the console carries our secret
(``TENCENT_CALLBACK_TOKEN``), and a receipt only applies to a message we sent
to that number.
"""

from __future__ import annotations

from typing import Any

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models as sms_models
from tencentcloud.sms.v20210111.sms_client import SmsClient
from tencentcloud.vms.v20200902 import models as vms_models
from tencentcloud.vms.v20200902.vms_client import VmsClient

from ..notify import Notification, SendResult
from .aliyun import template_params
from .base import GatewayBackend, TransientError, require

_TRANSIENT_PREFIXES = (
    "ServerNetworkError",
    "ClientNetworkError",
    "InternalError",
    "RequestLimitExceeded",
    "LimitExceeded",
)


def _transient(code: str) -> bool:
    return code.startswith(_TRANSIENT_PREFIXES)


def _profile(conf: dict[str, Any], endpoint: str) -> ClientProfile:
    http = HttpProfile(
        protocol=conf.get("protocol", "https"),
        endpoint=endpoint,
        reqTimeout=int(float(conf.get("timeout_s", 5))),
    )
    return ClientProfile(httpProfile=http)


_clients: dict[tuple, Any] = {}


def _client(cls, conf: dict[str, Any]) -> Any:
    """One SDK client per class and settings, kept (see aliyun._client)."""
    key = (cls, conf["endpoint"], conf["secret_id"], conf.get("protocol"), conf.get("timeout_s"))
    if key not in _clients:
        cred = credential.Credential(conf["secret_id"], conf["secret_key"])
        _clients[key] = cls(
            cred, conf.get("region", "ap-guangzhou"), _profile(conf, conf["endpoint"])
        )
    return _clients[key]


def _e164(phone: str) -> str:
    return phone if phone.startswith("+") else f"+86{phone}"


def _params(note: Notification) -> list[str]:
    p = template_params(note)
    if note.incident_id is None:
        return [p["text"]]
    return [p["kind"], p["place"], p["distance"], p["incident"]]


def _run(fn, request) -> Any:
    try:
        return fn(request)
    except TencentCloudSDKException as exc:
        if _transient(str(exc.code or "")):
            raise TransientError(f"{exc.code}: {str(exc.message)[:150]}") from exc
        raise
    except Exception as exc:  # the SDK wraps most; anything else is the network
        raise TransientError(f"{type(exc).__name__}: {exc}"[:200]) from exc


class TencentSmsBackend(GatewayBackend):
    provider = "tencent_sms"
    batch_size = 200  # SendSms: up to 200 numbers a call

    def batch_key(self, note: Notification) -> Any:
        return tuple(_params(note))

    def __init__(self) -> None:
        super().__init__()
        require(self.conf, "tencent", "secret_id", "secret_key")
        require(self.conf, "tencent_sms", "app_id", "sign", "template")
        self.client = _client(SmsClient, self.conf)

    def _call(self, notes: list[Notification]) -> list[SendResult]:
        req = sms_models.SendSmsRequest()
        req.PhoneNumberSet = [_e164(n.phone) for n in notes]
        req.SmsSdkAppId = self.conf["app_id"]
        req.SignName = self.conf["sign"]
        req.TemplateId = (
            self.conf.get("text_template") or self.conf["template"]
            if notes[0].incident_id is None
            else self.conf["template"]
        )
        # One set of template parameters a call: ``batch_key`` groups the notes so.
        req.TemplateParamSet = _params(notes[0])
        try:
            resp = _run(self.client.SendSms, req)
        except TencentCloudSDKException as exc:
            return [SendResult(ok=False, detail=str(exc.message)[:200], error_code=exc.code)] * len(
                notes
            )
        by_phone = {s.PhoneNumber: s for s in resp.SendStatusSet or []}
        results = []
        for note in notes:
            status = by_phone.get(_e164(note.phone))
            if status is None:
                results.append(SendResult(ok=False, detail="no status", error_code="missing"))
            elif status.Code == "Ok":
                results.append(SendResult(ok=True, detail="tencent", provider_ref=status.SerialNo))
            else:
                results.append(
                    SendResult(ok=False, detail=status.Message or "", error_code=status.Code)
                )
        return results


class TencentVoiceBackend(GatewayBackend):
    provider = "tencent_voice"
    batch_size = 1

    def __init__(self) -> None:
        super().__init__()
        require(self.conf, "tencent", "secret_id", "secret_key")
        require(self.conf, "tencent_voice", "app_id", "template")
        self.client = _client(VmsClient, self.conf)

    def _call(self, notes: list[Notification]) -> list[SendResult]:
        note = notes[0]
        req = vms_models.SendTtsVoiceRequest()
        req.TemplateId = self.conf["template"]
        req.TemplateParamSet = _params(note)
        req.CalledNumber = _e164(note.phone)
        req.VoiceSdkAppid = self.conf["app_id"]
        req.PlayTimes = 2
        req.SessionContext = str(note.member_id)
        try:
            resp = _run(self.client.SendTtsVoice, req)
        except TencentCloudSDKException as exc:
            return [SendResult(ok=False, detail=str(exc.message)[:200], error_code=exc.code)]
        return [SendResult(ok=True, detail="tencent", provider_ref=resp.SendStatus.CallId)]
