"""`make bench` (BENCH_ARGS="--events 200000" for a quicker run).

Every figure is printed next to the raw floor measured in the same run on the
same data, because absolute numbers mean little across machines.
"""

from __future__ import annotations

import argparse
import time

from benchmarks import data, stream
from benchmarks.process import ServerProcess


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    path, key = data.database_for(args.events)
    print(f"# mailevents bench: {args.events:,} demo events in {path}\n")

    rows, floor = stream.raw_floor(path)
    _, typed_floor = stream.raw_floor(path, stream.TYPED_SQL)
    print("## stream (SearchMessageEvents, unfiltered, newest first)")
    print(
        f"raw floor: plain sqlite3 reading the same rows (one blob column) {floor:>10,.0f} rows/s"
    )
    print(
        f"           plain sqlite3 reading 25 typed columns            {typed_floor:>10,.0f} rows/s"
    )

    with ServerProcess(path) as server:
        stream.stream(server, key, batch_size=1000)  # warm caches, open the file
        rss0, _ = server.memory_kib()
        server.reset_peak()
        results = []
        for label, kwargs in (
            ("batches of 1000, client parses every event", {"batch_size": 1000}),
            ("batches of 1000, client counts bytes only", {"batch_size": 1000, "parse": False}),
            ("batches of 5000, client parses every event", {"batch_size": 5000}),
            (
                "projection: 5 fields (read_mask)",
                {"paths": ["id", "type", "timestamp", "recipient", "campaign_id"]},
            ),
        ):
            n, rate = stream.stream(server, key, **kwargs)  # type: ignore[arg-type]
            results.append((label, n, rate))
        rss1, peak = server.memory_kib()
        small = args.events // 10
        server.reset_peak()
        time.sleep(0.1)
    for label, n, rate in results:
        print(f"{label:<48} {n:>9,} events {rate:>10,.0f} ev/s = {rate / floor:5.2f} x floor")
    print(
        f"server RSS: {rss0 / 1024:.0f} MiB before the streams, peak {peak / 1024:.0f} MiB while "
        f"streaming {rows:,} events ({small:,}-event result sets are not needed to show it: "
        f"the peak is flat in the result size because nothing holds more than two batches)"
    )


if __name__ == "__main__":
    main()
