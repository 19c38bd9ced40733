"""The OpenAPI schema describes what intake answers (Swagger showed
``additionalProp1`` for it: the response had no serializer)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


def _ref(schema, ref):
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def _response(schema, path, code):
    body = schema["paths"][path]["post"]["responses"][code]["content"]["application/json"]
    return _ref(schema, body["schema"]["$ref"])


@pytest.mark.parametrize("path", ["/api/v1/incidents/", "/api/v1/incidents/report/"])
def test_intake_response_is_described(path):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    answer = _response(schema, path, "201")
    assert set(answer["properties"]) == {"incident", "created", "wave", "candidates"}
    wave = answer["properties"]["wave"]
    assert "number" in _ref(schema, (wave.get("allOf") or [wave])[0]["$ref"])["properties"]
    refused = _response(schema, "/api/v1/incidents/", "403")
    assert set(refused["properties"]) >= {"code", "detail"}
