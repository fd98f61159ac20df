"""`--store postgres`: the same events in PostgreSQL and SQLite, side by side, one run."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from benchmarks import ingest, live, pg, stream
from benchmarks.process import ServerProcess
from mailevents.v1 import message_event_pb2 as pb

PAGE = 1000


def bench_postgres(path: Path, key: str, events: Sequence[pb.MessageEvent]) -> None:
    """`path`/`key`: the SQLite bench database; `events`: new events for the ingest rows."""
    bodies = live.sparkpost_bodies(events)
    with pg.server() as admin_url, pg.scratch_database(admin_url) as url:
        tenant_id, pg_key = pg.copy_from_sqlite(path, url)
        rows, lite_floor = stream.raw_floor(path)
        pg_rows, pg_floor = pg.floor(url, tenant_id)
        assert pg_rows == rows, f"PostgreSQL has {pg_rows:,} rows, SQLite {rows:,}"
        lite = _reads(path, key)
        on_pg = _reads(url, pg_key)
        ingest_floor = live.executemany_floor(events)
        lite_in = ingest.ingest_rates(ingest.fresh_sqlite, events, bodies)
        pg_in = ingest.ingest_rates(functools.partial(pg.fresh, admin_url), events, bodies)
        server_version = pg.version(url)
    print(f"\n## PostgreSQL {server_version} beside SQLite: the same {rows:,} events, this run")
    print(f"{'':<46} {'SQLite':>22} {'PostgreSQL':>22} {'PG/SQLite':>9}")
    _row("floor: plain sqlite3 / asyncpg, rows/s", (lite_floor, None), (pg_floor, None))
    _row(
        "SearchMessageEvents, all, parsed, ev/s",
        (lite["stream"], lite_floor),
        (on_pg["stream"], pg_floor),
    )
    _row(
        f"ListMessageEvents, {PAGE}/page, pages/s",
        (lite["pages"], lite_floor / PAGE),
        (on_pg["pages"], pg_floor / PAGE),
    )
    print(f"(x: of the same store's read floor; a page is {PAGE} events)")
    print(f"\n{len(events):,} new demo events into a fresh database each:")
    _row("floor: plain sqlite3 executemany, ev/s", (ingest_floor, None), (None, None))
    _row(
        "IngestMessageEventsStream, ev/s",
        (lite_in["stream"], ingest_floor),
        (pg_in["stream"], ingest_floor),
    )
    _row(
        "POST /webhooks/sparkpost, ev/s",
        (lite_in["webhook"], ingest_floor),
        (pg_in["webhook"], ingest_floor),
    )
    print(f"(x: of the executemany floor; target >= {ingest.TARGET} x)")


def _reads(database: Path | str, key: str) -> dict[str, float]:
    with ServerProcess(database) as server:
        stream.stream(server, key, max_events=10_000)  # warm up
        _, rate = stream.stream(server, key)
        pages = stream.list_pages(server, key, page_size=PAGE)
    return {"stream": rate, "pages": pages}


def _row(
    label: str, lite: tuple[float | None, float | None], on_pg: tuple[float | None, float | None]
) -> None:
    cells = [_cell(*lite), _cell(*on_pg)]
    ratio = f"{on_pg[0] / lite[0]:>9.2f}" if lite[0] and on_pg[0] else ""
    print(f"{label:<46} {cells[0]:>22} {cells[1]:>22} {ratio}".rstrip())


def _cell(value: float | None, floor: float | None) -> str:
    if value is None:
        return ""
    if floor is None:
        return f"{value:,.0f}"
    return f"{value:,.0f} = {value / floor:4.2f} x"
