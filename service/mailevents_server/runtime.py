"""Interpreter settings for a serving process: how often threads hand over the
GIL, and how often the garbage collector runs.

Both were measured with `make bench` (ingest section) on 2 cores:

- The GIL is handed over every 1 ms instead of 5: the SQLite writer thread
  wants it back after each statement, and ingest was ~20% faster when it did
  not wait out the default 5 ms behind the event loop.
- The collector's first generation runs after 50,000 new container objects
  instead of 700, and what exists once the process has started is frozen out
  of its scans. A 1,000-event batch makes some 50,000 objects (JSON, rows,
  results); at 700 the collector ran dozens of times per batch and took
  ~15% of the event loop's time and ~7% of a worker's, to find no cycles:
  ingest makes none. With these thresholds: ~1 µs an event less in the event
  loop, ~2-4 µs less in a webhook worker, 3-9% more events a second. At most
  some 50,000 objects of cyclic garbage wait for a collection.
"""

from __future__ import annotations

import gc
import sys

GIL_SWITCH_INTERVAL = 0.001
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """The collector settings above; call once the process has imported what it runs."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def tune_for_serving() -> None:
    """Both settings, for `mailevents serve`."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    tune_gc()
