"""Every page a role can reach, in real headless Chromium, in both languages.

A small seeded city runs as the real system (daphne + one Celery worker + Redis,
tests/e2e/harness.py) with a few weeks of past incidents, one live incident and one
drill. For each role (city admin, district admin, street admin, unit leader, police
station, reviewer, member) and each language (zh-hans, en) the crawler starts at
the role's home pages and follows every same-site link: admin changelists and the
change form of one object of each model, every review page (one detail page of
each kind), every tab of the member app. A page fails on:

- an HTTP error (the page or any resource it loads, the favicon included);
- a console error or an uncaught script error;
- a table wider than the box it sits in (unless that box scrolls);
- in English, visible Chinese text that is not data. Data (region, unit, member
  names, addresses, descriptions) is known from the database: each such value is
  removed from the text first, and any Chinese left is an untranslated label.

Screenshots of every page go to test-artifacts/crawl/<role>-<lang>/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from tests.e2e import harness

# Not in `./dev test`: it takes about 12 minutes on this 2-core machine.
# `./dev crawl` runs it.
pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.crawl]

ROOT = harness.ROOT
ARTIFACTS = ROOT / "test-artifacts" / "crawl"
CHROMIUM = "/usr/bin/chromium"
DESK = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LANGUAGES = ("en", "zh-hans")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

# Links the crawler does not follow: they change state, download a file, leave
# the site's pages, or are a variant of a page already seen.
SKIP = re.compile(
    r"/logout/|/i18n/|/export|/delete/|/history/|/add/|/api/|/static/|/jsi18n/"
    r"|/password/|\.(csv|xlsx|json|js|png|ico|webmanifest)$|/m/sw\.js"
)

ROLES = {
    # role: (username or scenario key, start pages, viewport)
    "city_admin": ("admin", ["/", "/admin/", "/review/"], DESK),
    "district_admin": ("tianhe_admin", ["/", "/admin/", "/review/"], DESK),
    "street_admin": ("yuexiu_street", ["/", "/admin/", "/review/"], DESK),
    "unit_leader": ("crawl_leader", ["/", "/admin/"], DESK),
    "police_station": ("station_tianhe", ["/", "/admin/", "/review/"], DESK),
    "reviewer": ("reviewer", ["/", "/admin/", "/review/"], DESK),
    "member": ("member", ["/m/"], PHONE),
}


def django_run(city: harness.City, code: str) -> Any:
    """Run ``code`` with Django set up in the city's environment; it may assign
    ``result``, which comes back as JSON."""
    script = "import json, django\ndjango.setup()\nresult = None\n" + code
    script += "\nprint(json.dumps(result, ensure_ascii=False))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=city.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# The history the pages show: past incidents, a unit leader, a drill. What the
# pages may show as data comes back as the allow-list of data values.
WORLD = """
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from dispatch.models import Incident
from review.models import IndicatorNode
from review.services.drills import drill_start
from units.models import Equipment, Member, Region, StaffProfile, Unit

