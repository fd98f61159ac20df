"""Request bodies: read within a size limit, and parsed as JSON into plain values only.

Every JSON body the HTTP side accepts (the interaction-data report, the
webhook batches) goes through `parse_json`, so that what a handler sees is
always finite numbers, 64-bit-sized integers and shallow nesting: orjson
refuses NaN and Infinity (which are not JSON), numbers that overflow a double
(`1e999`, a 400-digit integer), nesting past 1,024 levels (no RecursionError
later) and invalid UTF-8. What it refuses, each dialect answers as its own 400.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


class BadBody(ValueError):
    """The body cannot be used; the message says why, in words for the caller."""


class TooLarge(BadBody):
    """The body is longer than the route accepts."""


def parse_json(raw: bytes) -> Any:
    """The JSON value in `raw`; BadBody when it is not strict JSON we can use."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadBody(str(exc)) from None


async def read_body(request: web.Request, limit: int) -> bytes:
    """The (decompressed) body; TooLarge past `limit` bytes, BadBody when it cannot be read.

    aiohttp decompresses `Content-Encoding: gzip` and `deflate` as the body is
    read and raises when the bytes are not what the header says: that is the
    client's mistake, a 400, not a 500.
    """
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the body is larger than {limit} bytes")
    chunks = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the body is larger than {limit} bytes")
            chunks.append(chunk)
    except web.RequestPayloadError as exc:
        raise BadBody(f"the body could not be read: {_first_line(exc)}") from None
    return b"".join(chunks)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1].strip() if text else type(exc).__name__
