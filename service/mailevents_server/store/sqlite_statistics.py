"""Keeping SQLite's query planner statistics fresh as the store grows or shrinks.

SQLite picks the plans our indexes are made for only when it has statistics
for every index (tests/test_query_plans.py checks the shapes). The store
checks them at open and again whenever its ids have advanced far enough for
the store to have grown ten times since; the check (and ANALYZE when due)
runs on the writer's thread between two commits. Apart from the store and the
writer because it is neither reading nor writing events: one rule (when),
one job (`refresh_statistics`) and the small schedule that joins them.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import NamedTuple

from mailevents_server import faults
from mailevents_server.metrics import Metrics
from mailevents_server.store.sqlite_writer import Writer

log = logging.getLogger(__name__)

#: ANALYZE reads about this many rows per index: approximate statistics, made
#: in a fraction of a second whatever the size (0.5 s on 1M events).
ANALYSIS_LIMIT = 1000
#: Below this many events any plan is fast, and statistics are not made.
ANALYZE_FROM_ROWS = 10_000


class StatisticsCheck(NamedTuple):
    """What `refresh_statistics` found and did."""

    analyzed: bool  # it ran ANALYZE
    rows: int  # events in the store


def refresh_statistics(conn: sqlite3.Connection) -> StatisticsCheck:
    """ANALYZE when the planner's statistics are missing, incomplete or stale.

    SQLite picks the plans our indexes are made for when it has statistics
    for every index (tests/test_query_plans.py checks the shapes). With some
    missing, e.g. for an index a migration added after an ANALYZE, it took a
    new index for a whole-tenant read and sorted every event; with none, it
    reads a rare bulk_email_id's events by scanning time order. So: complete
    statistics, refreshed when the store has grown (or shrunk) ten times since
    they were made. The store checks at open, and again whenever its ids have
    advanced far enough for that to have happened (`next_check_after`).
    """
    rows = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    indexes = {
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        )
    }
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()
    analyzed: dict[str, int] = {}
    if has_table:
        for index, stat in conn.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'events'"):
            analyzed[str(index)] = int(str(stat).split()[0])
    if not analyzed and rows < ANALYZE_FROM_ROWS:
        return StatisticsCheck(False, rows)
    counted = max(analyzed.values(), default=0)
    fresh = indexes <= analyzed.keys() and counted * 10 >= rows and rows * 10 >= counted
    if fresh:
        return StatisticsCheck(False, rows)
    conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
    conn.execute("ANALYZE")
    return StatisticsCheck(True, rows)


def next_check_after(rows: int) -> int:
    """How many new ids may be given before the store could have grown enough for
    `refresh_statistics` to act: to ANALYZE_FROM_ROWS events, or ten times."""
    return max(ANALYZE_FROM_ROWS, rows * 10) - rows


class Statistics:
    """When the running store checks its statistics again, and the check in flight.

    `writer` gives the store's writer, `next_id` the id its next event gets.
    """

    def __init__(
        self,
        writer: Callable[[], Writer],
        next_id: Callable[[], int],
        metrics: Callable[[], Metrics],
    ) -> None:
        self._writer = writer
        self._next_id = next_id
        self._metrics = metrics
        #: The id from which the planner's statistics are checked again.
        self._check_at = 0
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> None:
        """`refresh_statistics`, and when to check again."""
        check = await self._writer().run(refresh_statistics)
        if check.analyzed:
            log.info("refreshed the query planner's statistics (%d events)", check.rows)
            self._metrics().statistics_refreshes.inc()
        self._check_at = self._next_id() + next_check_after(check.rows)

    def committed(self) -> None:
        """After a commit: check again in the background if the store may have grown enough."""
        if self._next_id() >= self._check_at and self._task is None:
            self._task = asyncio.create_task(self._refresh())

    async def wait(self) -> None:
        """Let a check in flight finish (before the writer closes)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _refresh(self) -> None:
        """Keep the planner's statistics as fresh while running as at open.

        Runs on the writer's thread between two commits (its executor takes
        one job at a time), after this commit's callers have their answer.
        """
        try:
            await self.check()
        except Exception as exc:
            faults.log_failure(log, "refreshing the query planner's statistics failed", exc)
            self._check_at = self._next_id() + ANALYZE_FROM_ROWS
        finally:
            self._task = None
