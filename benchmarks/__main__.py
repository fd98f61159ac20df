"""`make bench` (BENCH_ARGS="--events 200000" for a quicker run).

Every figure is printed next to the raw floor measured in the same run on the
same data, because absolute numbers mean little across machines.

Sections: stream (SearchMessageEvents vs plain sqlite3), rest (the REST shim's
big pages vs that stream), walks (deep offset pages and whole walks of the
offset and cursor dialects vs their first pages), ingest (streaming RPC and
webhook vs executemany), tail (live-tail latency, idle and loaded), metrics
(throughput with /metrics off and on, alternating); `--store postgres` runs stream,
postgres (the same events in a throwaway PostgreSQL beside SQLite) and fault
(ingest through the client across a PostgreSQL crash, on a server of its own);
`--store citus` runs citus (writes of 1 and of 4 tenants, with their lock
waits, on a throwaway Citus cluster beside PostgreSQL).
`--sections` picks others, e.g. BENCH_ARGS="--sections ingest,tail" or
BENCH_ARGS="--sections fault" for the fault section alone.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from benchmarks import citus, data, fault, ingest, ops, rest, stream, versus, walks
from benchmarks.process import MemorySampler, ServerProcess

FIVE_FIELDS = ["id", "type", "timestamp", "recipient", "campaign_id"]


SECTIONS = {
    "sqlite": ["stream", "rest", "walks", "ingest", "tail", "metrics"],
    "postgres": ["stream", "postgres", "fault"],
    "citus": ["citus"],
}
ALL_SECTIONS = (
    "stream",
    "rest",
    "walks",
    "ingest",
    "tail",
    "metrics",
    "postgres",
    "fault",
    "citus",
)


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
        help=f"comma-separated, from {','.join(ALL_SECTIONS)}"
        f" (default {','.join(SECTIONS['sqlite'])}; with --store postgres"
        f" {','.join(SECTIONS['postgres'])})",
    )
    parser.add_argument(
        "--ingest-events", type=int, default=50_000, help="new events per ingest measurement"
    )
    parser.add_argument(
        "--stream-rounds", type=int, default=3, help="rounds of the stream section (median)"
    )
    parser.add_argument(
        "--ingest-runs", type=int, default=3, help="rounds of the ingest section (median shown)"
    )
    parser.add_argument(
        "--metrics-rounds", type=int, default=5, help="alternating off/on rounds for metrics"
    )
    args = parser.parse_args()
    sections = args.sections.split(",") if args.sections else SECTIONS[args.store]
    if unknown := set(sections) - set(ALL_SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if sections == ["fault"]:  # needs no demo database
        fault.bench_fault()
        return
    if sections == ["citus"]:  # neither
        citus.bench_citus(ingest.demo_events(args.ingest_events, seed=11))
        return

    path, key = data.database_for(args.events)
    print(f"# mailevents bench: {args.events:,} demo events in {path}\n")
    figures = (
        bench_stream(path, key, args.events, args.stream_rounds) if "stream" in sections else {}
    )
    if "rest" in sections or "walks" in sections:
        figures = _stream_figures(path, key, figures)
    if "rest" in sections:
        bench_rest(path, key, figures)
    if "walks" in sections:
        walks.bench_walks(path, key, args.events, figures["stream"])
    needs_new = {"ingest", "postgres", "metrics"} & set(sections)
    new_events = ingest.demo_events(args.ingest_events, seed=11) if needs_new else []
    if "ingest" in sections:
        ingest.bench_ingest(new_events, args.ingest_runs)
    if "tail" in sections:
        ingest.bench_tail()
    if "metrics" in sections:
        ops.bench_metrics(path, key, new_events, args.metrics_rounds)
    if "postgres" in sections:
        versus.bench_postgres(path, key, new_events)
    if "fault" in sections:
        fault.bench_fault()
    if "citus" in sections:
        citus.bench_citus(new_events or ingest.demo_events(args.ingest_events, seed=11))


def bench_stream(path: Path, key: str, total: int, rounds: int = 3) -> dict[str, float]:
    """Rounds of the floor and every case, alternating, so that a machine whose load
    changes during the run shifts the floor and the cases alike; each case's rate and
    ratio to its own round's floor are printed as median (min-max)."""
    _, typed_floor = stream.raw_floor(path, stream.TYPED_SQL)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("batches of 1000, client parses every event", {}),
        ("batches of 1000, client counts bytes only", {"parse": False}),
        ("batches of 5000, client parses every event", {"batch_size": 5000}),
        ("read_mask of 5 fields (projection)", {"paths": FIVE_FIELDS}),
    ]
    floors: list[float] = []
    rates: list[list[float]] = [[] for _ in cases]
    counts = [0] * len(cases)
    rows = 0
    with ServerProcess(path) as server:
        stream.stream(server, key, max_events=10_000)  # warm up: connections, code paths
        small = max(total // 100, 1000)
        with MemorySampler(server) as small_mem:
            stream.stream(server, key, max_events=small)
        for round_ in range(rounds):
            rows, floor = stream.raw_floor(path)
            floors.append(floor)
            for i, (_, kwargs) in enumerate(cases):
                with MemorySampler(server) as sampler:
                    counts[i], rate = stream.stream(server, key, **kwargs)
                if i == 0 and round_ == 0:
                    big_mem = sampler  # same batch size as the small stream above
                rates[i].append(rate)
    print(
        "## SearchMessageEvents: the whole store, newest first, client in this process"
        f" ({rounds} rounds, floor and cases alternating; median (min-max))"
    )
    print(f"{'raw floor: plain sqlite3, same query, one blob column':<56} {_spread(floors)} rows/s")
    print(f"{'plain sqlite3, same query, 25 typed columns':<56} {typed_floor:>10,.0f} rows/s")
    whole = rates[0]
    for (label, _), n, case in zip(cases, counts, rates, strict=True):
        of_floor = [r / f for r, f in zip(case, floors, strict=True)]
        print(f"{label:<56} {_spread(case)} ev/s ({n:,} events)")
        line = f"{'':<8}= {_spread(of_floor, '.2f')} x floor"
        if case is not whole:
            line += f", {_spread([r / w for r, w in zip(case, whole, strict=True)], '.2f')} x row 1"
        print(line)
    print(
        f"server memory, peak while streaming {small:,} events: "
        f"{_mem(small_mem.peak)}\n"
        f"server memory, peak while streaming {rows:,} events: {_mem(big_mem.peak)}\n"
        "(RssAnon is the heap a result could grow; RssFile is the database file mapped by "
        "SQLite's mmap, shared page cache rather than per-stream memory)"
    )
    return {"floor": statistics.median(floors), "stream": statistics.median(whole)}


def _spread(values: list[float], spec: str = ",.0f") -> str:
    median = statistics.median(values)
    return f"{median:>10{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def _stream_figures(path: Path, key: str, figures: dict[str, float]) -> dict[str, float]:
    """The stream section's two figures, measured here when it did not run."""
    if figures:
        return figures
    _, floor = stream.raw_floor(path)
    with ServerProcess(path) as server:
        stream.stream(server, key, max_events=10_000)
        return {"floor": floor, "stream": stream.stream(server, key)[1]}


def bench_rest(path: Path, key: str, figures: dict[str, float]) -> None:
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
