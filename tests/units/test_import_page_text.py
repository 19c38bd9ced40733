"""The import pages speak to people: labels and choice names, never field names
or raw values, and no stray separators."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.factories import UnitFactory
from units.models import ImportJob

from .test_import import MEMBER_HEADER, csv_bytes

pytestmark = pytest.mark.django_db


def test_the_column_lists_end_with_a_column_not_a_separator(tianhe_admin):
    client = Client()
    client.force_login(tianhe_admin)
    page = client.get(reverse("admin:units_importjob_add")).content.decode()
    cells = re.findall(r'<td class="cols">(.*?)</td>', page)
    assert len(cells) == 3
    for cell in cells:
        # Each column brings its separator; the first one is hidden by the page's CSS.
        assert cell.startswith('<span class="sep">') and cell.endswith("</span></span>")
        assert not re.sub(r"<[^>]+>", "", cell).endswith("、")
    assert "td.cols > .sep:first-child { display: none; }" in page


def test_the_preview_shows_labels_and_choice_names(
    tianhe_admin, tianhe_street, django_capture_on_commit_callbacks
):
    unit = UnitFactory(region=tianhe_street)
    client = Client()
    client.force_login(tianhe_admin)
    data = csv_bytes(MEMBER_HEADER, [["13900000001", "王五", unit.code, "负责人"]])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:units_importjob_add"),
            {"file": SimpleUploadedFile("m.csv", data, "text/csv")},
        )
    job = ImportJob.objects.get()
    page = client.get(reverse("admin:units_importjob_change", args=[job.pk])).content.decode()

    assert "phone:" not in page and "role:" not in page and "leader" not in page
    assert "手机号：13900000001" in page
    assert "角色：负责人" in page
