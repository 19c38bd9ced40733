"""The member's phone pages (/m/): thin edges over ``mobile.auth`` and the
``mobile`` services and selectors. The page itself talks to /ws/member/."""

from __future__ import annotations

import hashlib
import json
from functools import cache, wraps
from pathlib import Path

from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import get_template, render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dispatch import replies
from dispatch.inputs import JSONRefused, json_loads
from dispatch.models import Incident
from dispatch.selectors import member_for_user
from dispatch.services import ActionRefused
from dispatch.socket_pass import socket_pass_clear, socket_pass_give

from . import alert_test
from . import auth as member_auth
from . import selectors as mobile_selectors
from . import services as mobile_services
from .auth import SignInError
from .webpush import application_server_key

_AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"


# --- Sign-in / sign-out ----------------------------------------------------------------


@never_cache
@ensure_csrf_cookie
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if request.method == "GET" and member_for_user(user=request.user) is not None:
        return redirect("member:app")
    form = request.POST.get("form", "password")
    if form not in {"password", "activate", "send_code"}:
        form = "password"
    ctx = {
        "mode": "activate" if form in {"activate", "send_code"} else "password",
        "phone": request.POST.get("phone", "").strip()[:20],
        "error": None,
        "error_field": None,
        "notice": _("已退出登录。") if request.GET.get("signed_out") else None,
    }
    if request.GET.get("first"):
        ctx["mode"] = "activate"
    status = 200
    if request.method == "POST":
        try:
            if form == "send_code":
                member_auth.member_login_code_send(phone=ctx["phone"])
                ctx["notice"] = _("如该号码已登记，验证码已通过短信发送。")
            else:
                ip = _client_ip(request)
                if form == "password":
                    user = member_auth.member_sign_in(
                        phone=ctx["phone"], password=request.POST.get("password", ""), ip=ip
                    )
                else:
                    user = member_auth.member_activate(
                        phone=ctx["phone"],
                        code=request.POST.get("code", ""),
                        password=request.POST.get("password", ""),
                        ip=ip,
                    )
                login(request, user, backend=_AUTH_BACKEND)
                response = redirect("member:app")
                member = member_for_user(user=user)
                if member is not None:
                    # The phone's socket handshake then costs one query.
                    socket_pass_give(request, response, member=member)
                return response
        except SignInError as exc:
            ctx["error"], ctx["error_field"] = exc.message, exc.field
            if exc.code == "throttled":
                response = render(request, "member/sign_in.html", ctx, status=429)
                response["Retry-After"] = str(exc.retry_after)
                return response
            status = 400
    return render(request, "member/sign_in.html", ctx, status=status)


def _client_ip(request: HttpRequest) -> str | None:
    # The staff logins' rule (django-axes uses the same callable): the socket
    # peer, or the address our declared proxies saw. Named by a setting because
    # it lives in config, above this app.
    return import_string(settings.AXES_CLIENT_IP_CALLABLE)(request)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    member = member_for_user(user=request.user)
    if member is not None:
        mobile_services.member_sign_out(member=member, session_key=request.session.session_key)
    logout(request)
    response = redirect(reverse("member:sign-in") + "?signed_out=1")
    socket_pass_clear(response)
    return response


# --- The app shell ---------------------------------------------------------------------


