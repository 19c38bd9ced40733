"""Hole 8: a strict Content-Security-Policy, and pages that work under it."""

from __future__ import annotations

import re

import pytest

from config.csp import tile_sources

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def _directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def _no_inline_script(page: str) -> None:
    # json_script blocks are data, not code: the CSP does not run them.
    code = [m for m in INLINE_SCRIPT.findall(page) if "application/json" not in m]
    assert code == []
    assert INLINE_HANDLER.findall(page) == []


def test_every_page_carries_an_enforced_csp_without_inline_scripts(client):
    response = client.get("/")

    assert "Content-Security-Policy-Report-Only" not in response
    csp = _directives(response)
    assert csp["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp["script-src"]
    assert "'unsafe-eval'" not in csp["script-src"]
    assert csp["object-src"] == ["'none'"]
    assert csp["default-src"] == ["'self'"]


def test_the_home_page_renders_without_inline_script_or_handler(client):
    response = client.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    _no_inline_script(page)
    assert "site/language.js" in page


def test_the_error_pages_carry_the_csp_too(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert _directives(response)["script-src"] == ["'self'"]
    _no_inline_script(response.content.decode())


def test_the_api_docs_load_their_script_from_a_file(admin_client):
    response = admin_client.get("/api/v1/schema/swagger/")

    assert response.status_code == 200
    _no_inline_script(response.content.decode())


def test_the_admin_pages_this_project_adds_render_without_inline_script(admin_client):
    for url in ("/admin/", "/admin/units/importjob/add/", "/admin/axes/accessattempt/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        _no_inline_script(response.content.decode())


def test_the_import_job_page_polls_from_a_module(admin_client, tianhe_street):
    from units.models import ImportJob

    job = ImportJob.objects.create(
        filename="r.csv", dry_run=True, status=ImportJob.Status.RUNNING, data=b""
    )

    response = admin_client.get(f"/admin/units/importjob/{job.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    _no_inline_script(page)
    assert "site/import_job.js" in page
    assert 'data-phase-check="检查中"' in page


def test_map_tiles_are_allowed_from_their_server_only():
    assert tile_sources("") == []
    assert tile_sources("https://t{s}.tianditu.gov.cn/{z}/{x}/{y}.png") == [
        "https://*.tianditu.gov.cn"
    ]
    assert tile_sources("https://tiles.example.cn:8443/{z}/{x}/{y}.png") == [
        "https://tiles.example.cn:8443"
    ]
