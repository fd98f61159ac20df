"""The SQLite query plans of the main query shapes: an index SEARCH, never a full scan.

A database is filled through the real server (a few thousand events in two
tenants, with realistic spreads of types, campaigns and recipients) and
ANALYZEd (and, separately, not); then each shape is compiled with `sqlite_sql` exactly as the store
compiles it, and `EXPLAIN QUERY PLAN` is read. A new filter, a reordered
WHERE clause or a dropped index that turns a plan into a scan fails here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_server
from factories import BASE_SECONDS, event

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.ingest import prepare
from mailevents_server.query.fields import BY_NAME
from mailevents_server.query.model import Predicate, Query
from mailevents_server.store import sqlite_sql, sqlite_statistics
from mailevents_server.store.sqlite import SQLiteStore
from mailevents_server.store.sqlite_schema import MIGRATIONS

N = 5000
ACME = 1  # tenant ids in creation order (conftest creates acme, then other)
MINUTE_US = 60 * 1_000_000
T0_US = BASE_SECONDS * 1_000_000
TYPES = (
    [pb.EVENT_TYPE_INJECTION] * 40
    + [pb.EVENT_TYPE_DELIVERY] * 35
    + [pb.EVENT_TYPE_OPEN] * 12
    + [pb.EVENT_TYPE_CLICK] * 6
    + [pb.EVENT_TYPE_BOUNCE] * 5
    + [pb.EVENT_TYPE_DELAY] * 2
)


def _events(count: int, prefix: str) -> list[pb.MessageEvent]:
    return [
        event(
            f"{prefix}{i}",
            ts=BASE_SECONDS + i * 60,
            type=TYPES[i % len(TYPES)],
            campaign_id=f"camp{i % 40}",
            template_id=f"tpl{i % 15}",
            recipient=f"user{i % 700}@example{i % 9}.com",
            message_id=f"msg{i // 3}",
            transmission_id=f"tx{i % 120}",
            bulk_email_id=i % 120,
            send_email_id=i // 3,
            contact_id=i % 700,
        )
        for i in range(count)
    ]


async def _fill(database: str) -> None:
    server = await make_server(database)
    try:
        assert (await server.ingest(_events(N, "a"))).stored == N
        other = await server.ingest(_events(1000, "o"), key=server.other_api_key)
        assert other.stored == 1000
    finally:
        await server.channel.close()
        await server.running.stop(grace=0)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(Path(tmp_path_factory.mktemp("plans")) / "events.db")
    asyncio.run(_fill(path))
    return path


def _copy(filled: str, *, analyzed: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    with sqlite3.connect(filled) as source:
        source.backup(conn)
    conn.execute("DROP TABLE IF EXISTS sqlite_stat1")
    if analyzed:  # as the store makes them (sqlite_statistics.refresh_statistics)
        conn.execute(f"PRAGMA analysis_limit = {sqlite_statistics.ANALYSIS_LIMIT}")
        conn.execute("ANALYZE")
        assert conn.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] > 0
    return conn


@pytest.fixture(scope="module")
def db(filled: str) -> Iterator[sqlite3.Connection]:
    """The filled database with the planner statistics the store keeps."""
    conn = _copy(filled, analyzed=True)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="module", params=["analyzed", "no statistics"])
def any_db(request: pytest.FixtureRequest, filled: str) -> Iterator[sqlite3.Connection]:
    """With and without statistics: a store that grew past ANALYZE_FROM_ROWS
    since it opened has none yet."""
    conn = _copy(filled, analyzed=request.param == "analyzed")
    try:
        yield conn
    finally:
        conn.close()


def _query(*conditions: tuple[str, Any], **kw: Any) -> Query:
    """A Query as the servicer builds it: tenant, predicates, pinned to the store's end."""
    predicates = tuple(
        Predicate(BY_NAME[name], spb.OPERATOR_EXACT, (value,)) for name, value in conditions
    )
    kw.setdefault("max_id", N)
    return Query(tenant_id=ACME, predicates=predicates, **kw)


def _window(**kw: Any) -> dict[str, Any]:
    """A time window covering most of the data, as dialects send."""
    return {"start_us": T0_US + 100 * MINUTE_US, "end_us": T0_US + 4900 * MINUTE_US, **kw}


