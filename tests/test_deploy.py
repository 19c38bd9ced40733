"""Hole 8: `manage.py check --deploy` is clean with the documented production settings.

The settings are read from the ```env block of docs/deployment.md, so the
document and the check cannot drift apart.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def documented_production_env() -> dict[str, str]:
    text = (ROOT / "docs" / "deployment.md").read_text()
    block = re.search(r"```env\n(.*?)```", text, re.DOTALL)
    assert block, "docs/deployment.md has no ```env block"
    values = {}
    for line in block.group(1).splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@pytest.mark.database_independent  # a subprocess with its own environment and SQLite file
def test_check_deploy_reports_nothing_with_the_documented_production_settings(tmp_path):
    env = documented_production_env()
    assert env["PRODUCTION"] == "true"
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    # The check needs no database or broker; keep the run self-contained.
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATA_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr
