"""The board's own state and words, run in Node against the page's real modules
(static/board/state.js, render.js): receipts from the feed change a unit's and a
member's channels without a reload, and an escalation names its tier in words."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dispatch.policy import tier_labels

STATIC = Path(__file__).resolve().parents[2] / "static" / "board"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js")


def run_js(tmp_path: Path, config: dict, body: str):
    """Run ``body`` (top-level await allowed) with the board's modules imported as
    ``S`` (state.js) and ``R`` (render.js); returns what it passes to ``out``."""
    for name in ("state.js", "render.js"):
        shutil.copy(STATIC / name, tmp_path / name)
    # The page's modules are ES modules; Node needs telling for a .js file.
    (tmp_path / "package.json").write_text('{"type": "module"}')
    script = f"""
globalThis.gettext = (s) => s;
globalThis.interpolate = (s, a) => s.replace("%s", a[0]);
const config = {{ textContent: {json.dumps(json.dumps(config))} }};
globalThis.document = {{ getElementById: () => config }};
const S = await import("./state.js");
const R = await import("./render.js");
const out = (value) => console.log(JSON.stringify(value));
{body}
"""
    (tmp_path / "run.mjs").write_text(script)
    proc = subprocess.run(  # noqa: S603
        [NODE, "run.mjs"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


STATE = {
    "type": "incident.state",
    "incident": {"id": 5, "status": "open", "discovered_at": "2026-11-30T08:00:00+08:00"},
    "seq": 10,
    "units": [
        {
            "unit_id": 7,
            "code": "U7",
            "name": "天河城",
            "status": "alerted",
            "members": 3,
            "delivered": 1,
            "channels": ["app"],
            "failed_channels": [],
        }
    ],
    "reach": [[70, 7, "app", "reached"]],
    "positions": [],
    "timeline": [],
}


def update(seq: int, event: str, member_id: int, **data) -> dict:
    return {
        "type": "incident.update",
        "incident_id": 5,
        "seq": seq,
        "event": event,
        "unit_id": 7,
        "member_id": member_id,
        "data": data,
        "status": "open",
    }


def test_receipts_from_the_feed_update_the_units_and_members_channels(tmp_path):
    frames = [
        update(11, "seen", 70),  # already delivered: no second count
        update(12, "delivered", 71),
        update(12, "delivered", 71),  # the same frame again (incident + area group)
        update(13, "notify_failed", 72, channel="sms", error_code="E1"),
        update(14, "reached", 72, channel="voice"),
        update(15, "notify_failed", 71, channel="sms"),
    ]
    got = run_js(
        tmp_path,
        {"tierLabels": {}},
        f"""
S.applyState({json.dumps(STATE)});
for (const f of {json.dumps(frames)}) S.applyUpdate(f);
const inc = S.incidents.get(5);
const u = inc.units.get(7);
out({{seq: inc.seq, delivered: u.delivered, channels: u.channels, failed: u.failed_channels,
     members: Object.fromEntries(inc.reach), text: R.reachText(u)}});
""",
    )
    assert got["seq"] == 15
    assert got["delivered"] == 2
    assert got["channels"] == ["app", "voice"]
    assert got["failed"] == ["sms"]
    assert got["members"] == {
        "70": {"app": "reached"},
        "71": {"app": "reached", "sms": "failed"},
        "72": {"sms": "failed", "voice": "reached"},
    }
    assert got["text"] == "2/3 应用/语音 ✗短信"


@pytest.mark.django_db
def test_the_escalation_banner_names_the_tier_in_words_never_its_setting(tmp_path):
    labels = tier_labels()
    assert labels["street_10min"] == "10 分钟街镇力量"
    assert labels["professional_20min"] == "20 分钟专业力量"
    frames = [
        {"incident_id": 5, "data": {"tier": "street_10min", "wave": 4, "units": 3}},
        {"incident_id": 5, "data": {"tier": "professional_20min", "units": 0}},
        {"incident_id": 5, "data": {"tier": "respond_1min", "ring_sent_early": True}},
        {"incident_id": 5, "data": {"tier": "night_watch_7min"}},
    ]
    got = run_js(
        tmp_path,
        {"tierLabels": labels},
        f"out({json.dumps(frames)}.map((f) => R.escalationText(f)));",
    )
    assert got == [
        "升级 #5: 10 分钟街镇力量 · 新推送单元 3",
        "升级 #5: 20 分钟专业力量 · 新推送单元 0",
        "升级 #5: 1 分钟响应圈 · 该圈已提前推送",
        "升级 #5: 升级层级",
    ]
    assert not any(name in text for text in got for name in labels)
