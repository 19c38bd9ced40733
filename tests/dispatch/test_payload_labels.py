"""A frame's labels are the model's own display values, in the active
language, for every kind and severity (``payloads._label`` stands in for
``get_FOO_display``, which rebuilt and translated every choice per call)."""

from __future__ import annotations

from django.utils import translation

from dispatch import payloads
from dispatch.models import Incident


def test_every_kind_and_severity_label_is_the_models_display_in_both_languages():
    for language in ("zh-hans", "en"):
        with translation.override(language):
            for kind in Incident.Kind.values:
                for severity in Incident.Severity.values:
                    incident = Incident(pk=1, kind=kind, severity=severity, lat=23.1, lon=113.3)
                    summary = payloads.incident_summary(incident)
                    assert summary["kind_display"] == incident.get_kind_display()
                    assert summary["severity_display"] == incident.get_severity_display()
    with translation.override("en"):
        english = payloads.incident_summary(Incident(pk=1, kind="knife", lat=23.1, lon=113.3))
    with translation.override("zh-hans"):
        chinese = payloads.incident_summary(Incident(pk=1, kind="knife", lat=23.1, lon=113.3))
    assert english["kind_display"] != chinese["kind_display"]
