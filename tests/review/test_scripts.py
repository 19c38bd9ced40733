"""The review pages' scripts: ES modules in static/review reading json_script
data, no inline script (a strict Content-Security-Policy forbids them), and
every user-facing string in them translated through the JavaScript catalogue."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings

from .conftest import dispatch_to, past_incident

pytestmark = pytest.mark.django_db

SCRIPTS = Path(settings.BASE_DIR) / "static" / "review"
RANGE = "since=2024-05-01&until=2024-05-31"
# A <script> tag without a src attribute holds code inline; json_script's
# <script type="application/json"> holds data, which a CSP allows.
INLINE = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>")


def _pages(tianhe, tianhe_street, tianhe_unit):
    incident = past_incident(region=tianhe_street, response_s=30)
    dispatch_to(incident, tianhe_unit, accepted_s=30, on_site_s=120)
    return {
        f"/review/report/?{RANGE}": "review/report-charts.js",
        f"/review/incidents/{incident.pk}/": "review/incident-map.js",
        f"/review/map/?{RANGE}": "review/coverage-map.js",
        "/review/warning/": "review/warning-map.js",
        f"/review/index/district/{tianhe.pk}/": "review/index-trend.js",
        f"/review/incidents/?{RANGE}": None,
        "/review/drills/": None,
    }


def test_review_pages_hold_no_inline_script_and_load_their_module(
    client, city_reviewer, tianhe, tianhe_street, tianhe_unit
):
    client.force_login(city_reviewer)
    for url, module in _pages(tianhe, tianhe_street, tianhe_unit).items():
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert not INLINE.search(page), (url, INLINE.search(page))
        assert '<script src="/review/jsi18n/">' in page, url
        if module:
            assert f'<script type="module" src="/static/{module}">' in page, url


def _js_strings() -> set[str]:
    found: set[str] = set()
    for path in SCRIPTS.glob("*.js"):
        found |= set(re.findall(r'gettext\("((?:[^"\\]|\\.)*)"\)', path.read_text("utf-8")))
    return found


def test_every_string_of_the_review_scripts_has_its_english(client):
    strings = _js_strings()
    assert "现场" in strings and "综合得分" in strings
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    catalog = client.get("/review/jsi18n/").content.decode()
    # The catalogue is JSON inside the script: non-ASCII comes \u-escaped.
    entries = dict(re.findall(r'^\s*("(?:[^"\\]|\\.)*"): "(.+)",?$', catalog, re.M))
    english = {json.loads(key): value for key, value in entries.items()}
    for text in strings:
        assert english.get(text), f"no English for {text!r}"
    assert english["现场"] == "Scene"
