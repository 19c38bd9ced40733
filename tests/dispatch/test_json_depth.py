"""``inputs.json_loads``'s nesting limit, exactly at its edge: the walk is
skipped when the text holds no more brackets than levels allowed."""

from __future__ import annotations

import json

import pytest

from dispatch.inputs import JSONRefused, json_loads

pytestmark = pytest.mark.database_independent


def nested(depth: int) -> str:
    return '{"a": ' * (depth - 1) + "[1]" + "}" * (depth - 1)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_the_limit_parses_and_one_more_level_is_refused(settings, as_bytes):
    settings.JSON_MAX_DEPTH = 5
    ok, deep = nested(5), nested(6)
    if as_bytes:
        ok, deep = ok.encode(), deep.encode()
    assert json_loads(ok) == json.loads(ok)
    with pytest.raises(JSONRefused):
        json_loads(deep)


def test_brackets_inside_strings_neither_refuse_nor_hide_depth(settings):
    settings.JSON_MAX_DEPTH = 3
    shallow = json.dumps({"type": "ack", "note": "[[[[{{{{"})
    assert json_loads(shallow)["note"] == "[[[[{{{{"
    # Brackets in a string make the count pass; the walk still finds the depth.
    deep = json.dumps({"a": {"b": {"c": [1]}}, "pad": "x"})
    with pytest.raises(JSONRefused):
        json_loads(deep)
    # Fewer brackets than levels cannot happen: each level opens with one.
    assert json_loads('{"a": {"b": [1]}}') == {"a": {"b": [1]}}


def test_a_receipt_frame_parses():
    assert json_loads('{"type": "ack", "id": null, "incident_id": 7}')["incident_id"] == 7
