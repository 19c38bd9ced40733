"""The provider gateways' test setup: the fake cloud with every provider's
settings pointed at it, a pair of on-duty members, and helpers."""

from __future__ import annotations

import pytest

from dispatch import notify
from dispatch.gateways import ratelimit
from dispatch.models import Incident, IncidentEvent
from dispatch.services import incident_create
from tests.factories import MemberFactory
from tests.fakes.cloud import (
    ALIYUN_AK,
    ALIYUN_SECRET,
    GOV_APP,
    GOV_SECRET,
    TENCENT_ID,
    TENCENT_KEY,
    FakeCloud,
)

ALIYUN_TOKEN = "aliyun-callback-secret"
TENCENT_TOKEN = "tencent-callback-secret"


@pytest.fixture
def cloud(settings):
    server = FakeCloud().start()
    common = {"protocol": "http", "timeout_s": 1.0, "retries": 2, "backoff_s": 0.05, "qps": 1000}
    aliyun = {**common, "access_key_id": ALIYUN_AK, "access_key_secret": ALIYUN_SECRET}
    tencent = {**common, "secret_id": TENCENT_ID, "secret_key": TENCENT_KEY}
    settings.NOTIFY_GATEWAYS = {
        "aliyun_sms": {
            **aliyun,
            "endpoint": server.endpoint,
            "sign": "应急",
            "template": "SMS_1",
            "text_template": "SMS_2",
        },
        "aliyun_voice": {
            **aliyun,
            "endpoint": server.endpoint,
            "tts_code": "TTS_1",
            "ivr_code": "TTS_2",
            "ivr_key_code": "TTS_3",
            "show_number": "02000000000",
        },
        "tencent_sms": {
            **tencent,
            "endpoint": server.endpoint,
            "app_id": "1400000000",
            "sign": "应急",
            "template": "100",
            "text_template": "101",
        },
        "tencent_voice": {
            **tencent,
            "endpoint": server.endpoint,
            "app_id": "1400",
            "template": "9",
        },
        "govsms": {
            **common,
            "url": f"http://{server.endpoint}",
            "app_id": GOV_APP,
            "secret": GOV_SECRET,
        },
    }
    settings.ALIYUN_CALLBACK_TOKEN = ALIYUN_TOKEN
    settings.TENCENT_CALLBACK_TOKEN = TENCENT_TOKEN
    ratelimit.reset()
    yield server
    server.stop()
    ratelimit.reset()


def _backends(settings, *, sms: str = "aliyun.AliyunSmsBackend", voice: str = "", chain=None):
    settings.NOTIFY_BACKENDS = {
        "push": "dispatch.notify.LocMemBackend",
        "sms": f"dispatch.gateways.{sms}",
        "voice": f"dispatch.gateways.{voice}" if voice else "dispatch.notify.LocMemBackend",
    }
    settings.NOTIFY_CHAIN = chain or [{"channel": "sms", "after_s": 0, "while": "unanswered"}]


@pytest.fixture
def unit_pair(near_member):
    return near_member, MemberFactory(unit=near_member.unit, on_duty=True)


@pytest.fixture
def no_timers(monkeypatch):
    """Chain steps run only when a test calls them: no step timer stands in."""
    monkeypatch.setattr(notify, "_step_schedule", lambda *, wave_id, step: None)


def _raise() -> Incident:
    result = incident_create(kind=Incident.Kind.KNIFE, lat=23.1303, lon=113.3203, source="console")
    assert result.wave is not None
    return result.incident


def _events(incident: Incident, type_: str) -> list[IncidentEvent]:
    return list(IncidentEvent.objects.filter(incident=incident, type=type_))
