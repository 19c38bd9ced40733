"""Roster import pages in words: a change preview holds model field names and raw
values (``phone``, ``role: member``); people read the field's label and the
choice's name, in their language."""

from __future__ import annotations

from typing import Any

from django import template
from django.core.exceptions import FieldDoesNotExist
from django.utils.translation import gettext as _

from units.importing import SHEET_TITLES
from units.models import Equipment, Member, Unit

register = template.Library()

_MODELS = {"unit": Unit, "member": Member, "equipment": Equipment}
# The import's sheet titles are file-format names; these are their labels.
_TITLES = {"unit": Unit._meta.verbose_name, "member": Member._meta.verbose_name}
_TITLES["equipment"] = Equipment._meta.verbose_name


def _field(kind: str, name: str):
    model = _MODELS.get(kind)
    if model is None:
        return None
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


@register.simple_tag
def sheet_label(kind: str, fallback: str = "") -> str:
    """The label of a sheet, by kind, or by the file-format title when no kind is known."""
    if kind not in _TITLES:
        kind = next((k for k, t in SHEET_TITLES.items() if t == fallback), kind)
    title = _TITLES.get(kind)
    return str(title) if title is not None else fallback


@register.simple_tag
def field_label(kind: str, name: str) -> str:
    field = _field(kind, name)
    return str(field.verbose_name) if field is not None else name


@register.simple_tag
def field_value(kind: str, name: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("是") if value else _("否")
    field = _field(kind, name)
    if field is not None and field.choices:
        return str(dict(field.flatchoices).get(value, value))
    return str(value)
