"""Offset-paged dialects at depth: a deep page against the first, and whole walks.

A deep page is asked for cold (no page before it was served), so it measures
the store's skip; a walk follows the dialect's own paging as a client does,
so it measures the follow-on pages that resume where the page before ended.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.process import ServerProcess
from benchmarks.rest import SPARKPOST_PAGE, TASTYPIE_PAGE, sparkpost_window

#: Requests per single-page figure (the median is reported).
REPEATS = 3


class Client:
    """One keep-alive connection to the shim."""

    def __init__(self, server: ServerProcess, headers: dict[str, str]) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=600)
        self._headers = headers

    def get(self, target: str) -> dict[str, object]:
        answer: dict[str, object] = json.loads(self.body(target)[0])
        return answer

    def body(self, target: str) -> tuple[bytes, float]:
        """The response body, and the seconds from request to its last byte."""
        started = time.perf_counter()
        self._conn.request("GET", target, headers=self._headers)
        response = self._conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        assert response.status == 200, (response.status, body[:300])
        return body, elapsed

    def timed(self, target: str) -> float:
        """Seconds for the request and its whole body (median of REPEATS)."""
        times = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            self._conn.request("GET", target, headers=self._headers)
            response = self._conn.getresponse()
            response.read()
            times.append(time.perf_counter() - started)
            assert response.status == 200
        return statistics.median(times)

    def close(self) -> None:
        self._conn.close()


def _events(answer: dict[str, object]) -> int:
    items = answer["results"] if "results" in answer else answer["objects"]
    assert isinstance(items, list)
    return len(items)


def walk(
    client: Client, first: str, next_of: Callable[[dict[str, object]], str]
) -> tuple[int, float]:
    """Follow a dialect's paging from `first` to the end: (events, seconds).

    Timed as the single pages are: request to last body byte; the client's
    JSON parse (to find the next page) is not timed.
    """
    events = 0
    seconds = 0.0
    target = first
    while target:
        body, elapsed = client.body(target)
        seconds += elapsed
        answer = json.loads(body)
        events += _events(answer)
        target = next_of(answer)
    return events, seconds


def _tastypie_next(answer: dict[str, object]) -> str:
    meta = answer["meta"]
    assert isinstance(meta, dict)
    return str(meta["next"] or "")


def _cursor_next(answer: dict[str, object]) -> str:
    links = answer["links"]
    assert isinstance(links, dict)
    return str(links.get("next", ""))


def bench_walks(path: Path, key: str, total: int, grpc_rate: float) -> None:
    start, end = sparkpost_window(path)
    window = {"from": start, "to": end}
    deep_page = max(1, total // SPARKPOST_PAGE // 2)
    deep_offset = (total // 2) // TASTYPIE_PAGE * TASTYPIE_PAGE

    def sparkpost(page: int) -> str:
        return "/api/v1/message-events?" + urlencode(
            {"per_page": SPARKPOST_PAGE, "page": page, **window}
        )

    def tastypie(offset: int) -> str:
        query = {"limit": TASTYPIE_PAGE, "offset": offset, "username": "x", "api_key": key}
        return "/api/messageevent/?" + urlencode(query)

    cursor_first = "/api/v1/events/message?" + urlencode({"per_page": SPARKPOST_PAGE, **window})
    rows: list[tuple[str, str]] = []
    with ServerProcess(path, http=True) as server:
        sp, tp = Client(server, {"Authorization": key}), Client(server, {})
        try:
            sp.get(sparkpost(1))  # warm up: connection, caches, code paths
            tp.get(tastypie(0))
            # Deep pages first, cold: no page before them has been served.
            sp_deep, tp_deep = sp.timed(sparkpost(deep_page)), tp.timed(tastypie(deep_offset))
            sp_first, tp_first = sp.timed(sparkpost(1)), tp.timed(tastypie(0))
            cursor_first_s = sp.timed(cursor_first)
            rows.append(
                (
                    f"SparkPost page={deep_page} vs page=1, {SPARKPOST_PAGE:,}/page",
                    f"{sp_deep * 1000:7.0f} ms vs {sp_first * 1000:5.0f} ms"
                    f" = {sp_deep / sp_first:4.2f} x (bar 2)",
                )
            )
            rows.append(
                (
                    f"Tastypie offset={deep_offset:,} vs offset=0, {TASTYPIE_PAGE:,}/page",
                    f"{tp_deep * 1000:7.0f} ms vs {tp_first * 1000:5.0f} ms"
                    f" = {tp_deep / tp_first:4.2f} x (bar 2)",
                )
            )
            walks = [
                (
                    f"Tastypie walk by next, {TASTYPIE_PAGE:,}/page",
                    tp,
                    tastypie(0),
                    _tastypie_next,
                    TASTYPIE_PAGE / tp_first,
                ),
                (
                    f"SparkPost walk by page=N, {SPARKPOST_PAGE:,}/page",
                    sp,
                    sparkpost(1),
                    _sparkpost_pages(sparkpost),
                    SPARKPOST_PAGE / sp_first,
                ),
                (
                    f"Events API walk by links.next, {SPARKPOST_PAGE:,}/page",
                    sp,
                    cursor_first,
                    _cursor_next,
                    SPARKPOST_PAGE / cursor_first_s,
                ),
            ]
            for label, client, first, next_of, first_rate in walks:
                events, seconds = walk(client, first, next_of)
                rate = events / seconds
                rows.append(
                    (
                        label,
                        f"{rate:10,.0f} ev/s = {rate / first_rate:4.2f} x its first page"
                        f" (bar 0.5) = {rate / grpc_rate:4.2f} x stream ({events:,} events)",
                    )
                )
        finally:
            sp.close()
            tp.close()
    print("\n## REST shim at depth: deep offset pages and whole walks")
    print(f"{'SearchMessageEvents: gRPC stream of the store, parsed':<56} {grpc_rate:>10,.0f} ev/s")
    for label, figure in rows:
        print(f"{label:<56} {figure}")
    print("(single pages: median of 3 requests; walks: one pass, request to last byte)")


def _sparkpost_pages(target: Callable[[int], str]) -> Callable[[dict[str, object]], str]:
    """page=2, 3, ... as a client that counts pages from total_count does."""
    state = {"page": 1}

    def next_of(answer: dict[str, object]) -> str:
        count = answer["total_count"]
        assert isinstance(count, int)
        if state["page"] * SPARKPOST_PAGE >= count:
            return ""
        state["page"] += 1
        return target(state["page"])

    return next_of
