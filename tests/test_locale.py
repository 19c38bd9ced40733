import ast
import re
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.translation import gettext

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_pages_speak_chinese_even_to_an_english_browser(client):
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert 'lang="zh-hans"' in page


def test_english_is_shown_once_the_user_chooses_it(client):
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert 'lang="en"' in page


def test_an_unknown_language_cookie_falls_back_to_chinese(client, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    assert 'lang="zh-hans"' in client.get("/").content.decode()


# --- the English catalogue is complete and compiled ----------------------------------------

LOCALE_EN = Path(__file__).resolve().parent.parent / "locale" / "en" / "LC_MESSAGES"


def po_entries(path: Path) -> list[dict]:
    """The entries of a .po file: msgctxt, msgid, msgid_plural, msgstr (list), fuzzy."""
    entries: list[dict] = []
    entry: dict = {}
    key = None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if "msgid" in entry:
                entries.append(entry)
            entry, key = {}, None
        elif line.startswith("#,"):
            entry["fuzzy"] = "fuzzy" in line
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[key] = entry[key] + ast.literal_eval(line)
        else:
            key, _, value = line.partition(" ")
            entry[key] = ast.literal_eval(value)
    return [
        {
            "msgctxt": e.get("msgctxt"),
            "msgid": e["msgid"],
            "msgid_plural": e.get("msgid_plural"),
            "msgstr": [v for k, v in sorted(e.items()) if k.startswith("msgstr")],
            "fuzzy": e.get("fuzzy", False),
        }
        for e in entries
        if e["msgid"]
    ]


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_every_english_message_is_translated(domain):
    entries = po_entries(LOCALE_EN / f"{domain}.po")
    assert entries
    missing = [e["msgid"] for e in entries if e["fuzzy"] or not all(e["msgstr"])]
    assert not missing, f"untranslated or fuzzy in locale/en/{domain}.po: {missing[:20]}"
    chinese = [e["msgid"] for e in entries if any(CJK.search(s) for s in e["msgstr"])]
    assert not chinese, f"English text with Chinese in it: {chinese[:20]}"


def test_the_compiled_catalogue_matches_the_po_file():
    """A .po edited without compilemessages leaves the pages in Chinese."""
    entries = po_entries(LOCALE_EN / "django.po")
    with translation.override("en"):
        stale = [
            e["msgid"]
            for e in entries
            if not e["msgctxt"] and not e["msgid_plural"] and gettext(e["msgid"]) != e["msgstr"][0]
        ]
    assert not stale, f"run compilemessages: {stale[:20]}"


def test_domain_terms_are_chosen_once():
    """docs/glossary.md: 警情 is an incident, never an alert."""
    with translation.override("en"):
        assert gettext("警情") == "Incident"
        assert gettext("最小应急处置单元") == "Emergency response units"
        assert [
            gettext(s) for s in ("第一时间发现", "第一时间响应", "第一时间管控", "第一时间处置")
        ] == [
            "Discovered",
            "Responded",
            "Controlled",
            "Handled",
        ]
