"""`make bench` (BENCH_ARGS="--events 200000" for a quicker run).

Every figure is printed next to the raw floor measured in the same run on the
same data, because absolute numbers mean little across machines.
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks import data, stream
from benchmarks.process import MemorySampler, ServerProcess

FIVE_FIELDS = ["id", "type", "timestamp", "recipient", "campaign_id"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    path, key = data.database_for(args.events)
    print(f"# mailevents bench: {args.events:,} demo events in {path}\n")
    bench_stream(path, key, args.events)


def bench_stream(path: Any, key: str, total: int) -> None:
    rows, floor = stream.raw_floor(path)
    _, typed_floor = stream.raw_floor(path, stream.TYPED_SQL)
    print("## SearchMessageEvents: the whole store, newest first, client in this process")
    print(f"{'raw floor: plain sqlite3, same query, one blob column':<56} {floor:>10,.0f} rows/s")
    print(f"{'plain sqlite3, same query, 25 typed columns':<56} {typed_floor:>10,.0f} rows/s")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("batches of 1000, client parses every event", {}),
        ("batches of 1000, client counts bytes only", {"parse": False}),
        ("batches of 5000, client parses every event", {"batch_size": 5000}),
        ("read_mask of 5 fields (projection)", {"paths": FIVE_FIELDS}),
    ]
    with ServerProcess(path) as server:
        stream.stream(server, key, max_events=10_000)  # warm up: connections, code paths
        small = max(total // 100, 1000)
        with MemorySampler(server) as small_mem:
            stream.stream(server, key, max_events=small)
        results = []
        for i, (label, kwargs) in enumerate(cases):
            with MemorySampler(server) as sampler:
                n, rate = stream.stream(server, key, **kwargs)
            if i == 0:
                big_mem = sampler  # same batch size as the small stream above
            results.append((label, n, rate))
    for label, n, rate in results:
        print(f"{label:<56} {rate:>10,.0f} ev/s = {rate / floor:4.2f} x floor ({n:,} events)")
    print(
        f"server memory, peak while streaming {small:,} events: "
        f"{_mem(small_mem.peak)}\n"
        f"server memory, peak while streaming {rows:,} events: {_mem(big_mem.peak)}\n"
        "(RssAnon is the heap a result could grow; RssFile is the database file mapped by "
        "SQLite's mmap, shared page cache rather than per-stream memory)"
    )


def _mem(peak: dict[str, int]) -> str:
    return ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in sorted(peak.items()))


if __name__ == "__main__":
    main()