def _strings() -> dict[str, str]:
    """Every user-facing string of the page's scripts (static/member/js/), translated
    here (one place for gettext)."""
    return {
        "online": _("在线"),
        "connecting": _("连接中…"),
        "offline": _("离线"),
        "signed_out": _("已在别处退出登录"),
        "on_duty": _("在岗"),
        "off_duty": _("不在岗"),
        "clock_in": _("上岗打卡"),
        "clock_out": _("下岗打卡"),
        "duty_since": _("上岗时间"),
        "duty_off_note": _("不在岗时不会收到警情。"),
        "enable_sound": _("点此启用警报声音与锁屏提醒"),
        "sound_on": _("警报声音已开启"),
        "accept": _("接受"),
        "decline": _("拒绝"),
        "on_site": _("已到场管控"),
        "handled": _("处置完毕"),
        "navigate": _("导航到现场"),
        "sending": _("发送中…"),
        "queued": _("已离线排队，联网后发送"),
        "confirmed": _("服务器已确认"),
        "distance": _("距离"),
        "eta": _("预计步行"),
        "minutes": _("分钟"),
        "meters": _("米"),
        "km": _("公里"),
        "bearing_from_phone": _("方向（以手机位置，正北向上）"),
        "bearing_from_unit": _("方向（以单元位置，正北向上）"),
        "responders": _("已响应"),
        "me_suffix": _("(我)"),
        "nobody_yet": _("暂无人接受"),
        "status_alerted": _("待响应"),
        "status_accepted": _("已接受"),
        "status_declined": _("已拒绝"),
        "status_on_site": _("已到场"),
        "status_handled": _("已处置"),
        "status_stood_down": _("已解除待命"),
        "incident_closed": _("警情已结束"),
        "later": _("稍后"),
        "close": _("关闭"),
        "alerts": _("警情"),
        "unit": _("单元"),
        "history": _("记录"),
        "no_alerts": _("暂无警情"),
        "last_alerts": _("最近警情"),
        "kit": _("装备"),
        "kit_complete": _("装备齐全"),
        "kit_missing": _("装备不全"),
        "teammates": _("单元队员"),
        "report": _("一键报警"),
        "report_title": _("一键报警：选择类型"),
        "report_note": _("补充说明（可选）"),
        "report_send": _("立即报警"),
        "report_sent": _("已报警，附近单元已通知"),
        "report_here": _("位置：手机当前位置"),
        "report_at_unit": _("未取得手机位置，将按单元位置报警"),
        "cancel": _("取消"),
        "sign_out": _("退出登录"),
        "offline_note": _("当前离线：显示的是上次保存的警情，操作将在联网后发送。"),
        "replayed": _("重连后补收"),
        "error": _("出错了"),
        "location_sharing": _("正在共享位置"),
        "alert_title": _("警情"),
        "wave": _("批次"),
        "language": _("English"),
        "test_alert": _("测试提醒"),
        "test_alert_hint": _(
            "发起后请锁屏等待：将依次通过页面、推送、短信、语音电话提醒你，每项都标明“测试”。不会通知其他人，也不计入任何统计。"
        ),
        "test_alert_title": _("【测试提醒】这不是真实警情"),
        "test_alert_started": _("测试已开始"),
        "test_alert_stop": _("停止测试"),
        "test_alert_stopped": _("测试已停止"),
        "test_after": _("秒后"),
        "test_status_sent": _("已送出"),
        "test_status_failed": _("失败"),
        "test_status_skipped": _("无可用渠道"),
        "test_status_pending": _("等待中"),
        "test_status_sending": _("发送中…"),
        "test_status_stopped": _("已停止"),
        "reach_title": _("最近送达渠道"),
        "reach_never": _("尚无记录"),
        "reach_test": _("测试"),
    }


@cache
def _shell_version() -> str:
    """Changes whenever a file of the offline shell changes: a new service worker."""
    digest = hashlib.sha256()
    for name in _SHELL_STATIC:
        path = finders.find(name)
        if path:
            digest.update(Path(path).read_bytes())
    for name in ("member/app.html", "member/base.html", "member/sw.js"):
        digest.update(Path(get_template(name).origin.name).read_bytes())
    return digest.hexdigest()[:12]


# The page's ES modules, one concern each (static/member/js/): all in the offline shell.
_MEMBER_MODULES = [
    "actions",
    "alert",
    "alerttest",
    "config",
    "duty",
    "events",
    "main",
    "position",
    "push",
    "report",
    "socket",
    "sound",
    "store",
    "util",
]
_SHELL_STATIC = [
    *(f"member/js/{name}.js" for name in _MEMBER_MODULES),
    "member/gcj02.js",
    "member/app.css",
    "member/icon.svg",
    "member/icon-192.png",
    "member/icon-512.png",
    "vendor/leaflet/leaflet.js",
    "vendor/leaflet/leaflet.css",
]


def _member_or_none(request):
    return member_for_user(user=request.user)


