"""Retention: events older than a window are removed on a schedule.

The store decides how (PostgreSQL drops whole partitions, SQLite deletes in
small batches through its writer); this module only parses the window and
runs `Store.delete_before` now and then. With several replicas each runs it;
the stores make concurrent runs harmless.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from mailevents_server import faults
from mailevents_server.store.base import Store

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*\Z")

#: How often retention runs: often enough that little is ever left to delete.
DEFAULT_INTERVAL = 600.0


def parse_duration(text: str) -> float:
    """Seconds of "30d", "12h", "90m", "2w" or "3600s"; "" or "0" is no retention (0)."""
    if not text.strip() or text.strip() == "0":
        return 0.0
    m = _DURATION.match(text.lower())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 12h, 2w)")
    return float(int(m.group(1)) * _UNITS[m.group(2)])


async def run_once(store: Store, window_seconds: float) -> int:
    """Delete what is older than the window now; returns how many events went."""
    cutoff_us = int((time.time() - window_seconds) * 1_000_000)
    try:
        removed = await store.delete_before(cutoff_us)
    except Exception:
        store.metrics.retention_runs.labels("error").inc()
        raise
    store.metrics.retention_runs.labels("ok").inc()
    store.metrics.retention_deleted.inc(removed)
    if removed:
        log.info("retention removed %d events older than %.0fs", removed, window_seconds)
    return removed


async def run_forever(
    store: Store, window_seconds: float, interval: float = DEFAULT_INTERVAL
) -> None:
    """Run retention now and then every `interval` seconds until cancelled."""
    while True:
        try:
            await run_once(store, window_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            faults.log_failure(log, f"retention run failed; retrying in {interval:.0f}s", exc)
        await asyncio.sleep(interval)