def _count(query: Query) -> tuple[str, list[Any]]:
    clause, params = sqlite_sql.where(query, keyset=False)
    return f"SELECT count(*) FROM events WHERE {clause}", params


#: name -> (sql, params, constraint the events SEARCH must use, whether the
#: index must also deliver the order: no temp B-tree sort of every match)
SHAPES: dict[str, tuple[str, list[Any], str, bool]] = {
    "time range": (*sqlite_sql.select(_query(**_window()), limit=101), "ts>?", True),
    "time range asc": (
        *sqlite_sql.select(_query(**_window(descending=False)), limit=101),
        "ts>?",
        True,
    ),
    "time range, page n": (
        *sqlite_sql.select(_query(**_window(after=(T0_US + 2500 * MINUTE_US, 2501))), limit=101),
        "ts",
        True,
    ),
    "type + time": (
        *sqlite_sql.select(_query(("type", pb.EVENT_TYPE_BOUNCE), **_window()), limit=101),
        "type=?",
        True,
    ),
    "campaign + time": (
        *sqlite_sql.select(_query(("campaign_id", "camp7"), **_window()), limit=101),
        "campaign_id=?",
        True,
    ),
    "recipient": (
        *sqlite_sql.select(_query(("recipient", "user7@example7.com")), limit=101),
        "recipient=?",
        False,
    ),
    "message_id": (
        *sqlite_sql.select(_query(("message_id", "msg7")), limit=101),
        "message_id=?",
        False,
    ),
    "transmission_id": (
        *sqlite_sql.select(_query(("transmission_id", "tx7")), limit=101),
        "transmission_id=?",
        False,
    ),
    "template": (
        *sqlite_sql.select(_query(("template_id", "tpl7"), **_window()), limit=101),
        "template_id=?",
        False,
    ),
    "bulk_email_id": (
        *sqlite_sql.select(_query(("bulk_email_id", 7)), limit=101),
        "bulk_email_id=?",
        False,
    ),
    "bulk_email_id asc": (
        *sqlite_sql.select(_query(("bulk_email_id", 7), descending=False), limit=101),
        "bulk_email_id=?",
        False,
    ),
    "bulk_email_id by id": (
        "SELECT ts, id, data FROM events WHERE tenant_id = ? AND bulk_email_id = ? ORDER BY id",
        [ACME, 7],
        "bulk_email_id=?",
        True,
    ),
    "type_name by id": (
        "SELECT ts, id, data FROM events WHERE tenant_id = ? AND type_name = ? ORDER BY id",
        [ACME, "bounce"],
        "type_name=?",
        True,
    ),
    "count with type_name": (
        "SELECT count(*) FROM events WHERE tenant_id = ? AND type_name IN (?, ?)",
        [ACME, "bounce", "delay"],
        "type_name=?",
        False,
    ),
    "send_email_id": (
        *sqlite_sql.select(_query(("send_email_id", 7)), limit=101),
        "send_email_id=?",
        False,
    ),
    # The store's point lookups (SQLiteStore.get) and its ingest dedupe probe.
    "get by id": (
        "SELECT ts, id, data FROM events WHERE tenant_id = ? AND id = ?",
        [ACME, 7],
        "rowid=?",
        False,
    ),
    "get by event_id": (
        "SELECT ts, id, data FROM events WHERE tenant_id = ? AND event_id = ?",
        [ACME, "a7"],
        "event_id=?",
        False,
    ),
    "ingest dedupe": (
        "SELECT event_id, id FROM events WHERE tenant_id = ? AND event_id IN (?, ?, ?)",
        [ACME, "a1", "a2", "x"],
        "event_id=?",
        False,
    ),
    "count with type": (
        *_count(_query(("type", pb.EVENT_TYPE_BOUNCE))),
        "type=?",
        False,
    ),
    "count with type + time": (
        *_count(_query(("type", pb.EVENT_TYPE_BOUNCE), **_window())),
        "type=?",
        False,
    ),
    "count time range": (*_count(_query(**_window())), "ts>?", False),
}

if hasattr(sqlite_sql, "select_after"):
    # Live streams follow a tenant's tail in commit order.
    SHAPES["live tail"] = (
        *sqlite_sql.select_after(_query(("type", pb.EVENT_TYPE_BOUNCE)), N - 50, 1000),
        "rowid>?",
        True,
    )

