"""The REST API's JSON parser: DRF's, with the input bounds of ``dispatch.inputs``
(nesting depth, no NaN/Infinity). A body nested a thousand levels used to raise
RecursionError inside ``json.load`` and answer 500 on every JSON endpoint,
signed in or not (``/api/v1/auth/token/``)."""

from __future__ import annotations

import codecs

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from dispatch.inputs import JSONRefused, json_loads


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            return json_loads(text)
        except (JSONRefused, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
