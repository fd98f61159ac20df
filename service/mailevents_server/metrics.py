"""Every Prometheus metric the server exports, in one place (docs/operations.md lists them).

One `Metrics` per server instance, each with its own `CollectorRegistry`, so
that several servers in one process (the tests) count separately. Hot paths
count per batch or per call, never per event: a counter's `inc(n)` is one
lock and one add whatever `n` is.

Labels are bounded: gRPC method and status code, REST dialect, route and
HTTP status, ingest path and outcome, auth refusal reason. A tenant label is
added only when asked for (`--metrics-tenant-label`), for deployments with
few tenants.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Seconds, for calls and commits: 0.5 ms to 60 s.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
#: Seconds, for streams that may run for hours.
STREAM_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)
#: Events per commit or per batch.
SIZE_BUCKETS = (1, 10, 100, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000)
#: Ids (events) a live stream is behind the commit position.
LAG_BUCKETS = (0, 1, 10, 100, 1000, 10_000, 100_000, 1_000_000)


class Metrics:
    """The metric objects of one server, registered in `registry`."""

    def __init__(self, *, tenant_label: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tenant_label = tenant_label
        r = self.registry
        t: tuple[str, ...] = ("tenant",) if tenant_label else ()
        self.grpc_requests = Counter(
            "mailevents_grpc_requests",
            "gRPC calls finished, by method and status code",
            ("method", "code", *t),
            registry=r,
        )
        self.grpc_seconds = Histogram(
            "mailevents_grpc_handling_seconds",
            "Time a unary gRPC call took, from its start to its answer",
            ("method",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.grpc_stream_seconds = Histogram(
            "mailevents_grpc_stream_duration_seconds",
            "How long a streaming gRPC call lasted",
            ("method",),
            buckets=STREAM_BUCKETS,
            registry=r,
        )
        self.grpc_stream_events = Counter(
            "mailevents_grpc_stream_events",
            "Events sent by streaming gRPC calls",
            ("method",),
            registry=r,
        )
        self.http_requests = Counter(
            "mailevents_http_requests",
            "REST shim and webhook requests answered, by dialect, route and HTTP status",
            ("dialect", "route", "status"),
            registry=r,
        )
        self.http_seconds = Histogram(
            "mailevents_http_request_duration_seconds",
            "Time a REST shim or webhook request took",
            ("dialect", "route"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_events = Counter(
            "mailevents_ingest_events",
            "Events received for ingest, by path and outcome (stored, duplicate, rejected)",
            ("path", "outcome", *t),
            registry=r,
        )
        self.ingest_ack_seconds = Histogram(
            "mailevents_ingest_ack_seconds",
            "Time from a batch's receipt to its durable acknowledgement",
            ("path",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_events = Histogram(
            "mailevents_store_commit_events",
            "Events in one group-commit transaction",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.commit_batches = Histogram(
            "mailevents_store_commit_batches",
            "Callers' batches merged into one group-commit transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "mailevents_store_commit_seconds",
            "Time one group-commit transaction took (until durable)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_failures = Counter(
            "mailevents_store_commit_failures",
            "Group-commit transactions that failed (every caller in them got an error)",
            registry=r,
        )
        self.live_streams = Gauge(
            "mailevents_live_streams",
            "Live streams open now (watches and searches that follow)",
            registry=r,
        )
        self.live_lag = Histogram(
            "mailevents_live_lag_events",
            "How far behind the commit position a live stream was when it sent a batch (ids)",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.live_heartbeats = Counter(
            "mailevents_live_heartbeats",
            "Heartbeats (batches without events) sent by live streams",
            registry=r,
        )
        self.statistics_refreshes = Counter(
            "mailevents_store_statistics_refreshes",
            "Query-planner statistics refreshes (ANALYZE) run by the store",
            registry=r,
        )
        self.retention_deleted = Counter(
            "mailevents_retention_deleted_events",
            "Events removed by retention",
            registry=r,
        )
        self.retention_runs = Counter(
            "mailevents_retention_runs",
            "Retention runs, by result (ok, error)",
            ("result",),
            registry=r,
        )
        self.worker_queue = Gauge(
            "mailevents_worker_jobs_in_flight",
            "Jobs handed to the worker pool and not finished (queued or running)",
            registry=r,
        )
        self.worker_seconds = Histogram(
            "mailevents_worker_job_seconds",
            "Time a worker-pool job took, queueing included, by job",
            ("job",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.auth_refusals = Counter(
            "mailevents_auth_refusals",
            "Calls refused for want of a valid API key, by reason",
            ("reason",),
            registry=r,
        )
        self._store_collector = _StoreCollector()
        r.register(self._store_collector)

    def watch_store(self, store: Any) -> None:
        """Report `store`'s sizes and pool at scrape time (see `_StoreCollector`)."""
        self._store_collector.store = store

    def set_database_bytes(self, size: float) -> None:
        """The database size read before a scrape (stores whose size takes a query)."""
        self._store_collector.database_bytes = size

    def tenant(self, tenant_id: int | None) -> tuple[str, ...]:
        """The tenant label's value, when that label is on; () otherwise."""
        if not self.tenant_label:
            return ()
        return (str(tenant_id) if tenant_id is not None else "",)

    def count_ingest(
        self, path: str, stored: int, duplicates: int, rejected: int, tenant_id: int | None = None
    ) -> None:
        """One batch's outcome: three adds, whatever its size."""
        t = self.tenant(tenant_id)
        if stored:
            self.ingest_events.labels(path, "stored", *t).inc(stored)
        if duplicates:
            self.ingest_events.labels(path, "duplicate", *t).inc(duplicates)
        if rejected:
            self.ingest_events.labels(path, "rejected", *t).inc(rejected)


class _StoreCollector(Collector):
    """Database size, WAL size and connection pool, read when Prometheus scrapes.

    Nothing is counted on the hot path: SQLite's files are `stat`ed, and
    asyncpg's pools report their sizes (PostgreSQL's database size is read by
    `refresh_store_sizes` before each scrape, since it needs a query).
    """

    def __init__(self) -> None:
        self.store: Any = None
        #: Set by the scrape handler for stores whose sizes need a query.
        self.database_bytes: float | None = None

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        store = self.store
        if store is None:
            return
        path = getattr(store, "path", None)
        size = GaugeMetricFamily(
            "mailevents_store_database_bytes", "Size of the database (SQLite: its file)"
        )
        if isinstance(path, str):
            size.add_metric([], _file_size(path))
            wal = GaugeMetricFamily(
                "mailevents_store_wal_bytes", "Size of SQLite's write-ahead log file"
            )
            wal.add_metric([], _file_size(path + "-wal"))
            yield size
            yield wal
        elif self.database_bytes is not None:
            size.add_metric([], self.database_bytes)
            yield size
        pools: Callable[[], dict[str, Any]] | None = getattr(store, "pools", None)
        if pools is not None:
            family = GaugeMetricFamily(
                "mailevents_store_pool_connections",
                "PostgreSQL connections by pool and state (in_use, idle, max)",
                labels=("pool", "state"),
            )
            for name, pool in pools().items():
                size_now, idle = pool.get_size(), pool.get_idle_size()
                family.add_metric([name, "in_use"], size_now - idle)
                family.add_metric([name, "idle"], idle)
                family.add_metric([name, "max"], pool.get_max_size())
            yield family


def _file_size(path: str) -> float:
    try:
        return float(os.stat(path).st_size)
    except OSError:
        return 0.0


#: Metrics for code that runs without a server's (tools, a store opened by `keys`):
#: counted, never exported.
UNSERVED = Metrics()
