"""The REST shim (`serve --http-address`): one big page per dialect, repeated."""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.process import ServerProcess

SPARKPOST_PAGE = 10_000
TASTYPIE_PAGE = 1000


def sparkpost_window(path: Path) -> tuple[str, str]:
    """SparkPost's `from`/`to` (UTC minutes) covering every event in the database."""
    with sqlite3.connect(path) as conn:
        low, high = conn.execute("SELECT min(ts), max(ts) FROM events").fetchone()

    def minute(us: int) -> str:
        return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M")

    return minute(low), minute(high + 60_000_000)  # `to` is exclusive


def sparkpost_target(path: Path) -> str:
    start, end = sparkpost_window(path)
    query = urlencode({"per_page": SPARKPOST_PAGE, "from": start, "to": end})
    return f"/api/v1/message-events?{query}"


def tastypie_target(key: str) -> str:
    query = urlencode({"limit": TASTYPIE_PAGE, "username": "x", "api_key": key})
    return f"/api/messageevent/?{query}"


def page_rate(
    server: ServerProcess, target: str, headers: dict[str, str], *, repeats: int = 5
) -> tuple[float, float, int]:
    """GET `target` `repeats` times on one keep-alive connection after a warm-up:
    (requests/s, events/s, events per page). The timed part is the request and
    reading the whole body; the client's JSON parse (to count events) is not."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=300)
    try:
        _get(conn, target, headers)  # warm up: connection, caches, code paths
        bodies = []
        started = time.perf_counter()
        for _ in range(repeats):
            bodies.append(_get(conn, target, headers))
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    counts = {_events_in(body) for body in bodies}
    assert len(counts) == 1, f"pages differ in size: {counts}"
    per_page = counts.pop()
    return repeats / elapsed, repeats * per_page / elapsed, per_page


def _get(conn: http.client.HTTPConnection, target: str, headers: dict[str, str]) -> bytes:
    conn.request("GET", target, headers=headers)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, (response.status, body[:300])
    return body


def _events_in(body: bytes) -> int:
    answer = json.loads(body)
    return len(answer["results"] if "results" in answer else answer["objects"])
