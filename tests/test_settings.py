"""Settings read from the environment: safe production mode, SQLite tuning, locale.

Settings are imported once per process, so anything about how the environment
changes them runs ``python -c`` in a subprocess with a clean environment.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper

ROOT = Path(__file__).resolve().parent.parent

DUMP_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": settings.SECRET_KEY,
    "ENGINE": db["ENGINE"],
    "NAME": str(db["NAME"]),
    "OPTIONS": db.get("OPTIONS", {}),
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": settings.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_HSTS_PRELOAD": settings.SECURE_HSTS_PRELOAD,
    "SECURE_PROXY_SSL_HEADER": getattr(settings, "SECURE_PROXY_SSL_HEADER", None),
    "USE_X_FORWARDED_HOST": settings.USE_X_FORWARDED_HOST,
}))
"""


def run_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with only ``env`` (plus PATH) set."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATA_DIR": str(tmp_path),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", DUMP_SETTINGS],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def dumped(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- production mode ----------------------------------------------------------------

GOOD_KEY = "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
PRODUCTION = {"PRODUCTION": "true", "SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "emergency.example.cn"}


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_the_default_run_has_debug_off_and_plain_http(tmp_path):
    """Hole 4: `./dev run` (no environment) must not serve Django's debug pages."""
    values = dumped(run_settings(tmp_path))

    assert values["DEBUG"] is False
    # The embedded run is plain HTTP on localhost: secure-only cookies would break it.
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_SSL_REDIRECT"] is False


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_a_developer_opts_in_to_debug(tmp_path):
    assert dumped(run_settings(tmp_path, DEBUG="true"))["DEBUG"] is True


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    result = run_settings(tmp_path, **{**PRODUCTION, "SECRET_KEY": ""})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_production_refuses_an_insecure_secret_key(tmp_path):
    for key in ("django-insecure-abc", "x" * 50):
        result = run_settings(tmp_path, **{**PRODUCTION, "SECRET_KEY": key})

        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_production_refuses_debug(tmp_path):
    result = run_settings(tmp_path, **PRODUCTION, DEBUG="true")

    assert result.returncode != 0
    assert "DEBUG" in result.stderr


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_production_refuses_the_default_host_list(tmp_path):
    result = run_settings(tmp_path, **{k: v for k, v in PRODUCTION.items() if k != "ALLOWED_HOSTS"})

    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_production_refuses_plain_http(tmp_path):
    for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        result = run_settings(tmp_path, **PRODUCTION, **{name: "false"})
        assert result.returncode != 0, name
    assert run_settings(tmp_path, **PRODUCTION, SECURE_HSTS_SECONDS="0").returncode != 0


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_production_starts_with_https_hsts_and_secure_cookies(tmp_path):
    values = dumped(run_settings(tmp_path, **PRODUCTION))

    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_hsts_is_set_from_the_environment(tmp_path):
    values = dumped(
        run_settings(
            tmp_path,
            **PRODUCTION,
            SECURE_HSTS_SECONDS="600",
            SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
            SECURE_HSTS_PRELOAD="true",
        )
    )

    assert values["SECURE_HSTS_SECONDS"] == 600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert values["SECURE_HSTS_PRELOAD"] is True


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_forwarded_headers_are_trusted_only_behind_declared_proxies(tmp_path):
    plain = dumped(run_settings(tmp_path, USE_X_FORWARDED_HOST="true"))
    assert plain["SECURE_PROXY_SSL_HEADER"] is None
    assert plain["USE_X_FORWARDED_HOST"] is False

    proxied = dumped(run_settings(tmp_path, TRUSTED_PROXY_COUNT="1", USE_X_FORWARDED_HOST="true"))
    assert proxied["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert proxied["USE_X_FORWARDED_HOST"] is True


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_development_keeps_one_generated_secret_key_readable_only_by_its_owner(tmp_path):
    first = dumped(run_settings(tmp_path))["SECRET_KEY"]
    second = dumped(run_settings(tmp_path))["SECRET_KEY"]

    assert first == second
    assert len(first) >= 50
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600


# --- database -----------------------------------------------------------------------


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_default_database_is_sqlite_in_the_data_dir_with_wal_and_immediate_writes(tmp_path):
    values = dumped(run_settings(tmp_path))

    assert values["ENGINE"] == "django.db.backends.sqlite3"
    assert values["NAME"] == str(tmp_path / "db.sqlite3")
    assert "journal_mode=WAL" in values["OPTIONS"]["init_command"]
    assert values["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert values["OPTIONS"]["timeout"] >= 5


@pytest.mark.database_independent  # a fresh interpreter, its own environment
def test_database_url_selects_postgresql_without_sqlite_options(tmp_path):
    values = dumped(run_settings(tmp_path, DATABASE_URL="postgres://u:p@127.0.0.1:5432/emergency"))

    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert "init_command" not in values["OPTIONS"]


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3",
    reason="the SQLite options only apply when the default database is SQLite",
)
def test_sqlite_connections_open_in_wal_mode(tmp_path, django_db_blocker):
    """The test database is in memory (pytest-django's default for SQLite), where
    journal_mode can only ever be "memory"; so open a file database with exactly
    the configured settings and ask it."""
    settings_dict = {**connection.settings_dict, "NAME": str(tmp_path / "wal.sqlite3")}
    wrapper = SQLiteDatabaseWrapper(settings_dict, alias="wal_check")
    try:
        with django_db_blocker.unblock(), wrapper.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 1  # NORMAL
        assert wrapper.transaction_mode == "IMMEDIATE"
    finally:
        wrapper.close()


@pytest.mark.django_db
@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3",
    reason="the SQLite options only apply when the default database is SQLite",
)
def test_test_database_connection_runs_the_configured_init_command():
    """The connection the tests use runs the configured PRAGMAs. journal_mode
    cannot show it on the in-memory test database (always "memory" there), so
    synchronous does: NORMAL (1) comes only from init_command, SQLite's default
    is FULL (2)."""
    assert "synchronous=NORMAL" in connection.settings_dict["OPTIONS"]["init_command"]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
    assert synchronous == 1
    # "memory" for the in-memory test database (WAL is impossible there), "wal"
    # when the test database is a file.
    assert mode == ("memory" if connection.is_in_memory_db() else "wal")


# --- locale -------------------------------------------------------------------------


def test_language_time_zone_and_aware_datetimes():
    assert settings.LANGUAGE_CODE == "zh-hans"
    assert settings.TIME_ZONE == "Asia/Shanghai"
    assert settings.USE_TZ is True
    assert settings.USE_I18N is True


def test_celery_uses_the_same_time_zone_and_json_only():
    assert settings.CELERY_TIMEZONE == settings.TIME_ZONE
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_SERIALIZER == "json"


# --- dispatch -----------------------------------------------------------------------


def test_the_default_policy_escalates_at_the_1_3_5_targets():
    """One definition: the compliance targets are the default tiers' deadlines."""
    tiers = settings.ESCALATION_POLICIES["default"]["tiers"]
    first_by_step = {}
    for tier in tiers:
        first_by_step.setdefault(tier["unless"], tier["after_s"])
    targets = settings.RESPONSE_TARGETS_S

    assert first_by_step["responded_at"] == targets["responded"] == 60
    assert first_by_step["controlled_at"] == targets["controlled"] == 180
    assert first_by_step["handled_at"] == targets["handled"] == 300
