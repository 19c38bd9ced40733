"""The board page: who may open it, the home page's link, the area it shows."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.factories import MemberFactory, UnitFactory, UserFactory

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_police_station_opens_the_board_in_chinese_with_no_inline_script(officer):
    response = _client(officer).get("/board/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "指挥看板" in html
    assert "<script>" not in html  # every script is a file (strict CSP)
    assert "{#" not in html and "#}" not in html  # no template comment shown as text
    assert 'type="module" src="/static/board/main.js"' in html
    config = json.loads(html.split('id="board-config" type="application/json">')[1].split("<")[0])
    assert config["mayCommand"] is True and config["tileUrl"] == ""
    # Escalation banners name tiers as people do, not as settings do.
    assert config["tierLabels"]["street_10min"] == "10 分钟街镇力量"


def test_the_home_page_links_the_board_for_stations_not_for_reviewers(officer, reviewer):
    assert "/board/" in _client(officer).get("/").content.decode()
    assert "/board/" not in _client(reviewer).get("/").content.decode()


def test_members_and_strangers_do_not_get_the_board(near_member):
    assert Client().get("/board/").status_code == 302  # to sign-in
    near_member.user = UserFactory()
    near_member.save()
    assert _client(near_member.user).get("/board/").status_code == 403
    assert _client(near_member.user).get("/board/api/map/").status_code == 403


def test_the_map_shows_the_officers_area_only(officer, tianhe_street, haizhu_street):
    mine = UnitFactory(region=tianhe_street, lat=23.13, lon=113.32)
    UnitFactory(region=haizhu_street, lat=23.09, lon=113.33)
    MemberFactory(unit=mine)
    body = _client(officer).get("/board/api/map/").json()
    assert [row[0] for row in body["units"]] == [mine.pk]
    assert [s[0] for s in body["streets"]] in ([], [tianhe_street.code])
