"""The cost of metrics: stream and ingest throughput with /metrics off and on.

Off and on alternate within one run (A B, B A, A B, ...), each pair measured
back to back, so that drift of a shared machine hits both sides alike; the
spread of the per-pair ratios is printed, not only their median. "Off" is a
server without --metrics-address (and at --log-level warning): its calls skip
the observing interceptor; the per-batch counts in the store and servicer run
on both sides. Tracing
stays off in both (no `OTEL_*` variables are passed on).
"""

from __future__ import annotations

import os
import statistics
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from benchmarks import live, stream
from benchmarks.ingest import fresh_sqlite
from benchmarks.process import ServerProcess
from mailevents.v1 import message_event_pb2 as pb

#: Passes over the whole store per server; the best one counts (a pass is short,
#: and the machine's other load only ever slows one down).
STREAM_PASSES = 3


def _stream_rate(path: Path, key: str, metrics: bool) -> float:
    with ServerProcess(path, metrics=metrics) as server:
        stream.stream(server, key, max_events=10_000)  # warm up
        rate = max(stream.stream(server, key)[1] for _ in range(STREAM_PASSES))
        if metrics:
            _scrape(server)
    return rate


def _ingest_rate(events: Sequence[pb.MessageEvent], metrics: bool) -> float:
    with fresh_sqlite() as (database, key), ServerProcess(database, metrics=metrics) as server:
        rate = live.ingest_stream_rate(server.address, key, events)
        if metrics:
            _scrape(server)
    return rate


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
    cases = (
        ("SearchMessageEvents, the whole store", lambda m: _stream_rate(path, key, m)),
        (
            f"IngestMessageEventsStream, {len(events):,} new events",
            lambda m: _ingest_rate(events, m),
        ),
    )
    for label, measure in cases:
        ratios, offs, ons = [], [], []
        for i in range(rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            rates = {m: measure(m) for m in order}
            offs.append(rates[False])
            ons.append(rates[True])
            ratios.append(rates[True] / rates[False])
        print(
            f"{label:<48} off {statistics.median(offs):>9,.0f} ev/s"
            f"  on {statistics.median(ons):>9,.0f} ev/s"
            f"  ratio median {statistics.median(ratios):.3f}"
            f" (min {min(ratios):.3f}, max {max(ratios):.3f})"
        )