@never_cache
@require_GET
def app(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        # No CSRF cookie on this redirect: the sign-in page sets its own, and a
        # second one minted here (by a service worker's fetch, say) would
        # overwrite it and void the form on screen.
        return redirect("member:sign-in")
    get_token(request)  # the page's fetches send it back (ensure_csrf_cookie's effect)
    member = _member_or_none(request)
    if member is None:
        return render(request, "member/not_member.html", status=403)
    config = {
        "wsPath": "/ws/member/",
        # The phone takes the server for dead after two silent heartbeats.
        "heartbeatS": settings.WS_HEARTBEAT_S,
        "apiBase": reverse("member:app"),
        "reportUrl": "/api/v1/incidents/report/",
        "swUrl": reverse("member:sw"),
        "signInUrl": reverse("member:sign-in"),
        "tileUrl": settings.MAP_TILE_URL,
        "tileAttribution": settings.MAP_TILE_ATTRIBUTION,
        "tileCrs": settings.MAP_TILE_CRS,
        "walkSpeed": settings.RANKING_WALK_SPEED_MPS,
        "detour": settings.RANKING_DETOUR_FACTOR,
        "vapidKey": _vapid_key_or_empty(),
        "kinds": [{"value": v, "label": str(lbl)} for v, lbl in Incident.Kind.choices],
        "severities": [{"value": v, "label": str(lbl)} for v, lbl in Incident.Severity.choices],
        "language": get_language(),
    }
    response = render(
        request, "member/app.html", {"config": config, "strings": _strings(), "member": member}
    )
    # A phone signed in before socket passes existed gets one here.
    socket_pass_give(request, response, member=member)
    return response


def _vapid_key_or_empty() -> str:
    try:
        return application_server_key()
    except OSError:  # a read-only data dir: the app still works, without Web Push
        return ""


@require_GET
def manifest(request: HttpRequest) -> HttpResponse:
    body = {
        "name": _("最小应急处置单元 · 队员"),
        "short_name": _("应急队员"),
        "lang": get_language(),
        "start_url": reverse("member:app"),
        "scope": reverse("member:app"),
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#111827",
        "theme_color": "#b91c1c",
        "icons": [
            {"src": static("member/icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": static("member/icon-512.png"), "sizes": "512x512", "type": "image/png"},
            {"src": static("member/icon.svg"), "sizes": "any", "type": "image/svg+xml"},
        ],
    }
    return HttpResponse(
        json.dumps(body, ensure_ascii=False), content_type="application/manifest+json"
    )


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    body = render_to_string(
        "member/sw.js",
        {
            "version": _shell_version(),
            "shell_url": reverse("member:app"),
            "static_urls": json.dumps([static(n) for n in _SHELL_STATIC]),
        },
    )
    response = HttpResponse(body, content_type="text/javascript")
    # Served from /m/ so its scope covers the app; never cached, so updates land.
    response["Service-Worker-Allowed"] = reverse("member:app")
    response["Cache-Control"] = "no-cache"
    return response


# --- JSON endpoints for the page ---------------------------------------------------------


def member_json(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"detail": _("请先登录。")}, status=401)
        member = _member_or_none(request)
        if member is None:
            return JsonResponse({"detail": _("只有队员可以使用。")}, status=403)
        return view(request, member, *args, **kwargs)

    return never_cache(wrapper)


def _json_body(request) -> dict:
    try:
        body = json_loads(request.body or b"{}")
    except JSONRefused as exc:
        raise ValidationError({"body": _("请求须为 JSON。") + " " + str(exc)}) from exc
    if not isinstance(body, dict):
        raise ValidationError({"body": _("请求须为 JSON 对象。")})
    return body


def _errors(exc: ValidationError) -> JsonResponse:
    errors = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
    return JsonResponse({"errors": errors}, status=400)


@require_GET
@member_json
def api_me(request, member) -> JsonResponse:
    return JsonResponse(mobile_selectors.member_overview(member=member))


@require_POST
@member_json
def api_duty(request, member) -> JsonResponse:
    try:
        body = _json_body(request)
        on_duty = body.get("on_duty")
        if not isinstance(on_duty, bool):
            raise ValidationError({"on_duty": _("须为 true 或 false。")})
        mobile_services.member_clock(
            member=member,
            on_duty=on_duty,
            lat=body.get("lat"),
            lon=body.get("lon"),
            accuracy_m=body.get("accuracy"),
        )
    except ValidationError as exc:
        return _errors(exc)
    return JsonResponse(mobile_selectors.member_overview(member=member))


@require_GET
@member_json
def api_alerts(request, member) -> JsonResponse:
    return JsonResponse({"results": mobile_selectors.member_alert_history(member=member)})


@require_GET
@member_json
def api_incident(request, member, incident_id: int) -> JsonResponse:
    try:
        return JsonResponse(
            mobile_selectors.member_incident(member=member, incident_id=incident_id)
        )
    except ActionRefused as exc:
        return JsonResponse({"code": exc.code, "detail": exc.message}, status=404)


@require_http_methods(["POST", "DELETE"])
@member_json
def api_push(request, member) -> JsonResponse:
    try:
        body = _json_body(request)
        endpoint = body.get("endpoint")
        if request.method == "DELETE":
            deleted = mobile_services.push_subscription_delete(member=member, endpoint=endpoint)
            return JsonResponse({"deleted": deleted})
        keys = body.get("keys") if isinstance(body.get("keys"), dict) else {}
        sub = mobile_services.push_subscription_save(
            member=member,
            endpoint=endpoint,
            p256dh=keys.get("p256dh"),
            auth=keys.get("auth"),
            session_key=request.session.session_key or "",
            user_agent=request.headers.get("User-Agent", ""),
        )
    except ValidationError as exc:
        return _errors(exc)
    return JsonResponse({"id": sub.pk}, status=201)


# --- "Test my alert" (mobile/alert_test.py) ------------------------------------------------


@require_POST
@member_json
def api_alert_test(request, member) -> JsonResponse:
    """Start a test of the member's own chain; 429 with Retry-After when too soon."""
    try:
        test = alert_test.alert_test_start(member=member)
    except alert_test.AlertTestRefused as exc:
        response = JsonResponse({"code": "too_soon", "detail": exc.message}, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    return JsonResponse(alert_test.alert_test_status(test=test), status=201)


@require_http_methods(["GET", "POST"])
@member_json
def api_alert_test_one(request, member, test_id: int) -> JsonResponse:
    """GET: which channels the test tried. POST ``{"event": "received"|"stop"}``:
    the page got the test frame, or the member stops the test."""
    test = member.alert_tests.filter(pk=test_id).first()
    if test is None:
        return JsonResponse({"detail": _("没有该测试。")}, status=404)
    if request.method == "POST":
        try:
            event = _json_body(request).get("event")
        except ValidationError as exc:
            return _errors(exc)
        if event == "received":
            alert_test.alert_test_app_received(member=member, test_id=test.pk)
        elif event == "stop":
            alert_test.alert_test_stop(member=member, test_id=test.pk)
        else:
            return JsonResponse({"errors": {"event": [_("须为 received 或 stop。")]}}, status=400)
        test.refresh_from_db()
    return JsonResponse(alert_test.alert_test_status(test=test))


# --- SMS gateway webhook -----------------------------------------------------------------


@csrf_exempt
@require_POST
def sms_reply(request: HttpRequest) -> JsonResponse:
    """The SMS gateway posts a member's reply: token-authenticated, no session."""
    expected = settings.SMS_WEBHOOK_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not expected or not constant_time_compare(given, expected):
        return JsonResponse({"detail": _("令牌无效。")}, status=403)
    try:
        body = _json_body(request) if request.content_type == "application/json" else request.POST
    except ValidationError as exc:
        return _errors(exc)
    phone, text = body.get("phone"), body.get("text")
    if not isinstance(phone, str) or not isinstance(text, str) or len(text) > 200:
        return JsonResponse(
            {"errors": {"phone": _("须提供 phone 与 text（不超过 200 字）。")}}, status=400
        )
    reply = replies.sms_reply_handle(phone=phone, text=text)
    return JsonResponse(
        {
            "ok": reply.ok,
            "reply": reply.text,
            "incident_id": reply.incident_id,
            "action": reply.action,
        }
    )
