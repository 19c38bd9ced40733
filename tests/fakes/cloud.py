"""A local stand-in for Alibaba Cloud, Tencent Cloud and a government SMS platform.

The real SDKs talk to it (their endpoint settings point here). It checks each
request's signature the way the provider documents it - Alibaba Cloud's V3
``ACS3-HMAC-SHA256`` (canonical request over method, path, sorted query,
the signed headers and the body's SHA-256), Tencent Cloud's ``TC3-HMAC-SHA256``
(key derived from date, service and ``tc3_request``), the government platform's
HMAC over timestamp, nonce and body - and answers in the documented success and
error formats. It records when each call arrived (for rate checks) and can be
told to answer 5xx or to time out.

It also plays the provider's side of the callbacks: ``AppHooks`` POSTs the
documented receipts, SMS uplinks and key presses over HTTP to a running app
(pytest-django's ``live_server``, or the bench's server), to the URLs we
register in the providers' consoles. Alibaba Cloud and Tencent Cloud document
no signature on these pushes, so they go to the URL carrying our secret token,
as registered; the government platform signs each one (HMAC-SHA256 over
timestamp, nonce and body).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from dispatch.gateways import govsms

ALIYUN_AK = "LTAI5tFakeKeyForTests01"
ALIYUN_SECRET = "FakeSecretForTheLocalServer0123456789"
TENCENT_ID = "AKIDFakeSecretIdForTheLocalServer0123"
TENCENT_KEY = "FakeSecretKeyForTheLocalServer01234567"
GOV_APP = "gov-test-app"
GOV_SECRET = "gov-test-secret-0123456789"


@dataclass
class Arrival:
    at: float  # time.monotonic() when the request arrived
    provider: str
    action: str
    phones: list[str]
    ref: str = ""
    out_id: str = ""  # echoed back in Alibaba's voice callbacks, as documented
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Behaviour:
    fail_5xx: int = 0  # answer the next N calls with HTTP 503
    timeout: int = 0  # hang on the next N calls past the client's timeout
    hang_s: float = 3.0
    refuse_phones: set[str] = field(default_factory=set)  # per-number refusal
    # Called with (message id, phones) after a send is accepted and before it is
    # answered: a receipt sent from here outruns the send, as a quick one can.
    before_answer: Callable[[str, list[str]], None] | None = None


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def aliyun_signature_ok(method: str, path: str, query: str, headers, body: bytes) -> bool:
    auth = headers.get("Authorization", "")
    if not auth.startswith("ACS3-HMAC-SHA256 "):
        return False
    parts = dict(p.split("=", 1) for p in auth[len("ACS3-HMAC-SHA256 ") :].split(","))
    if parts.get("Credential") != ALIYUN_AK:
        return False
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-acs-content-sha256") != payload_hash:
        return False
    signed = parts.get("SignedHeaders", "").split(";")
    if not {"host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce"} <= set(signed):
        return False
    params = dict(parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(f"{k}={quote(params[k], safe='~')}" for k in sorted(params))
    canonical_headers = "".join(f"{h}:{(headers.get(h) or '').strip()}\n" for h in signed)
    canonical = "\n".join(
        [method, path or "/", canonical_query, canonical_headers, ";".join(signed), payload_hash]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(ALIYUN_SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("Signature", ""))


def tencent_signature_ok(headers, body: bytes) -> bool:
    auth = headers.get("Authorization", "")
    if not auth.startswith("TC3-HMAC-SHA256 "):
        return False
    parts = dict(p.strip().split("=", 1) for p in auth[len("TC3-HMAC-SHA256 ") :].split(","))
    secret_id, date, service, scope_end = parts.get("Credential", "///").split("/")
    timestamp = headers.get("X-TC-Timestamp", "0")
    if secret_id != TENCENT_ID or scope_end != "tc3_request" or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > 300:
        return False
    if datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d") != date:
        return False
    canonical = (
        f"POST\n/\n\ncontent-type:{headers.get('Content-Type')}\nhost:{headers.get('Host')}\n\n"
        f"content-type;host\n{hashlib.sha256(body).hexdigest()}"
    )
    to_sign = (
        f"TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n"
        + hashlib.sha256(canonical.encode()).hexdigest()
    )
    key = _hmac(_hmac(_hmac(("TC3" + TENCENT_KEY).encode(), date), service), "tc3_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("Signature", ""))


class FakeCloud:
    """Start with ``start()``, stop with ``stop()``; ``endpoint`` is host:port."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.rejected: list[str] = []
        self.behaviour = Behaviour()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeCloud:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):010d}"

    def calls(self, provider: str, action: str | None = None) -> list[Arrival]:
        return [a for a in self.arrivals if a.provider == provider and action in (None, a.action)]

    # --- the wire ------------------------------------------------------------------

    def _handler(self):
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlsplit(self.path)
                if self.headers.get("x-acs-action"):
                    provider = "aliyun"
                elif self.headers.get("X-TC-Action"):
                    provider = "tencent"
                else:
                    provider = "govsms"
                with cloud._lock:
                    if cloud.behaviour.timeout:
                        cloud.behaviour.timeout -= 1
                        hang = True
                    else:
                        hang = False
                    if not hang and cloud.behaviour.fail_5xx:
                        cloud.behaviour.fail_5xx -= 1
                        fail = True
                    else:
                        fail = False
                if hang:
                    time.sleep(cloud.behaviour.hang_s)
                    return
                if provider == "aliyun":
                    self._aliyun(arrived, url, body, fail)
                elif provider == "tencent":
                    self._tencent(arrived, body, fail)
                else:
                    self._gov(arrived, body, fail)

            # Alibaba Cloud: RPC style, parameters in the query and the form body.
            def _aliyun(self, arrived: float, url, body: bytes, fail: bool) -> None:
                action = self.headers.get("x-acs-action", "")
                if not aliyun_signature_ok("POST", url.path, url.query, self.headers, body):
                    cloud.rejected.append(action)
                    return self._send(
                        400,
                        {
                            "RequestId": "fake",
                            "Code": "SignatureDoesNotMatch",
                            "Message": "Specified signature does not match our calculation.",
                        },
                    )
                if fail:
                    return self._send(
                        503,
                        {"RequestId": "fake", "Code": "ServiceUnavailable", "Message": "busy"},
                    )
                params = dict(parse_qsl(url.query))
                params.update(parse_qsl(body.decode()))
                if action == "IvrCall" and not (
                    params.get("StartCode")
                    and params.get("CalledShowNumber")
                    and params.get("MenuKeyMap.1.Key")
                ):
                    return self._send(
                        400,
                        {
                            "RequestId": "fake",
                            "Code": "MissingParameter",
                            "Message": "StartCode, CalledShowNumber and MenuKeyMap are mandatory.",
                        },
                    )
                if action == "SendSms":
                    phones = params["PhoneNumbers"].split(",")
                elif action == "SendBatchSms":
                    phones = json.loads(params["PhoneNumberJson"])
                elif action in ("SingleCallByTts", "IvrCall"):
                    phones = [params["CalledNumber"]]
                else:
                    return self._send(404, {"Code": "InvalidAction.NotFound", "Message": action})
                if set(phones) & cloud.behaviour.refuse_phones:
                    return self._send(
                        200,
                        {
                            "RequestId": "fake",
                            "Code": "isv.MOBILE_NUMBER_ILLEGAL",
                            "Message": "invalid number",
                        },
                    )
                is_call = action in ("SingleCallByTts", "IvrCall")
                ref = cloud.next_id("call-" if is_call else "biz-")
                cloud.arrivals.append(
                    Arrival(arrived, "aliyun", action, phones, ref, params.get("OutId", ""), params)
                )
                key = "CallId" if is_call else "BizId"
                if cloud.behaviour.before_answer:
                    cloud.behaviour.before_answer(ref, phones)
                self._send(200, {"RequestId": "fake", "Code": "OK", "Message": "OK", key: ref})

            # Tencent Cloud: JSON body, action in X-TC-Action.
            def _tencent(self, arrived: float, body: bytes, fail: bool) -> None:
                action = self.headers.get("X-TC-Action", "")
                if not tencent_signature_ok(self.headers, body):
                    cloud.rejected.append(action)
                    return self._send(
                        200,
                        {
                            "Response": {
                                "Error": {
                                    "Code": "AuthFailure.SignatureFailure",
                                    "Message": "The provided credentials could not be validated.",
                                },
                                "RequestId": "fake",
                            }
                        },
                    )
                if fail:
                    return self._send(503, {"message": "busy"})
                params = json.loads(body)
                if action == "SendSms":
                    phones = params["PhoneNumberSet"]
                    statuses = []
                    for phone in phones:
                        if phone.removeprefix("+86") in cloud.behaviour.refuse_phones:
                            statuses.append(
                                {
                                    "PhoneNumber": phone,
                                    "SerialNo": "",
                                    "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                                    "Message": "bad number",
                                }  # noqa: E501
                            )
                        else:
                            statuses.append(
                                {
                                    "PhoneNumber": phone,
                                    "SerialNo": cloud.next_id("sid-"),
                                    "Code": "Ok",
                                    "Message": "send success",
                                    "Fee": 1,
                                }  # noqa: E501
                            )
                    cloud.arrivals.append(Arrival(arrived, "tencent", action, phones))
                    return self._send(
                        200, {"Response": {"SendStatusSet": statuses, "RequestId": "fake"}}
                    )
                if action == "SendTtsVoice":
                    ref = cloud.next_id("callid-")
                    cloud.arrivals.append(
                        Arrival(arrived, "tencent", action, [params["CalledNumber"]], ref)
                    )
                    return self._send(
                        200,
                        {
                            "Response": {
                                "SendStatus": {"CallId": ref, "SessionContext": ""},
                                "RequestId": "fake",
                            }
                        },
                    )
                self._send(
                    200,
                    {
                        "Response": {
                            "Error": {"Code": "InvalidAction", "Message": action},
                            "RequestId": "fake",
                        }
                    },
                )  # noqa: E501

            def _gov(self, arrived: float, body: bytes, fail: bool) -> None:
                if govsms.verify(secret=GOV_SECRET, headers=self.headers, body=body) is None:
                    cloud.rejected.append("send")
                    return self._send(403, {"code": 403, "msg": "bad signature"})
                if fail:
                    return self._send(503, {"code": 503, "msg": "busy"})
                messages = json.loads(body)["messages"]
                results = [
                    {"id": m["id"], "msg_id": cloud.next_id("gov-"), "code": 0} for m in messages
                ]
                cloud.arrivals.append(
                    Arrival(arrived, "govsms", "send", [m["phone"] for m in messages])
                )
                self._send(200, {"code": 0, "results": results})

        return Handler

    # --- callbacks, as documented ------------------------------------------------------

    @staticmethod
    def aliyun_sms_report(*, phone: str, biz_id: str, success: bool, err_code: str = "DELIVERED"):
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        return [
            {
                "phone_number": phone,
                "send_time": now,
                "report_time": now,
                "success": success,
                "err_code": err_code,
                "err_msg": "用户接收成功" if success else "失败",
                "sms_size": "1",
                "biz_id": biz_id,
                "out_id": "",
            }
        ]

    @staticmethod
    def aliyun_sms_up(*, phone: str, content: str):
        return [
            {
                "phone_number": phone,
                "send_time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "content": content,
                "sign_name": "应急",
                "dest_code": "",
                "sequence_id": 1,
            }
        ]

    @staticmethod
    def tencent_sms_report(*, phone: str, sid: str, success: bool, errmsg: str = "DELIVRD"):
        return [
            {
                "user_receive_time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "nationcode": "86",
                "mobile": phone,
                "report_status": "SUCCESS" if success else "FAIL",
                "errmsg": errmsg,
                "description": "",
                "sid": sid,
            }
        ]

    @staticmethod
    def tencent_sms_reply(*, phone: str, text: str):
        return {
            "extend": "",
            "mobile": phone,
            "nationcode": "86",
            "sign": "应急",
            "text": text,
            "time": int(time.time()),
        }  # noqa: E501

    @staticmethod
    def tencent_voice_key(*, phone: str, callid: str, key: str):
        return {
            "voicekey_callback": {
                "call_from": "",
                "callid": callid,
                "keypress": key,
                "mobile": phone,
                "nationcode": "86",
            }
        }

    @staticmethod
    def tencent_voice_prompt(*, phone: str, callid: str, status: str):
        return {
            "voiceprompt_callback": {
                "callid": callid,
                "mobile": phone,
                "nationcode": "86",
                "call_from": "",
                "status": status,
            }
        }

    @staticmethod
    def gov_signed(body: dict[str, Any], secret: str = GOV_SECRET) -> tuple[bytes, dict[str, str]]:
        data = json.dumps(body, ensure_ascii=False).encode()
        return data, govsms.signed_headers(app_id=GOV_APP, secret=secret, body=data)

    @staticmethod
    def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Send a callback to a running app (the bench; tests use the test client)."""
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


@dataclass(frozen=True)
class AppHooks:
    """The providers' side of the callbacks: each method POSTs one documented
    callback over HTTP to a running app and returns the HTTP status.

    ``base_url`` is the app (``live_server.url``); the tokens and the government
    platform's key are what was registered with each provider. ``forged(...)``
    gives a sender with other credentials (someone who guessed the URL).
    """

    cloud: FakeCloud
    base_url: str
    aliyun_token: str
    tencent_token: str
    gov_app: str = GOV_APP
    gov_secret: str = GOV_SECRET

    def forged(self, **changes: str) -> AppHooks:
        return replace(self, **changes)

    def _json(self, path: str, body: Any) -> int:
        data = json.dumps(body, ensure_ascii=False).encode()
        return self.cloud.post(
            self.base_url.rstrip("/") + path, data, {"Content-Type": "application/json"}
        )[0]

    def _gov(self, body: dict[str, Any]) -> int:
        data, headers = FakeCloud.gov_signed(body, self.gov_secret)
        headers = {**headers, "X-App-Id": self.gov_app, "Content-Type": "application/json"}
        return self.cloud.post(self.base_url.rstrip("/") + "/hooks/govsms/", data, headers)[0]

    # --- SMS -----------------------------------------------------------------------

    def sms_report(self, provider: str, *, phone: str, ref: str, delivered: bool, code="") -> int:
        """A delivery receipt for the message ``ref`` (Alibaba's BizId, Tencent's
        SerialNo / sid, the government platform's msg_id) to ``phone``."""
        if provider == "aliyun":
            body = FakeCloud.aliyun_sms_report(
                phone=phone, biz_id=ref, success=delivered, err_code=code or "DELIVERED"
            )
            return self._json(f"/hooks/aliyun/{self.aliyun_token}/sms-report/", body)
        if provider == "tencent":
            body = FakeCloud.tencent_sms_report(
                phone=phone, sid=ref, success=delivered, errmsg=code or "DELIVRD"
            )
            return self._json(f"/hooks/tencent/{self.tencent_token}/sms-report/", body)
        return self._gov(
            {
                "type": "report",
                "reports": [
                    {
                        "msg_id": ref,
                        "phone": phone,
                        "status": "DELIVERED" if delivered else "FAILED",
                        "error_code": code,
                    }
                ],
            }
        )

    def sms_reply(self, provider: str, *, phone: str, text: str) -> int:
        """The member texts back (the provider's uplink callback)."""
        if provider == "aliyun":
            body = FakeCloud.aliyun_sms_up(phone=phone, content=text)
            return self._json(f"/hooks/aliyun/{self.aliyun_token}/sms-up/", body)
        if provider == "tencent":
            body = FakeCloud.tencent_sms_reply(phone=phone, text=text)
            return self._json(f"/hooks/tencent/{self.tencent_token}/sms-reply/", body)
        return self._gov({"type": "reply", "phone": phone, "text": text})

    # --- voice ---------------------------------------------------------------------

    def voice_key(self, provider: str, *, phone: str, call_id: str, key: str) -> int:
        """The member presses ``key`` during the call ``call_id``.

        Alibaba's IvrCall reports it in real time as a VoiceCallReport with
        status_code 300000 and the dtmf; that message names the call and echoes
        the OutId we sent, but not the number. Tencent sends voicekey_callback."""
        if provider == "aliyun":
            (call,) = [a for a in self.cloud.calls("aliyun") if a.ref == call_id] or [None]
            body = [
                {
                    "call_id": call_id,
                    "status_code": "300000",
                    "dtmf": key,
                    "status_time": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "out_id": call.out_id if call else "",
                }
            ]
            return self._json(f"/hooks/aliyun/{self.aliyun_token}/voice-call-report/", body)
        body = FakeCloud.tencent_voice_key(phone=phone, callid=call_id, key=key)
        return self._json(f"/hooks/tencent/{self.tencent_token}/voice/", body)

    def voice_report(
        self, provider: str, *, phone: str, call_id: str, answered: bool, dtmf: str = ""
    ) -> int:
        """The call's end: answered or not (Alibaba's VoiceReport, which also
        carries the keys pressed on an IVR call; Tencent's voiceprompt_callback)."""
        if provider == "aliyun":
            (call,) = [a for a in self.cloud.calls("aliyun") if a.ref == call_id] or [None]
            now = time.strftime("%Y-%m-%d %H:%M:%S")
            body = [
                {
                    "status_code": "200000" if answered else "200005",
                    "callee": phone,
                    "caller": "057100000000",
                    "duration": "12" if answered else "0",
                    "voice_type": "voice",
                    "originate_time": now,
                    "b_start_time": now if answered else "",
                    "end_time": now,
                    "call_id": call_id,
                    "status_msg": "执行完成" if answered else "用户未接听",
                    "out_id": call.out_id if call else "",
                    "dtmf": dtmf,
                    "toll_type": "LOCAL",
                }
            ]
            return self._json(f"/hooks/aliyun/{self.aliyun_token}/voice-report/", body)
        body = FakeCloud.tencent_voice_prompt(
            phone=phone, callid=call_id, status="0" if answered else "1"
        )
        return self._json(f"/hooks/tencent/{self.tencent_token}/voice/", body)
