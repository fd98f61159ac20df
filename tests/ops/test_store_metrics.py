"""Store, worker-pool, retention and live-lag metrics after real work."""

from __future__ import annotations

import asyncio
import time

from factories import events

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server import retention
from ops.conftest import Ops
from ops.test_metrics import value


async def test_large_batches_are_worker_jobs_and_retention_counts_deletions(ops: Ops) -> None:
    old = events(300, prefix="old")  # 2023: older than any window below; > 256: a worker job
    await ops.stub.IngestMessageEvents(
        spb.IngestMessageEventsRequest(events=old), metadata=ops.metadata()
    )
    window = time.time() - 1_700_000_000 - 3600  # everything above is older than this
    assert await retention.run_once(ops.running.store, window) == 300

    m = await ops.scrape()
    assert value(m, "mailevents_worker_job_seconds_count", job="_prepare_bytes") == 1
    assert value(m, "mailevents_worker_jobs_in_flight") == 0
    assert value(m, "mailevents_retention_deleted_events_total") == 300
    assert value(m, "mailevents_retention_runs_total", result="ok") == 1


async def test_live_lag_is_observed_per_batch(ops: Ops) -> None:
    watch = ops.stub.WatchMessageEvents(
        spb.WatchMessageEventsRequest(batch_size=10), metadata=ops.metadata()
    )
    await watch.read()  # announced: the watch is level with the store
    await ops.stub.IngestMessageEvents(
        spb.IngestMessageEventsRequest(events=events(25, prefix="lag")), metadata=ops.metadata()
    )
    received = 0
    while received < 25:
        received += len((await watch.read()).events)
    watch.cancel()
    # A stream's totals are recorded as its handler ends, a moment after the cancel.
    for _ in range(100):
        m = await ops.scrape()
        if value(m, "mailevents_grpc_stream_events_total", method=watch_method()):
            break
        await asyncio.sleep(0.05)
    # Batches of 10, 10 and 5: 15 and 5 behind the commit position, then level.
    assert value(m, "mailevents_live_lag_events_count") == 3
    assert value(m, "mailevents_live_lag_events_sum") == 20
    assert value(m, "mailevents_grpc_stream_events_total", method=watch_method()) == 25


def watch_method() -> str:
    from mailevents_server.server import SERVICE_NAME

    return f"/{SERVICE_NAME}/WatchMessageEvents"
