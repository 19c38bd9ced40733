"""Hole 4: no debug pages; friendly 404/500 pages in both languages; JSON from the API."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _en(client: Client) -> Client:
    client.cookies["django_language"] = "en"
    return client


def test_an_unknown_page_is_a_friendly_chinese_404_without_the_url_list(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "页面不存在" in page
    assert 'href="/"' in page
    assert "admin/" not in page  # Django's debug 404 lists the URL patterns


def test_the_404_page_speaks_english_when_english_is_chosen(client):
    page = _en(client).get("/no-such-page/").content.decode()

    assert "Page not found" in page
    assert "页面不存在" not in page


@pytest.mark.urls("tests.boom_urls")
def test_a_crash_is_a_friendly_500_without_debug_details():
    client = Client(raise_request_exception=False)

    response = client.get("/boom/")

    assert response.status_code == 500
    page = response.content.decode()
    assert "服务器出错" in page
    assert "boom" not in page
    assert "SECRET_KEY" not in page


@pytest.mark.urls("tests.boom_urls")
def test_the_500_page_speaks_english_when_english_is_chosen():
    client = _en(Client(raise_request_exception=False))

    page = client.get("/boom/").content.decode()

    assert "Server error" in page


def test_an_unknown_api_path_answers_json_404(client):
    response = client.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()


def test_an_unknown_api_object_answers_json_404(admin_client):
    response = admin_client.get("/api/v1/incidents/999999999/")

    assert response.status_code == 404
    assert "detail" in response.json()


@pytest.mark.urls("tests.boom_urls")
def test_an_api_crash_answers_json_500_without_details():
    client = Client(raise_request_exception=False)

    response = client.get("/api/v1/boom/")

    assert response.status_code == 500
    body = response.json()
    assert "detail" in body
    assert "boom" not in response.content.decode()


def test_a_stale_form_is_a_friendly_403_that_says_what_to_do():
    """A form whose CSRF token no longer matches (signed in or out elsewhere) gets
    a page a member understands, not Django's technical CSRF page."""
    client = Client(enforce_csrf_checks=True)
    client.get("/m/login/")  # the cookie and the form's token
    response = client.post("/m/login/", {"phone": "13800000000", "password": "x"})

    assert response.status_code == 403
    page = response.content.decode()
    assert "页面已过期" in page and 'href="/m/login/"' in page
    assert "CSRF" not in page
