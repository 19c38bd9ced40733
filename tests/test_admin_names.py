"""Every model the admin shows has Chinese names of its own, singular and plural
(Django's default plural appends an "s": "应急单元s")."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.utils import translation

OURS = {"units", "dispatch", "review", "mobile"}


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_models_in_the_admin_have_a_plural_name(language):
    with translation.override(language):
        missing, checked = [], 0
        for model in admin.site._registry:
            opts = model._meta
            if opts.app_label not in OURS:
                continue
            checked += 1
            singular, plural = str(opts.verbose_name), str(opts.verbose_name_plural)
            if plural == f"{singular}s" or plural.isascii() and language == "zh-hans":
                missing.append(opts.label)
        assert not missing
        assert checked >= 10
