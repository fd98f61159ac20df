"""The cost of metrics: stream and ingest throughput with /metrics off and on.

Off and on alternate within each round (A B B A ...), so that drift of a
shared machine hits both sides alike: the stream's two servers run side by
side and take turns at passes over the store; ingest takes turns at fresh
databases. The spread of the per-round ratios is printed, not only their
median. "Off" is a server without --metrics-address (and at --log-level
warning): its calls skip the observing interceptor; the per-batch counts in
the store and servicer run on both sides. Tracing stays off in both (no
`OTEL_*` variables are passed on).
"""

from __future__ import annotations

import os
import statistics
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import live, stream
from benchmarks.ingest import fresh_sqlite
from benchmarks.process import ServerProcess
from mailevents.v1 import message_event_pb2 as pb

#: Passes over the whole store per side and round, in the order A B B A A B
#: (off first in even rounds, on first in odd ones): each side's best pass
#: counts (a pass is short, and the machine's other load only ever slows one down).
STREAM_PASSES = 3


def _stream_ratio(path: Path, key: str, first: bool) -> tuple[float, float]:
    """Both servers run side by side (the idle one costs nothing), so that the
    passes of the two alternate closely, `first` side first: (off rate, on rate)."""
    with ServerProcess(path) as off, ServerProcess(path, metrics=True) as on:
        for server in (off, on):
            stream.stream(server, key, max_events=10_000)  # warm up
        best = {False: 0.0, True: 0.0}
        for i in range(STREAM_PASSES):
            for metrics in (first, not first) if i % 2 == 0 else (not first, first):
                rate = stream.stream(on if metrics else off, key)[1]
                best[metrics] = max(best[metrics], rate)
        _scrape(on)
    return best[False], best[True]


def _ingest_rate(events: Sequence[pb.MessageEvent], metrics: bool) -> float:
    with fresh_sqlite() as (database, key), ServerProcess(database, metrics=metrics) as server:
        rate = live.ingest_stream_rate(server.address, key, events)
        if metrics:
            _scrape(server)
    return rate


def _ingest_ratio(events: Sequence[pb.MessageEvent], first: bool) -> tuple[float, float]:
    """Each side ingests into a fresh database twice, `first` side first (off, on,
    on, off or on, off, off, on): (off rate, on rate), each the mean of its two."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    for metrics in (first, not first, not first, first):
        rates[metrics].append(_ingest_rate(events, metrics))
    return statistics.mean(rates[False]), statistics.mean(rates[True])


def _scrape(server: ServerProcess) -> None:
    """Metrics on means served too: one scrape proves the endpoint answered."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert b"mailevents_grpc_requests_total" in response.read()


def bench_metrics(path: Path, key: str, events: Sequence[pb.MessageEvent], rounds: int) -> None:
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        os.environ.pop(name)  # tracing off on both sides
    print(
        f"\n## Metrics on vs off: {rounds} alternating rounds, tracing off"
        " (ratio = on / off within each round; 1.00 = no cost)"
    )
    cases: tuple[tuple[str, Callable[[bool], tuple[float, float]]], ...] = (
        ("SearchMessageEvents, the whole store", lambda first: _stream_ratio(path, key, first)),
        (
            f"IngestMessageEventsStream, {len(events):,} new events",
            lambda first: _ingest_ratio(events, first),
        ),
    )
    for label, measure in cases:
        ratios, offs, ons = [], [], []
        for i in range(rounds):
            off, on = measure(i % 2 == 1)  # off first in even rounds, on first in odd
            offs.append(off)
            ons.append(on)
            ratios.append(on / off)
        print(
            f"{label:<48} off {statistics.median(offs):>9,.0f} ev/s"
            f"  on {statistics.median(ons):>9,.0f} ev/s"
            f"  ratio median {statistics.median(ratios):.3f}"
            f" (min {min(ratios):.3f}, max {max(ratios):.3f})"
        )
