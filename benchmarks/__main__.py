"""`make bench` (BENCH_ARGS="--events 200000" for a quicker run).

Every figure is printed next to the raw floor measured in the same run on the
same data, because absolute numbers mean little across machines.

Sections: stream (SearchMessageEvents vs plain sqlite3), rest (the REST shim's
big pages vs that stream), ingest (streaming RPC and webhook vs executemany),
tail (live-tail latency, idle and loaded); `--store postgres` runs stream and
postgres (the same events in a throwaway PostgreSQL beside SQLite); `--store
citus` runs citus (writes of 1 and of 4 tenants, with their lock waits, on a
throwaway Citus cluster beside PostgreSQL).
`--sections` picks others, e.g. BENCH_ARGS="--sections ingest,tail".
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks import citus, data, ingest, rest, stream, versus
from benchmarks.process import MemorySampler, ServerProcess

FIVE_FIELDS = ["id", "type", "timestamp", "recipient", "campaign_id"]


SECTIONS = {
    "sqlite": ["stream", "rest", "ingest", "tail"],
    "postgres": ["stream", "postgres"],
    "citus": ["citus"],
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--store",
        choices=sorted(SECTIONS),
        default="sqlite",
        help="postgres: also start a throwaway PostgreSQL (scripts/postgres.sh), load the"
        " same events and compare it with SQLite; citus: writes of several tenants on a"
        " throwaway Citus cluster (scripts/citus.sh) beside PostgreSQL",
    )
    parser.add_argument(
        "--sections",
        help="comma-separated, from stream,rest,ingest,tail,postgres,citus"
        f" (default {','.join(SECTIONS['sqlite'])}; with --store postgres"
        f" {','.join(SECTIONS['postgres'])})",
    )
    parser.add_argument(
        "--ingest-events", type=int, default=50_000, help="new events per ingest measurement"
    )
    args = parser.parse_args()
    sections = args.sections.split(",") if args.sections else SECTIONS[args.store]
    if unknown := set(sections) - {"stream", "rest", "ingest", "tail", "postgres", "citus"}:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    if sections == ["citus"]:
        citus.bench_citus(ingest.demo_events(args.ingest_events, seed=11))
        return
    path, key = data.database_for(args.events)
    print(f"# mailevents bench: {args.events:,} demo events in {path}\n")
    figures = bench_stream(path, key, args.events) if "stream" in sections else {}
    if "rest" in sections:
        bench_rest(path, key, figures)
    needs_new = {"ingest", "postgres"} & set(sections)
    new_events = ingest.demo_events(args.ingest_events, seed=11) if needs_new else []
    if "ingest" in sections:
        ingest.bench_ingest(new_events)
    if "tail" in sections:
        ingest.bench_tail()
    if "postgres" in sections:
        versus.bench_postgres(path, key, new_events)
    if "citus" in sections:
        citus.bench_citus(new_events or ingest.demo_events(args.ingest_events, seed=11))


def bench_stream(path: Path, key: str, total: int) -> dict[str, float]:
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
    return {"floor": floor, "stream": results[0][2]}


def bench_rest(path: Path, key: str, figures: dict[str, float]) -> None:
    if not figures:  # no stream section: measure the two figures compared with
        _, floor = stream.raw_floor(path)
        with ServerProcess(path) as server:
            stream.stream(server, key, max_events=10_000)
            figures = {"floor": floor, "stream": stream.stream(server, key)[1]}
    floor, grpc_rate = figures["floor"], figures["stream"]
    cases = [
        (
            f"SparkPost GET /api/v1/message-events, {rest.SPARKPOST_PAGE:,}/page",
            rest.sparkpost_target(path),
            {"Authorization": key},
        ),
        (
            f"Tastypie GET /api/messageevent/, {rest.TASTYPIE_PAGE:,}/page",
            rest.tastypie_target(key),
            {},
        ),
    ]
    with ServerProcess(path, http=True) as server:
        results = [
            (label, *rest.page_rate(server, target, headers)) for label, target, headers in cases
        ]
    print("\n## REST shim: the first page, 5 requests in a row on one connection (after one)")
    print(f"{'raw floor: plain sqlite3, the whole store':<56} {floor:>10,.0f} rows/s")
    print(f"{'SearchMessageEvents: gRPC stream of it, parsed':<56} {grpc_rate:>10,.0f} ev/s")
    for label, per_second, rate, _ in results:
        print(
            f"{label:<56} {rate:>10,.0f} ev/s = {rate / grpc_rate:4.2f} x stream"
            f" = {rate / floor:4.2f} x floor ({per_second:.1f} req/s)"
        )
    print("(timed: request to last body byte; the client's JSON parse is not timed)")


def _mem(peak: dict[str, int]) -> str:
    return ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in sorted(peak.items()))


if __name__ == "__main__":
    main()
