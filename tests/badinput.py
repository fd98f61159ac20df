"""Helpers for the bad-input tests: raw HTTP (bytes no client library would send),
the dialects' error envelopes, and a check that the server log stayed quiet.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


async def raw_http(port: int, request: bytes) -> Answer:
    """Send `request` as it is and read the whole answer (the connection is closed after)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(30):  # an answer, never a hang
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return Answer(status, headers, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def request_bytes(
    method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> bytes:
    """An HTTP/1.1 request, `Connection: close`, with Content-Length when there is a body."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if body or method == "POST":
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- the dialects' error envelopes ---------------------------------------------


def is_sparkpost_error(status: int, body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("errors"), list)
        and bool(body["errors"])
        and all({"message", "code"} <= set(e) for e in body["errors"])
    )


def is_tastypie_error(status: int, body: Any) -> bool:
    if status in (401, 404) and body is None:
        return True  # Tastypie's bodiless 401 and 404
    return isinstance(body, dict) and (set(body) == {"error"} or set(body) == {"error_message"})


def is_copernica_error(status: int, body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and "message" in error


def is_interaction_error(status: int, body: Any) -> bool:
    return (
        isinstance(body, dict)
        and body.get("result") == "error"
        and body.get("code") == status
        and isinstance(body.get("status"), str)
    )


def is_webhook_error(status: int, body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("errors"), list)
        and all("message" in e for e in body["errors"])
    )


# -- the server log ------------------------------------------------------------


def assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No ERROR line and no traceback reached the log."""
    loud = [
        f"{r.name} {r.levelname}: {r.getMessage()[:300]}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info or r.exc_text
    ]
    assert not loud, "\n".join(loud)
