"""Reading the urlencoded form of a browser's POST (the login page's, the UI's changes)."""

from __future__ import annotations

import urllib.parse

from fastapi import Request

from mloop.errors import MloopError


async def read_form(request: Request, limit: int, too_large: type[MloopError]
                    ) -> dict[str, str]:
    """The fields of an urlencoded body (the first value of each name); a body over
    ``limit`` bytes raises ``too_large`` without being read further."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large("The form is too large.")
    fields: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                             keep_blank_values=True):
        fields.setdefault(key, value)
    return fields
