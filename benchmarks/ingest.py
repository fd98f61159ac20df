"""Ingest throughput and live-tail latency sections of `make bench` (live.py measures)."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence

import grpc

from benchmarks import live
from benchmarks.process import ServerProcess
from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc
from mailevents_server.demo import generate_events

#: A fresh, empty store for one measurement: yields (`serve --database` value, API key).
Fresh = Callable[[], contextlib.AbstractContextManager[tuple[str, str]]]

TARGET = 0.5  # issue 4: ingest at least half as fast as plain executemany


@contextlib.contextmanager
def fresh_sqlite() -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="mailevents-bench-") as directory:
        path, key = live.fresh_database(directory)
        yield str(path), key


def demo_events(count: int, seed: int) -> list[pb.MessageEvent]:
    return list(generate_events(count, seed=seed))


def count(server: ServerProcess, key: str) -> int:
    """How many events the server's store holds for the key's tenant."""
    with grpc.insecure_channel(server.address) as channel:
        stub = sgrpc.MessageEventServiceStub(channel)  # type: ignore[no-untyped-call]
        response = stub.CountMessageEvents(
            spb.CountMessageEventsRequest(), metadata=(("authorization", f"Bearer {key}"),)
        )
    return int(response.total)


def ingest_rates(
    fresh: Fresh, events: Sequence[pb.MessageEvent], bodies: Sequence[bytes]
) -> dict[str, float]:
    """Events/s through IngestMessageEventsStream and through POST /webhooks/sparkpost on
    the served HTTP port, each into its own fresh store."""
    with fresh() as (database, key), ServerProcess(database) as server:
        stream = live.ingest_stream_rate(server.address, key, events)
    with fresh() as (database, key), ServerProcess(database, http=True) as server:
        url = f"http://127.0.0.1:{server.http_port}/webhooks/sparkpost"
        webhook = live.webhook_rate(url, key, bodies)
        stored = count(server, key)
    assert stored == len(events), f"the webhook stored {stored} of {len(events)} events"
    return {"stream": stream, "webhook": webhook}


#: The bars: of the executemany floor, per path (median of the runs).
TARGETS = {"stream": 0.8, "webhook": 0.7}


def bench_ingest(events: Sequence[pb.MessageEvent], runs: int = 3) -> None:
    """Prints the ingest section: `runs` rounds of floor, stream and webhook, alternating,
    each path's rate and ratio to the same round's floor as median (min-max)."""
    bodies = live.sparkpost_bodies(events)  # built before any timing
    floors: list[float] = []
    ratios: dict[str, list[float]] = {"stream": [], "webhook": []}
    rates: dict[str, list[float]] = {"stream": [], "webhook": []}
    for _ in range(runs):
        floor = live.executemany_floor(events)
        floors.append(floor)
        for name, rate in ingest_rates(fresh_sqlite, events, bodies).items():
            rates[name].append(rate)
            ratios[name].append(rate / floor)
    print(
        f"\n## Ingest: {len(events):,} new demo events into a fresh SQLite database each,"
        f" {runs} rounds; median (min-max)"
    )
    print(
        f"{'floor: plain sqlite3 executemany, same schema, 10k/txn':<56} {_spread(floors, ',.0f')}"
    )
    labels = {
        "stream": "IngestMessageEventsStream, batches of 1000, window 8",
        "webhook": "POST /webhooks/sparkpost, 1000 per body, 4 at a time",
    }
    for name, label in labels.items():
        mark = "ok" if statistics.median(ratios[name]) >= TARGETS[name] else "below target"
        print(f"{label:<56} {_spread(rates[name], ',.0f')} ev/s")
        print(
            f"{'':<8}= {_spread(ratios[name], '.2f')} x floor (target >= {TARGETS[name]} x: {mark})"
        )


def _spread(values: list[float], spec: str) -> str:
    return f"{statistics.median(values):{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def bench_tail(samples: int = 500, load: int = 200_000) -> None:
    """Prints commit-to-consumer latency, idle and under a concurrent bulk ingest."""
    bulk = demo_events(load, seed=13)
    print(
        f"\n## Live tail: {samples} single-event ingests, time until a WatchMessageEvents"
        " consumer in this process has each"
    )
    heads = ("ack to consumer", "send to ack (floor)")
    print(f"{'':<44} {heads[0]:>19}   {heads[1]:>19}")
    print(f"{'':<44} {'p50':>9} {'p99':>9}   {'p50':>9} {'p99':>9}")
    notes = []
    for label, load_events in (("idle", []), ("under a concurrent bulk ingest", bulk)):
        with fresh_sqlite() as (database, key), ServerProcess(database) as server:
            t = live.tail_latency(server.address, key, samples=samples, load=load_events)
            stored = count(server, key) - samples
        tail = " ".join(f"{t[f'from_ack_{p}'] * 1000:>6.2f} ms" for p in ("p50", "p99"))
        ack = " ".join(f"{t[f'ack_{p}'] * 1000:>6.2f} ms" for p in ("p50", "p99"))
        print(f"{label:<44} {tail}   {ack}")
        if load_events:
            notes.append(_load_note(t, stored))
    print(*notes, sep="\n")
    print(
        "(ack to consumer: from the producer's IngestMessageEvents returning, i.e. after the"
        " commit,\n until the consumer has the event; negative when the consumer had it first."
        " The floor is\n the producer's own call, send to ack, which includes the commit's fsync.)"
    )


def _load_note(t: dict[str, float], stored: int) -> str:
    """How much of the probing the bulk ingest overlapped."""
    probing = f"the {t['probe_seconds']:.1f} s of probing"
    if "load_seconds" not in t:
        return f"(bulk ingest: {stored:,} events stored, still running at the end of {probing})"
    return f"(bulk ingest: {stored:,} events stored in {t['load_seconds']:.1f} s of {probing})"
