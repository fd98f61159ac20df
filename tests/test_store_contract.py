"""The store contract: the same assertions against every backend.

Each test runs on SQLite, on PostgreSQL and on Citus (a fresh database, or
schema, per test; skipped with a reason when MAILEVENTS_TEST_POSTGRES_URL or
MAILEVENTS_TEST_CITUS_URL is unset),
through a real gRPC server where the behaviour under test is the service's,
and on the store directly where it is the store's own (retention, concurrent
producers on separate stores). The last test feeds the same events to both
stores and requires the same answers, event for event.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import Server, make_server
from factories import cond, event, event_ids, list_all, query, search_all
from pgtest import SERVER_BACKENDS, fresh_database

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.ingest import prepare
from mailevents_server.query import timeparts
from mailevents_server.query.model import Query
from mailevents_server.server import ServerConfig, start_server
from mailevents_server.store import open_store
from mailevents_server.store.base import Outcome, Store

BACKENDS = ["sqlite", *SERVER_BACKENDS]


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each backend: a SQLite path or a postgresql:// URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "events.db")
        return
    async with fresh_database(request.param) as url:
        yield url


@pytest.fixture
async def srv(database: str) -> AsyncIterator[Server]:
    server = await make_server(database)
    try:
        yield server
    finally:
        await server.channel.close()
        await server.running.stop(grace=0)


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    s = open_store(database)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def matching(server: Server, *conditions: spb.Condition, **q: Any) -> set[str]:
    return set(event_ids(await search_all(server, query(*conditions, **q))))


def at_us(ev: pb.MessageEvent, micros: int) -> pb.MessageEvent:
    ev.timestamp.FromMicroseconds(micros)
    return ev


# -- text: case, wildcards, collation, NULL vs empty ---------------------------------

TEXTS = {
    "a": "Sale_50%",
    "b": "Sale-50x",
    "c": "sale_50%",
    "d": "ÉCOLE Été",
    "e": "école été",
    "f": "Ωmega ΣΑΣ",
    "g": "",
    "h": None,
}
NON_NULL = {k for k, v in TEXTS.items() if v is not None}


@pytest.fixture
async def text_srv(srv: Server) -> Server:
    await srv.ingest([event(k, campaign_id=v) for k, v in TEXTS.items()])
    return srv


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        (spb.OPERATOR_EXACT, "Sale_50%", {"a"}),
        (spb.OPERATOR_EXACT, "", {"g"}),
        (spb.OPERATOR_IEXACT, "SALE_50%", {"a", "c"}),
        (spb.OPERATOR_IEXACT, "École ÉTÉ", {"d", "e"}),
        (spb.OPERATOR_CONTAINS, "_50%", {"a", "c"}),  # `_` and `%` are literal
        (spb.OPERATOR_CONTAINS, "e_5", {"a", "c"}),
        (spb.OPERATOR_CONTAINS, "%", {"a", "c"}),
        (spb.OPERATOR_CONTAINS, "sale", {"c"}),  # case-sensitive
        (spb.OPERATOR_CONTAINS, "", NON_NULL),  # empty matches every value, not NULL
        (spb.OPERATOR_ICONTAINS, "SALE_", {"a", "c"}),
        (spb.OPERATOR_ICONTAINS, "ÉTÉ", {"d", "e"}),  # non-ASCII folds too
        (spb.OPERATOR_STARTS_WITH, "Sale", {"a", "b"}),
        (spb.OPERATOR_STARTS_WITH, "_", set()),
        (spb.OPERATOR_STARTS_WITH, "", NON_NULL),
        (spb.OPERATOR_ISTARTS_WITH, "SALE", {"a", "b", "c"}),
        (spb.OPERATOR_ISTARTS_WITH, "ωMEGA", {"f"}),
        (spb.OPERATOR_ENDS_WITH, "%", {"a", "c"}),
        (spb.OPERATOR_ENDS_WITH, "", NON_NULL),
        (spb.OPERATOR_IENDS_WITH, "0X", {"b"}),
        (spb.OPERATOR_IENDS_WITH, "σας", {"f"}),  # final sigma, as Python lowercases it
        (spb.OPERATOR_LT, "a", {"a", "b", "g"}),  # bytewise: "S" < "a", not a locale's order
        (spb.OPERATOR_GT, "z", {"d", "e", "f"}),  # bytewise: UTF-8 of É, é, Ω > "z"
        (spb.OPERATOR_GTE, "sale_50%", {"c", "d", "e", "f"}),
    ],
)
async def test_text_operators(
    text_srv: Server, operator: int, value: str, expected: set[str]
) -> None:
    assert await matching(text_srv, cond("campaign_id", operator, value)) == expected


async def test_text_in_and_empty_in(text_srv: Server) -> None:
    assert await matching(
        text_srv, cond("campaign_id", spb.OPERATOR_IN, "Sale_50%", "école été")
    ) == {
        "a",
        "e",
    }
    assert await matching(text_srv, cond("campaign_id", spb.OPERATOR_IN)) == set()


async def test_is_null_tells_absent_from_empty(text_srv: Server) -> None:
    assert await matching(text_srv, cond("campaign_id", spb.OPERATOR_IS_NULL)) == {"h"}
    assert await matching(text_srv, cond("campaign_id", spb.OPERATOR_IS_NULL, "false")) == NON_NULL


# -- other kinds ------------------------------------------------------------------------


async def test_int_bool_enum_and_tag_operators(srv: Server) -> None:
    await srv.ingest(
        [
            event("i1", bulk_email_id=5, archived=True, tags=["vip", "a%b"]),
            event("i2", bulk_email_id=40, type=pb.EVENT_TYPE_BOUNCE, tags=["vip_x"]),
            event("i3", bulk_email_id=-3, type=pb.EVENT_TYPE_OPEN),
            event("i4", type=pb.EVENT_TYPE_UNSPECIFIED, type_name="zz_custom"),
        ]
    )
    assert await matching(srv, cond("bulk_email_id", spb.OPERATOR_GT, "5")) == {"i2"}
    assert await matching(srv, cond("bulk_email_id", spb.OPERATOR_LTE, "5")) == {"i1", "i3"}
    assert await matching(srv, cond("bulk_email_id", spb.OPERATOR_IN, "5", "-3")) == {"i1", "i3"}
    assert await matching(srv, cond("bulk_email_id", spb.OPERATOR_IS_NULL)) == {"i4"}
    assert await matching(srv, cond("archived", spb.OPERATOR_EXACT, "true")) == {"i1"}
    assert await matching(srv, cond("archived", spb.OPERATOR_IN, "false")) == {"i2", "i3", "i4"}
    assert await matching(srv, cond("type", spb.OPERATOR_IN, "bounce", "open")) == {"i2", "i3"}
    assert await matching(srv, cond("type_name", spb.OPERATOR_EXACT, "zz_custom")) == {"i4"}
    assert await matching(srv, cond("tags", spb.OPERATOR_EXACT, "vip")) == {"i1"}
    assert await matching(srv, cond("tags", spb.OPERATOR_IN, "a%b", "vip_x")) == {"i1", "i2"}
    assert await matching(srv, cond("tags", spb.OPERATOR_EXACT, "a_b")) == set()
    assert await matching(srv, cond("tags", spb.OPERATOR_IS_NULL)) == {"i3", "i4"}
    assert await matching(srv, cond("id", spb.OPERATOR_EXACT, "2")) == {"i2"}


# -- date parts in a time zone ---------------------------------------------------------

#: Instants around the traps: a year boundary that is already next year in
#: Amsterdam, a DST change in New York, a half-hour zone, a Sunday, a
#: fractional second that must be floored, not rounded.
INSTANTS_US = [
    1_704_065_400_000_000,  # 2023-12-31T23:30:00Z
    1_710_052_200_000_000,  # 2024-03-10T06:30:00Z (New York: 01:30 EST, before the jump)
    1_710_055_800_000_000,  # 2024-03-10T07:30:00Z (New York: 03:30 EDT)
    1_717_329_605_999_999,  # 2024-06-02T12:00:05.999999Z, a Sunday
    1_700_000_000_500_000,  # 2023-11-14T22:13:20.5Z
    -86_400_000_001,  # 1969-12-30T23:59:59.999999Z, before the epoch
]
ZONES = ["UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata"]
PARTS = [
    spb.DATE_PART_YEAR,
    spb.DATE_PART_MONTH,
    spb.DATE_PART_DAY,
    spb.DATE_PART_WEEK_DAY,
    spb.DATE_PART_HOUR,
    spb.DATE_PART_MINUTE,
    spb.DATE_PART_SECOND,
]


async def test_date_parts_in_time_zones_match_the_query_core(srv: Server) -> None:
    await srv.ingest([at_us(event(f"t{i}"), us) for i, us in enumerate(INSTANTS_US)])
    for zone in ZONES:
        for part in PARTS:
            values = {i: timeparts.date_part(us, part, zone) for i, us in enumerate(INSTANTS_US)}
            for value in set(values.values()):
                got = await matching(
                    srv,
                    cond(
                        "timestamp", spb.OPERATOR_EXACT, str(value), date_part=part, time_zone=zone
                    ),
                )
                want = {f"t{i}" for i, v in values.items() if v == value}
                assert got == want, (zone, spb.DatePart.Name(part), value)
    # Spot checks of the meaning itself, not only agreement with timeparts.
    year_2024_in_amsterdam = cond(
        "timestamp",
        spb.OPERATOR_EXACT,
        "2024",
        date_part=spb.DATE_PART_YEAR,
        time_zone="Europe/Amsterdam",
    )
    assert "t0" in await matching(srv, year_2024_in_amsterdam)
    sunday = cond("timestamp", spb.OPERATOR_EXACT, "1", date_part=spb.DATE_PART_WEEK_DAY)
    assert await matching(srv, sunday) == {"t0", "t1", "t2", "t3"}  # 2023-12-31, 2024-03-10 too
    second_5 = cond("timestamp", spb.OPERATOR_IN, "5", date_part=spb.DATE_PART_SECOND)
    assert await matching(srv, second_5) == {"t3"}
    hour_ge = cond(
        "timestamp",
        spb.OPERATOR_GTE,
        "3",
        date_part=spb.DATE_PART_HOUR,
        time_zone="America/New_York",
    )
    assert "t2" in await matching(srv, hour_ge) and "t1" not in await matching(srv, hour_ge)


async def test_date_part_of_absent_timestamp_matches_nothing(srv: Server) -> None:
    await srv.ingest([event("with", send_time=1_700_000_000), event("without")])
    year = cond("send_time", spb.OPERATOR_GT, "0", date_part=spb.DATE_PART_YEAR)
    assert await matching(srv, year) == {"with"}


# -- order, ties, paging ----------------------------------------------------------------


async def test_order_and_tie_breaks(srv: Server) -> None:
    # Three share a timestamp: ties go by id (ingest order), in the same direction.
    await srv.ingest(
        [
            event("late", ts=300),
            event("tie1", ts=200),
            event("tie2", ts=200),
            event("early", ts=100),
        ]
    )
    await srv.ingest([event("tie3", ts=200)])
    newest_first = event_ids(await search_all(srv, query()))
    assert newest_first == ["late", "tie3", "tie2", "tie1", "early"]
    oldest_first = event_ids(await list_all(srv, query(order=spb.ORDER_TIMESTAMP_ASC), page_size=2))
    assert oldest_first == ["early", "tie1", "tie2", "tie3", "late"]
    assert event_ids(await list_all(srv, query(), page_size=1)) == newest_first


async def test_keyset_paging_is_stable_under_concurrent_inserts(srv: Server) -> None:
    await srv.ingest([event(f"p{i:03d}", ts=1_000 + i // 3) for i in range(300)])
    expected = event_ids(await search_all(srv, query()))
    seen: list[str] = []
    token = ""
    n = 0
    while True:
        page = await srv.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(query=query(), page_size=37, page_token=token),
            metadata=srv.metadata(),
        )
        seen.extend(event_ids(page.events))
        # Newer, older and same-timestamp events arrive between pages.
        await srv.ingest(
            [event(f"new{n}", ts=5_000), event(f"old{n}", ts=10), event(f"mid{n}", ts=1_050)]
        )
        n += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == expected  # a snapshot: nothing skipped, repeated or added
    assert len(await search_all(srv, query())) == 300 + 3 * n


async def test_search_resume_token_continues_exactly(srv: Server) -> None:
    await srv.ingest([event(f"r{i:03d}", ts=2_000 + i // 4) for i in range(100)])
    call = srv.stub.SearchMessageEvents(
        spb.SearchMessageEventsRequest(query=query(), batch_size=30), metadata=srv.metadata()
    )
    first = await call.read()
    call.cancel()
    await srv.ingest([event("later", ts=9_000)])
    rest = await search_all(srv, query(), resume_token=first.resume_token, batch_size=30)
    assert event_ids(first.events) + event_ids(rest) == [f"r{i:03d}" for i in reversed(range(100))]


async def test_cancelled_stream_releases_the_store(srv: Server) -> None:
    await srv.ingest([event(f"s{i:04d}", ts=3_000 + i) for i in range(3000)])
    for _ in range(3):  # more than once: the connection goes back usable
        call = srv.stub.SearchMessageEvents(
            spb.SearchMessageEventsRequest(query=query(), batch_size=10), metadata=srv.metadata()
        )
        assert len((await call.read()).events) == 10
        call.cancel()
        for _ in range(200):
            if srv.running.store.open_streams == 0:
                break
            await asyncio.sleep(0.01)
        assert srv.running.store.open_streams == 0
    assert len(await search_all(srv, query(), batch_size=1000)) == 3000


# -- ingest -----------------------------------------------------------------------------


async def test_ingest_reports_duplicates_with_the_stored_id(srv: Server) -> None:
    first = await srv.ingest([event("x1"), event("x2")])
    again = await srv.ingest([event("x2"), event("x3"), event("x3")])
    assert [r.status for r in again.results] == [
        spb.INGEST_STATUS_DUPLICATE,
        spb.INGEST_STATUS_STORED,
        spb.INGEST_STATUS_DUPLICATE,
    ]
    assert again.results[0].id == first.results[1].id
    assert again.results[2].id == again.results[1].id
    got = await srv.stub.GetMessageEvent(
        spb.GetMessageEventRequest(event_id="x3"), metadata=srv.metadata()
    )
    assert got.event.id == again.results[1].id
    got = await srv.stub.GetMessageEvent(
        spb.GetMessageEventRequest(id=first.results[0].id), metadata=srv.metadata()
    )
    assert got.event.event_id == "x1"


async def test_idempotent_ingest_under_concurrent_producers(database: str) -> None:
    """Producers on separate stores (PostgreSQL: two pools, as two replicas) or
    on one store (SQLite: one writer per file) send overlapping event ids at
    once: each event id is stored exactly once and every answer names its id."""
    stores = [open_store(database)]
    if database.startswith("postgresql://"):
        stores.append(open_store(database))
    for s in stores:
        await s.open()
    try:
        tenant = await stores[0].create_key("acme", "hash-acme")
        ids = [f"c{i:04d}" for i in range(600)]

        async def produce(n: int) -> list[tuple[str, Outcome, int]]:
            rng = random.Random(n)
            out = []
            for _ in range(6):
                chosen = rng.sample(ids, 150)
                ready, _ = prepare([event(e, ts=1_000 + int(e[1:])) for e in chosen])
                results = await stores[n % len(stores)].write(tenant, ready)
                out += [(r.event_id, r.outcome, r.id) for r in results]
            return out

        answers = [
            a for part in await asyncio.gather(*(produce(n) for n in range(6))) for a in part
        ]
        stored = Counter(e for e, outcome, _ in answers if outcome is Outcome.STORED)
        assert all(n == 1 for n in stored.values())
        id_of: dict[str, int] = {}
        for e, _, pk in answers:
            assert id_of.setdefault(e, pk) == pk, f"{e} reported under two ids"
        rows = [r async for batch in stores[0].read(Query(tenant), 500) for r in batch]
        assert len(rows) == len(stored) == len(id_of)
        assert sorted(r[1] for r in rows) == sorted(id_of.values())
    finally:
        for s in stores:
            await s.close()


# -- tenants ----------------------------------------------------------------------------


async def test_tenant_isolation(srv: Server) -> None:
    mine = await srv.ingest([event("shared", campaign_id="A"), event("only-acme")])
    theirs = await srv.ingest([event("shared", campaign_id="B")], key=srv.other_api_key)
    assert theirs.results[0].status == spb.INGEST_STATUS_STORED  # same event id, other tenant
    assert set(event_ids(await search_all(srv, query()))) == {"only-acme", "shared"}
    other = await search_all(srv, query(), key=srv.other_api_key)
    assert [(e.event_id, e.campaign_id) for e in other] == [("shared", "B")]
    count = await srv.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(query=query()), metadata=srv.metadata(srv.other_api_key)
    )
    assert count.total == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await srv.stub.GetMessageEvent(
            spb.GetMessageEventRequest(id=mine.results[1].id),
            metadata=srv.metadata(srv.other_api_key),
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


# -- counts -----------------------------------------------------------------------------


async def test_counts_and_group_by(srv: Server) -> None:
    evs = []
    n = 0
    for campaign, count in (("b", 3), ("a", 3), (None, 3), ("C", 3), ("z", 1)):
        for _ in range(count):
            evs.append(
                event(
                    f"g{n}",
                    ts=1_704_065_400 + n * 1800,  # 2023-12-31T23:30Z, every half hour
                    campaign_id=campaign,
                    recipient=f"u{n}@Example.COM" if n % 2 else f"u{n}@b.org",
                    type=[pb.EVENT_TYPE_DELIVERY, pb.EVENT_TYPE_BOUNCE][n % 2],
                )
            )
            n += 1
    evs.append(event("custom", ts=1_704_065_400, type=pb.EVENT_TYPE_UNSPECIFIED, type_name="zz"))
    await srv.ingest(evs)

    async def groups(group_by: int, zone: str = "", max_buckets: int = 0) -> list[tuple[str, int]]:
        response = await srv.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(
                query=query(), group_by=[group_by], time_zone=zone, max_buckets=max_buckets
            ),
            metadata=srv.metadata(),
        )
        assert response.total == len(evs)
        return [(b.key, b.count) for b in response.groups[0].buckets]

    # Ties by key, bytewise, absent ("") first: "C" < "a" < "b".
    assert await groups(spb.GROUP_BY_CAMPAIGN) == [("", 4), ("C", 3), ("a", 3), ("b", 3), ("z", 1)]
    assert await groups(spb.GROUP_BY_CAMPAIGN, max_buckets=2) == [("", 4), ("C", 3)]
    assert await groups(spb.GROUP_BY_RECIPIENT_DOMAIN) == [
        ("b.org", 7),
        ("example.com", 6),
        ("", 1),
    ]
    assert await groups(spb.GROUP_BY_TYPE) == [("delivery", 7), ("bounce", 6), ("zz", 1)]
    for zone in ("UTC", "Asia/Kolkata", "America/New_York"):
        for group_by, unit in ((spb.GROUP_BY_HOUR, "hour"), (spb.GROUP_BY_DAY, "day")):
            want = Counter(
                timeparts.bucket(ev.timestamp.ToMicroseconds(), unit, zone) for ev in evs
            )
            assert await groups(group_by, zone) == sorted(want.items()), (zone, unit)

    filtered = await srv.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(
            query=query(cond("campaign_id", spb.OPERATOR_ISTARTS_WITH, "c"))
        ),
        metadata=srv.metadata(),
    )
    assert filtered.total == 3


# -- retention --------------------------------------------------------------------------


async def test_delete_before_removes_only_older_events(store: Store) -> None:
    tenant = await store.create_key("acme", "hash-acme")
    other = await store.create_key("other", "hash-other")
    day = 86_400
    now = int(time.time())
    old = [event(f"old{i}", ts=now - 60 * day - i * 3600) for i in range(50)]
    edge = [event(f"edge{i}", ts=now - 30 * day - 10 + i) for i in range(20)]  # straddles cutoff
    new = [event(f"new{i}", ts=now - i * 60) for i in range(30)]
    ready, _ = prepare(old + edge + new)
    await store.write(tenant, ready)
    await store.write(other, prepare(old[:5])[0])
    cutoff_us = (now - 30 * day) * 1_000_000
    removed = await store.delete_before(cutoff_us)
    assert removed == 50 + 10 + 5
    left = [r async for batch in store.read(Query(tenant), 1000) for r in batch]
    assert len(left) == 10 + 30
    assert min(r[0] for r in left) >= cutoff_us
    assert await store.get(tenant, event_id="old3") is None
    assert await store.count(Query(other)) == 0
    assert await store.delete_before(cutoff_us) == 0
    # An expired event sent again is new again (its key went with it).
    again = await store.write(tenant, prepare([old[3]])[0])
    assert again[0].outcome is Outcome.STORED
    assert again[0].id > max(r[1] for r in left)


async def test_retention_records_the_highest_id_it_removed(store: Store) -> None:
    """Per tenant: a live resume below it could have skipped a removed event."""
    tenant = await store.create_key("acme", "hash-acme")
    other = await store.create_key("other", "hash-other")
    untouched = await store.create_key("third", "hash-third")
    day = 86_400
    now = int(time.time())
    old = [event(f"old{i}", ts=now - 60 * day - i) for i in range(30)]
    written = await store.write(tenant, prepare(old[:20])[0])
    await store.write(tenant, prepare([event("new", ts=now)])[0])
    late = await store.write(tenant, prepare([event("late-backfill", ts=now - 45 * day)])[0])
    theirs = await store.write(other, prepare(old[20:])[0])
    await store.write(untouched, prepare([event("n", ts=now)])[0])
    assert [await store.retention_floor(t) for t in (tenant, other, untouched)] == [0, 0, 0]
    assert await store.delete_before((now - 30 * day) * 1_000_000) == 31
    assert await store.retention_floor(tenant) == late[0].id > max(w.id for w in written)
    assert await store.retention_floor(other) == max(w.id for w in theirs)
    assert await store.retention_floor(untouched) == 0
    assert await store.delete_before((now - 30 * day) * 1_000_000) == 0
    assert await store.retention_floor(tenant) == late[0].id  # never lowered


async def test_the_position_stays_when_retention_removes_the_newest_events(
    store: Store,
) -> None:
    """A quiet tenant whose every event expires keeps its position: a consumer
    resuming at it lost nothing, and must not be told its token is ahead."""
    tenant = await store.create_key("acme", "hash-acme")
    now = int(time.time())
    written = await store.write(
        tenant, prepare([event(f"e{i}", ts=now - 90 * 86_400) for i in range(3)])[0]
    )
    position = max(w.id for w in written)
    assert await store.last_id(tenant) == position
    assert await store.delete_before(now * 1_000_000) == 3
    assert await store.last_id(tenant) == position
    assert (await store.watermark(tenant)).position == position


async def test_skipping_positions_leaves_a_gap_before_the_next_commit(store: Store) -> None:
    """After a restore: the next ids are past any the lost store could have given."""
    tenant = await store.create_key("acme", "hash-acme")
    quiet = await store.create_key("quiet", "hash-quiet")  # no events yet
    written = await store.write(tenant, prepare([event(f"e{i}") for i in range(3)])[0])
    position = max(w.id for w in written)
    await store.skip_positions(1000)
    assert await store.last_id(tenant) == position + 1000
    assert await store.last_id(quiet) >= 1000
    (after,) = await store.write(tenant, prepare([event("after")])[0])
    assert after.outcome is Outcome.STORED and after.id == position + 1001
    (first,) = await store.write(quiet, prepare([event("first")])[0])
    assert first.id > 1000
    # Nothing already stored moved.
    assert [w.id for w in written] == [
        (await store.get(tenant, event_id=f"e{i}"))[1]
        for i in range(3)  # type: ignore[index]
    ]


async def test_server_retention_runs_on_start(database: str) -> None:
    first = await make_server(database)
    now = int(time.time())
    try:
        await first.ingest([event("ancient", ts=now - 90 * 86_400), event("recent", ts=now - 3600)])
    finally:
        await first.channel.close()
        await first.running.stop(grace=0)
    running = await start_server(
        ServerConfig(
            grpc_address="127.0.0.1:0", database=database, http_address="", retention="30d"
        )
    )
    try:
        for _ in range(100):
            if await running.store.count(Query(1)) == 1:
                break
            await asyncio.sleep(0.05)
        assert await running.store.get(1, event_id="ancient") is None
        assert await running.store.get(1, event_id="recent") is not None
    finally:
        await running.stop(grace=0)


def test_retention_flag_is_validated() -> None:
    from mailevents_server.retention import parse_duration

    assert parse_duration("30d") == 30 * 86_400
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("") == 0
    for bad in ("30", "d", "-1d", "1.5d", "0d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# -- the same answers from both stores --------------------------------------------------

_CAMPAIGNS = ["Sale_50%", "sale_50%", "Sale-50x", "ÉCOLE", "école", "Ωmega", "", None, "spring"]
_DOMAINS = ["Example.com", "b.org", "ÜBER.de", "x_y.net"]
_TYPES = [pb.EVENT_TYPE_DELIVERY, pb.EVENT_TYPE_BOUNCE, pb.EVENT_TYPE_OPEN, pb.EVENT_TYPE_CLICK]


def generated_events(count: int, seed: int = 7) -> list[pb.MessageEvent]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        ev = event(
            f"gen-{i:05d}",
            ts=1_704_000_000 + rng.randrange(0, 90 * 86_400),  # ~3 months: several partitions
            type=rng.choice(_TYPES),
            campaign_id=rng.choice(_CAMPAIGNS),
            recipient=f"user{rng.randrange(50)}@{rng.choice(_DOMAINS)}",
            bulk_email_id=rng.choice([None, rng.randrange(-5, 100)]),
            tags=rng.sample(["vip", "a%b", "new", "x_y"], rng.randrange(0, 3)),
            archived=rng.random() < 0.2,
        )
        if rng.random() < 0.3:  # some share a timestamp: tie-breaks matter
            ev.timestamp.FromSeconds(1_704_000_000 + rng.randrange(0, 5) * 86_400)
        else:
            ev.timestamp.nanos = rng.randrange(0, 1_000_000) * 1000
        out.append(ev)
    return out


COMPARED_QUERIES = [
    query(),
    query(order=spb.ORDER_TIMESTAMP_ASC),
    query(cond("campaign_id", spb.OPERATOR_ICONTAINS, "sale_")),
    query(cond("campaign_id", spb.OPERATOR_IEXACT, "école")),
    query(cond("campaign_id", spb.OPERATOR_LT, "a"), order=spb.ORDER_TIMESTAMP_ASC),
    query(cond("campaign_id", spb.OPERATOR_IS_NULL)),
    query(cond("recipient_domain", spb.OPERATOR_ENDS_WITH, ".de")),
    query(cond("recipient", spb.OPERATOR_ISTARTS_WITH, "USER1")),
    query(cond("tags", spb.OPERATOR_IN, "a%b", "x_y")),
    query(
        cond("bulk_email_id", spb.OPERATOR_GTE, "50"), cond("archived", spb.OPERATOR_EXACT, "false")
    ),
    query(cond("type", spb.OPERATOR_IN, "bounce", "click"), start=1_704_500_000, end=1_708_000_000),
    query(
        cond(
            "timestamp",
            spb.OPERATOR_IN,
            "1",
            "7",
            date_part=spb.DATE_PART_WEEK_DAY,
            time_zone="Pacific/Auckland",
        )
    ),
    query(cond("timestamp", spb.OPERATOR_LT, "30", date_part=spb.DATE_PART_SECOND)),
]


def _without_id(events: list[pb.MessageEvent]) -> list[bytes]:
    out = []
    for ev in events:
        copy = pb.MessageEvent()
        copy.CopyFrom(ev)
        copy.id = 0
        out.append(copy.SerializeToString(deterministic=True))
    return out


@pytest.mark.postgres
async def test_same_results_from_both_stores(tmp_path: Path) -> None:
    evs = generated_events(3000)
    async with fresh_database() as url:
        servers = [await make_server(str(tmp_path / "events.db")), await make_server(url)]
        try:
            for s in servers:
                await s.ingest(evs)
            for q in COMPARED_QUERIES:
                searched = [_without_id(await search_all(s, q, batch_size=700)) for s in servers]
                assert searched[0] == searched[1], q
                assert len(searched[0]) > 0, q
                paged = [_without_id(await list_all(s, q, page_size=333)) for s in servers]
                assert paged[0] == paged[1] == searched[0], q
                request = spb.CountMessageEventsRequest(
                    query=q,
                    group_by=[
                        spb.GROUP_BY_TYPE,
                        spb.GROUP_BY_CAMPAIGN,
                        spb.GROUP_BY_RECIPIENT_DOMAIN,
                        spb.GROUP_BY_HOUR,
                        spb.GROUP_BY_DAY,
                    ],
                    time_zone="America/Sao_Paulo",
                    max_buckets=50,
                )
                counts = [
                    await s.stub.CountMessageEvents(request, metadata=s.metadata()) for s in servers
                ]
                assert counts[0] == counts[1], q
        finally:
            for s in servers:
                await s.channel.close()
                await s.running.stop(grace=0)