_SEARCH = re.compile(
    r"SEARCH events USING (?:COVERING INDEX \w+|INDEX \w+|INTEGER PRIMARY KEY) \((?P<c>[^)]*)\)"
)


def _plan(db: sqlite3.Connection, sql: str, params: list[Any]) -> list[str]:
    return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_plan_searches_an_index(db: sqlite3.Connection, shape: str) -> None:
    sql, params, constraint, ordered = SHAPES[shape]
    plan = _plan(db, sql, params)
    shown = f"{sql}\n" + "\n".join(plan)
    assert not [d for d in plan if d.startswith("SCAN events")], shown
    searches = [m for m in map(_SEARCH.search, plan) if m]
    assert searches, shown
    used = searches[0]["c"]
    # The search narrows by more than the tenant: tenant-only ranges scan a tenant.
    assert used.replace("tenant_id=?", "").strip(" AND"), shown
    assert constraint in used, shown
    if "INTEGER PRIMARY KEY" not in plan[0] and "ingest" not in shape and "get" not in shape:
        assert "tenant_id=?" in used, shown
    if ordered:
        assert not [d for d in plan if "TEMP B-TREE" in d], shown


#: A whole tenant, as a search without filters or window reads it (pinned to
#: the store's end by max_id, as every search is).
WHOLE_TENANT: dict[str, tuple[str, list[Any]]] = {
    "newest first": sqlite_sql.select(_query()),
    "newest first, first page": sqlite_sql.select(_query(), limit=1000),
    "oldest first": sqlite_sql.select(_query(descending=False)),
    "by id (Tastypie)": sqlite_sql.select(_query(by_id=True, descending=False), limit=21),
    # Deep offset pages: the skip is an OFFSET over the same index read.
    "newest first, skipped": sqlite_sql.select(_query(skip=3000), limit=1000),
    "by id (Tastypie), skipped": sqlite_sql.select(
        _query(by_id=True, descending=False, skip=3000), limit=1000
    ),
}


#: Mixed directions (Tastypie's order_by=-event_timestamp&order_by=id), first
#: and deep pages: the index gives the timestamps, only runs of equal ones sort.
MIXED: dict[str, tuple[str, list[Any]]] = {
    "newest first, ids up": sqlite_sql.select(_query(mixed=True), limit=1000),
    "oldest first, ids down, page n": sqlite_sql.select(
        _query(descending=False, mixed=True, after=(T0_US + 2500 * MINUTE_US, 2501)), limit=1000
    ),
    "newest first, ids up, skipped": sqlite_sql.select(_query(mixed=True, skip=3000), limit=1000),
}


@pytest.mark.parametrize("shape", sorted(MIXED))
def test_a_mixed_order_sorts_only_runs_of_equal_timestamps(
    any_db: sqlite3.Connection, shape: str
) -> None:
    sql, params = MIXED[shape]
    plan = _plan(any_db, sql, params)
    shown = f"{sql}\n" + "\n".join(plan)
    assert "events_ts" in plan[0] and not plan[0].startswith("SCAN events"), shown
    assert [d for d in plan if "TEMP B-TREE" in d] == ["USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"]
    if "page n" in shape:
        assert "ts<?" in plan[0] or "ts>?" in plan[0], shown


@pytest.mark.parametrize("shape", sorted(WHOLE_TENANT))
def test_a_whole_tenant_is_read_in_index_order(any_db: sqlite3.Connection, shape: str) -> None:
    # The first events come at once, with no sort of every event first: the
    # snapshot bound (id <= max_id) must not make the planner read the tenant
    # by rowid and sort it, as it did once statistics existed.
    sql, params = WHOLE_TENANT[shape]
    plan = _plan(any_db, sql, params)
    shown = f"{sql}\n" + "\n".join(plan)
    assert not [d for d in plan if "TEMP B-TREE" in d or d.startswith("SCAN events")], shown
    index = "events_tenant" if "by id" in shape else "events_ts"
    assert index in plan[0], shown
    if "skipped" in shape:  # the skip steps over a covering index, inside
        assert sql.count(" OFFSET ?") == 1 and 2999 in params, shown
        subquery = plan[plan.index("SCALAR SUBQUERY 1") + 1]
        assert "USING COVERING INDEX " + index in subquery, shown
        if "by id" in shape:  # the snapshot bound is a range, not a test per entry
            assert "rowid<?" in subquery, shown


