"""JSON responses, serialised once with the C encoder.

Dialect pages run to 10,000 events, so bodies are built as plain dicts and
lists and dumped in one `json.dumps` call: no per-field encoding in Python.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

_COMPACT = (",", ":")


def json_response(
    body: Any,
    *,
    status: int = 200,
    sort_keys: bool = False,
    compact: bool = True,
) -> web.Response:
    """`body` as `application/json; charset=utf-8`.

    `sort_keys` and `compact=False` reproduce Django/Tastypie's serializer
    (`json.dumps(..., sort_keys=True)` with default separators) byte for byte.
    """
    text = json.dumps(
        body,
        ensure_ascii=False,
        sort_keys=sort_keys,
        separators=_COMPACT if compact else None,
    )
    return web.Response(
        body=text.encode("utf-8"),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


def empty_response(status: int) -> web.Response:
    """A bodiless answer, as Tastypie gives for 401 and 404."""
    return web.Response(status=status, body=b"", content_type="text/html", charset="utf-8")