call_command("seed_incidents", count=40, days=21, no_progress=True, verbosity=0)
near = Unit.objects.get(code="E2E-NEAR")
leader = get_user_model().objects.create(
    username="crawl_leader", password=make_password(PASSWORD), is_staff=True
)
StaffProfile.objects.create(
    user=leader, role=StaffProfile.Role.UNIT_LEADER, region=near.region, unit=near
)
station = get_user_model().objects.get(username="station_tianhe")
drill_start(user=station, scope="area")
data = set()
data.update(Region.objects.values_list("name", flat=True))
data.update(Unit.objects.values_list("name", flat=True))
data.update(Unit.objects.values_list("address", flat=True))
data.update(Member.objects.values_list("name", flat=True))
data.update(Incident.objects.values_list("address", flat=True))
data.update(Incident.objects.values_list("description", flat=True))
# Street types come from the geodata as entered ("街道", "镇").
data.update(Region.objects.values_list("street_type", flat=True))
# The index's indicators are rows an administrator names and edits in the admin.
data.update(IndicatorNode.objects.values_list("name", flat=True))
# A language picker names each language in that language ("中文" on an English page).
data.update(["中文", "简体中文"])
result = sorted((d for d in data if d), key=len, reverse=True)
"""


@pytest.fixture(scope="module")
def crawl_city(tmp_path_factory) -> Iterator[harness.City]:
    try:
        city = harness.City.create(
            tmp_path_factory.mktemp("crawl-city"),
            outer_database_url=os.environ.get("DATABASE_URL"),
            units=60,
        )
    except harness.ServiceError as exc:
        pytest.fail(f"could not set up the city: {exc}", pytrace=False)
    yield city
    city.close()


@pytest.fixture(scope="module")
def crawl_system(crawl_city) -> Iterator[harness.System]:
    system = harness.System(crawl_city)
    try:
        daphne = system.start_daphne()
        system.start_worker(concurrency=1)
    except harness.ServiceError as exc:
        system.stop()
        pytest.fail(f"could not start the system: {exc}", pytrace=False)
    # One live incident, so the timeline has waves, deliveries and answers.
    api = harness.Http(daphne.http_url)
    staff = crawl_city.scenario["staff"]
    api.login_token(staff["username"], staff["password"])
    spot = crawl_city.scenario["spot"]
    r = api.post("/api/v1/incidents/", {"kind": "knife", "lat": spot["lat"], "lon": spot["lon"]})
    assert r.status == 201, r.body[:300]
    yield system
    system.stop()


@pytest.fixture(scope="module")
def data_values(crawl_city, crawl_system) -> list[str]:
    return django_run(crawl_city, f"PASSWORD = {harness.PASSWORD!r}\n" + WORLD)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: apt-get install chromium", pytrace=False)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield browser
        browser.close()


# Runs in the page: what is wrong with it (tables, and the visible text).
PAGE_CHECK = """
() => {
  const wide = [];
  for (const t of document.querySelectorAll('table')) {
    if (!t.getClientRects().length) continue;
    let box = t.parentElement, scrolls = false;
    for (let a = box; a && a !== document.body; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') { scrolls = true; break; }
    }
    if (scrolls) continue;
    const over = t.getBoundingClientRect().right - box.getBoundingClientRect().right;
    const page = t.getBoundingClientRect().right - document.documentElement.clientWidth;
    if (over > 1 || page > 1) {
      const by = Math.round(Math.max(over, page));
      wide.push((t.id || t.className || 'table') + ' by ' + by + 'px');
    }
  }
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const s = n.nodeValue.trim();
    if (!s) continue;
    const el = n.parentElement;
    if (!el || el.closest('script,style,template,noscript,[hidden]')) continue;
    if (el.closest('[lang^="zh"]')) continue;  // marked as Chinese on purpose
    const opt = el.closest('option');
    if (opt && !opt.selected) continue;
    if (!opt && !el.checkVisibility({visibilityProperty: true, opacityProperty: true})) continue;
    texts.push(s);
  }
  return {wide, texts};
}
"""


def untranslated(texts: list[str], data: list[str]) -> list[str]:
    left = []
    for text in texts:
        if not CJK.search(text):
            continue
        rest = text
        for value in data:  # longest first
            if value in rest:
                rest = rest.replace(value, " ")
        if CJK.search(rest):
            left.append(text[:80])
    return sorted(set(left))


def page_key(path: str) -> str:
    """One object of each kind: /admin/units/unit/12/change/ and .../13/change/ are alike."""
    return re.sub(r"/\d+(?=/)", "/N", path)


class Crawler:
    def __init__(
        self,
        *,
        context,
        base: str,
        folder: Path,
        lang: str,
        data: list[str],
    ) -> None:
        self.context = context
        self.base = base
        self.folder = folder
        self.lang = lang
        self.data = data
        self.problems: list[str] = []
        self.visited: list[str] = []

    def check(self, page, label: str, events: list[str]) -> None:
        page.wait_for_timeout(150)  # late script errors and fetches
        found = page.evaluate(PAGE_CHECK)
        for wide in found["wide"]:
            self.problems.append(f"{label}: table overflows: {wide}")
        if self.lang == "en":
            for text in untranslated(found["texts"], self.data):
                self.problems.append(f"{label}: Chinese text: {text!r}")
        self.problems.extend(f"{label}: {e}" for e in events)
        events.clear()
        name = re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_") or "home"
        # JPEG: a full-page PNG of a long changelist costs seconds to encode.
        page.screenshot(
            path=str(self.folder / f"{len(self.visited):02d}-{name}.jpg"),
            full_page=True,
            type="jpeg",
            quality=70,
        )

    def crawl(self, starts: list[str], *, tabs: bool = False) -> None:
        page = self.context.new_page()
        events: list[str] = []
        page.on("console", lambda m: m.type == "error" and events.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: events.append(f"script error: {e}"))
        page.on(
            "response",
            lambda r: r.status >= 400 and events.append(f"HTTP {r.status} {urlsplit(r.url).path}"),
        )
        seen_keys: set[str] = set()
        queue = [(start, "") for start in starts]
        while queue:
            path, origin = queue.pop(0)
            key = page_key(path)
            if key in seen_keys:
                continue
            seen_keys.add(key)
            response = page.goto(self.base + path, wait_until="load")
            if response is None or response.status >= 400:
                status = response.status if response else "no response"
                self.problems.append(f"{path}: HTTP {status} (linked from {origin or 'start'})")
            if urlsplit(page.url).path != path:
                # A redirect (to a login page, say): crawl what it shows once.
                final = urlsplit(page.url).path
                if page_key(final) in seen_keys:
                    events.clear()
                    continue
                seen_keys.add(page_key(final))
            self.visited.append(path)
            self.check(page, path, events)
            if tabs:
                # The member's unit is on the live incident: its full-screen alert
                # shows first (and was checked above); "later" puts it aside.
                alert = page.locator("#alert")
                if alert.is_visible():
                    page.click("#alert-later")
                    alert.wait_for(state="hidden")
                for button in page.locator("nav.tabbar button[data-view]").all():
                    view = button.get_attribute("data-view")
                    if alert.is_visible():  # a later wave brought it back
                        page.click("#alert-later")
                        alert.wait_for(state="hidden")
                    button.click()
                    self.visited.append(f"{path}#{view}")
                    self.check(page, f"{path}#{view}", events)
            for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
                parts = urlsplit(urljoin(page.url, href))
                if (
                    parts.netloc != urlsplit(self.base).netloc
                    or parts.query
                    or SKIP.search(parts.path)
                ):
                    continue
                if page_key(parts.path) not in seen_keys:
                    queue.append((parts.path, path))
        page.close()


# About 12 minutes on a quiet 2-core machine; 20 with six other test runs beside it.
@pytest.mark.timeout(1800)
def test_every_page_of_every_role_in_both_languages(
    crawl_city, crawl_system, data_values, chromium
):
    daphne = next(s for s in crawl_system.services if s.name.startswith("daphne"))
    base = daphne.http_url
    host = urlsplit(base).hostname
    started = time.monotonic()
    report: dict[str, list[str]] = {}
    problems: list[str] = []
    # CRAWL_ROLES=member,reviewer crawls only those (a quicker look after a fix).
    only = {r for r in os.environ.get("CRAWL_ROLES", "").split(",") if r}
    for role, (who, starts, viewport) in ROLES.items():
        if only and role not in only:
            continue
        if who == "member":
            username = crawl_city.scenario["units"]["near"]["logins"][0]["username"]
        else:
            username = who
        sessionid = harness.Http(base).login_session(username, harness.PASSWORD)
        for lang in LANGUAGES:
            folder = ARTIFACTS / f"{role}-{lang}"
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("*.jpg"):
                old.unlink()
            context = chromium.new_context(
                viewport=viewport,
                locale="en-US" if lang == "en" else "zh-CN",
                service_workers="block",
            )
            context.add_cookies(
                [
                    {"name": "sessionid", "value": sessionid, "domain": host, "path": "/"},
                    {"name": "django_language", "value": lang, "domain": host, "path": "/"},
                ]
            )
            crawler = Crawler(
                context=context,
                base=base,
                folder=folder,
                lang=lang,
                data=data_values,
            )
            crawler.crawl(starts, tabs=role == "member")
            context.close()
            report[f"{role}-{lang}"] = crawler.visited
            problems.extend(f"[{role} {lang}] {p}" for p in crawler.problems)
            # Written as the crawl goes, to be read while it runs.
            (ARTIFACTS / "pages.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
            (ARTIFACTS / "problems.txt").write_text("\n".join(problems) + "\n")
    pages = sum(len(v) for v in report.values())
    print(f"crawled {pages} pages in {time.monotonic() - started:.0f} s")
    assert not problems, f"{len(problems)} problems (see {ARTIFACTS}/problems.txt):\n" + "\n".join(
        problems[:80]
    )