def test_a_skip_returns_the_rows_an_offset_would(db: sqlite3.Connection) -> None:
    for base in (_query(), _query(by_id=True, descending=False), _query(**_window())):
        every = db.execute(*sqlite_sql.select(base)).fetchall()
        sql, params = sqlite_sql.select(dataclasses.replace(base, skip=1234), limit=50)
        assert db.execute(sql, params).fetchall() == every[1234:1284]


def test_the_plan_check_detects_a_missing_index(tmp_path: Path, db: sqlite3.Connection) -> None:
    """The check above really detects scans: without the campaign index it is one."""
    sql, params, constraint, _ = SHAPES["campaign + time"]
    copy = sqlite3.connect(str(tmp_path / "copy.db"))
    db.backup(copy)
    copy.execute("DROP INDEX events_campaign_ts")
    plan = _plan(copy, sql, params)
    used = [m["c"] for m in map(_SEARCH.search, plan) if m]
    assert not used or constraint not in used[0]
    copy.close()


# -- page N costs what page 1 costs -------------------------------------------


def _vm_steps(db: sqlite3.Connection, sql: str, params: list[Any]) -> tuple[int, int]:
    """How many SQLite VM instructions (in hundreds) a query runs, and its row count."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    db.set_progress_handler(tick, 100)
    try:
        rows = db.execute(sql, params).fetchall()
    finally:
        db.set_progress_handler(None, 100)
    return steps, len(rows)


def _page(
    depth: int, descending: bool, windowed: bool, conditions: tuple[Any, ...]
) -> tuple[str, list[Any]]:
    after = None
    if depth:
        i = N - 1 - depth if descending else depth
        after = (T0_US + i * MINUTE_US, i + 1)  # ids are 1-based in ingest order
    kw = _window() if windowed else {}
    query = _query(*conditions, after=after, descending=descending, **kw)
    return sqlite_sql.select(query, limit=101)


@pytest.mark.parametrize("descending", [True, False], ids=["desc", "asc"])
@pytest.mark.parametrize("windowed", [False, True], ids=["open", "window"])
@pytest.mark.parametrize(
    "conditions", [(), (("type", pb.EVENT_TYPE_INJECTION),)], ids=["all", "type"]
)
def test_deep_page_costs_what_the_first_page_costs(
    db: sqlite3.Connection, descending: bool, windowed: bool, conditions: tuple[Any, ...]
) -> None:
    """Keyset paging: the cursor bounds the index range, so page N reads ~one page of rows.

    Measured in VM instructions, which are deterministic (not time)."""
    first, first_rows = _vm_steps(db, *_page(0, descending, windowed, conditions))
    deep, deep_rows = _vm_steps(db, *_page(4000, descending, windowed, conditions))
    assert first_rows == 101 and deep_rows == 101
    assert deep <= 2 * first + 5, (
        first,
        deep,
        _plan(db, *_page(4000, descending, windowed, conditions)),
    )


async def _store_with_events(path: str, count: int) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        tenant = await store.create_key("acme", "h")
        ready, _ = prepare(_events(count, "s"))
        await store.write(tenant, ready)
    finally:
        await store.close()


def _statistics(path: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            return set()
        return {row[0] for row in conn.execute("SELECT idx FROM sqlite_stat1")}


async def test_a_store_that_grows_gets_statistics_without_reopening(tmp_path: Path) -> None:
    """Past ANALYZE_FROM_ROWS events the running store makes the statistics itself,
    between two commits, as it would at open."""
    path = str(tmp_path / "growing.db")
    store = SQLiteStore(path)
    await store.open()
    try:
        tenant = await store.create_key("acme", "h")
        for part in range(3):
            ready, _ = prepare(_events(sqlite_statistics.ANALYZE_FROM_ROWS // 2, f"g{part}"))
            await store.write(tenant, ready)
        await store.write(tenant, prepare(_events(1, "last"))[0])  # after the refresh
        for _ in range(100):
            if "events_type_name" in _statistics(path):
                break
            await asyncio.sleep(0.05)
        assert {"events_ts", "events_type_name", "events_bulk_email"} <= _statistics(path)
    finally:
        await store.close()


async def test_opening_completes_the_planner_statistics(tmp_path: Path) -> None:
    """Statistics from before migration 2 (no row for its index) are completed
    when the store opens, and a store grown past ANALYZE_FROM_ROWS without any
    gets them; a small one is left alone."""
    path = str(tmp_path / "old.db")
    await _store_with_events(path, sqlite_statistics.ANALYZE_FROM_ROWS + 500)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX events_type_name")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("ANALYZE")
    assert "events_ts" in _statistics(path) and "events_type_name" not in _statistics(path)
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    assert {"events_ts", "events_type_name", "events_bulk_email"} <= _statistics(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        conn.execute("DROP TABLE sqlite_stat1")
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    assert "events_type_name" in _statistics(path)

    small = str(tmp_path / "small.db")
    await _store_with_events(small, 50)
    assert _statistics(small) == set()


# -- IN lists in id order (Tastypie's __in filters) -----------------------------


def _in(name: str, values: tuple[Any, ...], **kw: Any) -> Query:
    kw.setdefault("max_id", N)
    kw.setdefault("by_id", True)
    pred = Predicate(BY_NAME[name], spb.OPERATOR_IN, values)
    return Query(tenant_id=ACME, predicates=(pred,), **kw)


def _unsplit(query: Query, limit: int) -> tuple[str, list[Any]]:
    """The same read as one statement with the IN list, as SQLite plans it alone."""
    clause, params = sqlite_sql.where(query)
    return (
        f"SELECT ts, id, data FROM events WHERE {clause} {sqlite_sql.order_by(query)} LIMIT ?",
        [*params, limit],
    )


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("bulk_email_id", (7, 999_999)),
        ("type_name", ("nothing", "nada")),
        ("type_name", ("bounce", "x")),
    ],
)
def test_an_in_list_in_id_order_reads_each_value_from_its_index(
    any_db: sqlite3.Connection, name: str, values: tuple[Any, ...]
) -> None:
    """Not the tenant in id order until enough rows match: every value is searched
    in its (tenant_id, column) index, which ends in the id."""
    sql, params = sqlite_sql.select(_in(name, values, descending=False), limit=21)
    plan = _plan(any_db, sql, params)
    shown = f"{sql}\n" + "\n".join(plan)
    assert not [d for d in plan if d.startswith("SCAN events")], shown
    searches = [m["c"] for m in map(_SEARCH.search, plan) if m and "rowid" not in m["c"]]
    assert len(searches) == len(values) and all(f"{name}=?" in s for s in searches), shown


@pytest.mark.parametrize(
    ("name", "values", "kw", "limit"),
    [
        ("bulk_email_id", (7, 8, 9), {"descending": False}, 21),
        ("bulk_email_id", (7, 8, 7, 999), {"descending": True}, 50),
        ("bulk_email_id", (7, 8), {"descending": False, "after": (0, 3000)}, 40),
        ("send_email_id", (5, 6, 700), {"descending": False}, 2),
        ("type_name", ("bounce", "delay"), {"descending": False}, 1000),
        ("type_name", ("bounce", "delay", "nothing"), {"descending": True, "max_id": 2500}, 300),
        ("event_id", ("a1", "a2", "o3", "a4999"), {"descending": False}, 10),
        ("type_name", ("bounce", None), {"descending": False}, 30),
    ],
)
def test_an_in_list_read_by_value_returns_what_the_plain_read_does(
    db: sqlite3.Connection, name: str, values: tuple[Any, ...], kw: dict[str, Any], limit: int
) -> None:
    query = _in(name, values, **kw)
    sql, params = sqlite_sql.select(query, limit=limit)
    assert "UNION ALL" in sql
    split = db.execute(sql, params).fetchall()
    assert split == db.execute(*_unsplit(query, limit)).fetchall()
    assert split, "a case that returns nothing would prove little"


def test_long_in_lists_and_unlimited_reads_stay_one_statement() -> None:
    many = tuple(range(40))
    assert "UNION" not in sqlite_sql.select(_in("bulk_email_id", many), limit=20)[0]
    assert "UNION" not in sqlite_sql.select(_in("bulk_email_id", (1, 2)))[0]
    assert "UNION" not in sqlite_sql.select(_in("bulk_email_id", (1, 2), by_id=False), limit=20)[0]
    assert "UNION" not in sqlite_sql.select(_in("campaign_id", ("a", "b")), limit=20)[0]
