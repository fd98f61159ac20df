"""SparkPost dialect through real HTTP: /api/v1/message-events and /api/v1/events/message."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from mailevents.sparkpost import event_from_sparkpost
from mailevents_server.demo import generate_events

from .restshim_events import event, sparkpost_seed_results

PATH = "/api/v1/message-events"
CURSOR_PATH = "/api/v1/events/message"
WIDE = "from=2000-01-01T00:00&to=2030-01-01T00:00"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": key}


async def search(shim: Any, query: str = "", key: str | None = None) -> tuple[int, Any]:
    status, body, _ = await shim.get(f"{PATH}?{query}", headers=auth(key or shim.server.api_key))
    return status, body


async def ids(shim: Any, query: str) -> list[str]:
    status, body = await search(shim, f"{WIDE}&{query}")
    assert status == 200, body
    return [result["event_id"] for result in body["results"]]


# ---------------------------------------------------------------- the seed


async def test_seed_example_replayed_in_the_seeds_shapes(shim: Any) -> None:
    samples = sparkpost_seed_results()
    events = []
    for i, sample in enumerate(samples):
        ev = event_from_sparkpost(sample)
        ev.event_id = f"seed-{i:02d}"
        events.append(ev)
    assert (await shim.server.ingest(events)).stored == len(samples)

    status, body, response = await shim.get(
        f"{PATH}?from=2014-07-20T08:00&to=2015-04-01T00:00",
        headers={"Accept": "application/json", "Authorization": shim.server.api_key},
    )
    assert status == 200
    assert response.content_type == "application/json"
    assert list(body) == ["results", "total_count", "links"]
    assert body["total_count"] == len(samples)
    assert body["links"] == []
    by_id = {result.pop("event_id"): result for result in body["results"]}
    for i, sample in enumerate(samples):
        rendered = by_id[f"seed-{i:02d}"]
        assert rendered == sample
        assert list(rendered) == list(sample), sample["type"]  # same keys, same order
    # Sorted by timestamp, newest first: the out_of_band sample is from 2015.
    assert body["results"][0]["type"] == "out_of_band"


# ---------------------------------------------------------------- auth


async def test_auth_raw_key_basic_auth_and_refusals(shim: Any) -> None:
    await shim.server.ingest([event(at="2020-01-01T00:00:00")])
    key = shim.server.api_key
    basic = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    for headers in ({"Authorization": key}, {"Authorization": basic}):
        status, body, _ = await shim.get(f"{PATH}?{WIDE}", headers=headers)
        assert status == 200 and body["total_count"] == 1
    for headers in ({}, {"Authorization": "not-a-key"}, {"Authorization": "Basic !!"}):
        status, body, _ = await shim.get(f"{PATH}?{WIDE}", headers=headers)
        assert status == 401
        assert body == {
            "errors": [
                {
                    "message": "Unauthorized.",
                    "description": "A valid API key is required in the Authorization header.",
                    "code": "1303",
                }
            ]
        }
    # A bad key is refused before bad parameters are looked at.
    status, _, _ = await shim.get(f"{PATH}?per_page=0", headers={"Authorization": "nope"})
    assert status == 401


async def test_a_key_sees_only_its_own_tenant(shim: Any) -> None:
    await shim.server.ingest([event(at="2020-01-01T00:00:00", event_id="acme-1")])
    other = shim.server.other_api_key
    await shim.server.ingest([event(at="2020-01-01T00:00:00", event_id="other-1")], key=other)
    assert await ids(shim, "") == ["acme-1"]
    status, body = await search(shim, WIDE, key=other)
    assert status == 200
    assert [r["event_id"] for r in body["results"]] == ["other-1"]


# ---------------------------------------------------------------- filters


@pytest.fixture
async def varied(shim: Any) -> Any:
    await shim.server.ingest(
        [
            event(
                "bounce",
                "2024-05-01T10:00:00",
                event_id="b1",
                bounce_class=10,
                campaign_id="spring",
                recipient="a@x.com",
                reason="550 Mailbox FULL 100%",
                message_id="m1",
                transmission_id="t1",
                template_id="tpl-a",
                friendly_from="news@shop.com",
                subaccount_id="7",
            ),
            event(
                "bounce",
                "2024-05-01T10:01:00",
                event_id="b2",
                bounce_class=25,
                campaign_id="summer",
                recipient="b@y.com",
                reason="user unknown",
                message_id="m2",
                transmission_id="t2",
                template_id="tpl-b",
                friendly_from="deals@shop.com",
            ),
            event(
                "delay",
                "2024-05-01T10:02:00",
                event_id="d1",
                bounce_class=10,
                campaign_id="spring",
                recipient="c@x.com",
                reason="try again 100 later",
                message_id="m3",
                transmission_id="t1",
                template_id="tpl-a",
                friendly_from="news@shop.com",
            ),
            event(
                "delivery",
                "2024-05-01T10:03:00",
                event_id="v1",
                campaign_id="spring,fall",
                recipient="a@x.com",
                message_id="m1",
                transmission_id="t1",
                template_id="tpl-a",
                friendly_from="news@shop.com",
            ),
        ]
    )
    return shim


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["v1", "d1", "b2", "b1"]),
        ("events=bounce", ["b2", "b1"]),
        ("events=bounce%2Cdelay", ["d1", "b2", "b1"]),  # URL-encoded comma list
        ("events=bounce,%20delay", ["d1", "b2", "b1"]),  # the seed's "a, b" spacing
        ("events=delay&events=delivery", ["v1", "d1"]),  # repeated parameter
        ("bounce_classes=10", ["d1", "b1"]),
        ("bounce_classes=10,25", ["d1", "b2", "b1"]),
        ("campaign_ids=summer", ["b2"]),
        ("campaign_ids=spring%2Csummer", ["d1", "b2", "b1"]),
        ("friendly_froms=deals@shop.com", ["b2"]),
        ("message_ids=m1", ["v1", "b1"]),
        ("recipients=a@x.com,c@x.com", ["v1", "d1", "b1"]),
        ("template_ids=tpl-b", ["b2"]),
        ("transmission_ids=t1", ["v1", "d1", "b1"]),
        ("subaccounts=7", ["b1"]),
        ("reason=mailbox%20full", ["b1"]),  # %reason%, case-insensitive
        ("reason=100", ["d1", "b1"]),
        ("reason=100%25", ["b1"]),  # % is a literal character, not a wildcard
        ("reason=_", []),  # so is _
        ("events=bounce&campaign_ids=spring", ["b1"]),  # parameters AND together
        ("campaign_ids=spring|fall&delimiter=|", ["d1", "b1"]),  # later API's delimiter
        ("campaign_ids=", ["v1", "d1", "b2", "b1"]),  # an empty list filters nothing
        ("unknown_param=1", ["v1", "d1", "b2", "b1"]),
    ],
)
async def test_list_filters(varied: Any, query: str, expected: list[str]) -> None:
    assert await ids(varied, query) == expected


async def test_from_to_window_and_timezone(varied: Any) -> None:
    # from is inclusive, to exclusive, both at the minute.
    assert await ids(varied, "from=2024-05-01T10:01&to=2024-05-01T10:03") == ["d1", "b2"]
    # The same instants written in New York time (EDT, UTC-4).
    status, body = await search(
        varied, "from=2024-05-01T06:01&to=2024-05-01T06:03&timezone=America/New_York"
    )
    assert status == 200
    assert [r["event_id"] for r in body["results"]] == ["d1", "b2"]


async def test_default_window_is_the_last_hour(shim: Any) -> None:
    now = datetime.now(UTC)
    recent = (now - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S")
    old = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    await shim.server.ingest([event(at=recent, event_id="recent"), event(at=old, event_id="old")])
    status, body = await search(shim)
    assert status == 200
    assert [r["event_id"] for r in body["results"]] == ["recent"]
    # Links pin the window the defaults chose, in the request's time zone.
    status, body = await search(shim, "per_page=1")
    assert body["links"] == []
    status, body = await search(shim, "page=2&per_page=1")
    link = dict(parse_qsl(urlsplit(body["links"][0]["href"]).query))
    start = datetime.strptime(link["from"], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    end = datetime.strptime(link["to"], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    assert end - start == timedelta(hours=1)
    assert now <= end <= now + timedelta(minutes=1)
    assert link["timezone"] == "UTC"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("query", "descriptions"),
    [
        ("events=bounce,nope", ["Invalid event type(s): nope. Valid event types are: "]),
        ("from=2024-05-01", ["from must be a datetime in format YYYY-MM-DDTHH:MM"]),
        ("to=2024-05-01T7:00", ["to must be a datetime in format YYYY-MM-DDTHH:MM"]),
        ("from=2024-02-30T00:00", ["from must be a datetime in format YYYY-MM-DDTHH:MM"]),
        ("per_page=0", ["per_page must be an integer between 1 and 10000"]),
        ("per_page=10001", ["per_page must be an integer between 1 and 10000"]),
        ("per_page=ten", ["per_page must be an integer between 1 and 10000"]),
        ("page=0", ["page must be an integer at least 1"]),
        ("page=-1", ["page must be an integer at least 1"]),
        ("from=2024-05-02T00:00&to=2024-05-01T00:00", ["from must be before to"]),
        ("timezone=Mars/Olympus", ["Unknown timezone 'Mars/Olympus'"]),
        ("bounce_classes=ten", ["bounce_classes: "]),  # the server's integer parsing
        ("per_page=0&page=0", ["per_page must", "page must"]),  # every error is reported
    ],
)
async def test_bad_parameters_are_400_in_sparkposts_shape(
    shim: Any, query: str, descriptions: list[str]
) -> None:
    status, body = await search(shim, query)
    assert status == 400
    assert len(body["errors"]) == len(descriptions)
    for error, description in zip(body["errors"], descriptions, strict=True):
        assert set(error) == {"message", "description", "code"}
        assert error["message"] == "invalid params"
        assert error["code"] == "1200"
        assert error["description"].startswith(description)


# ---------------------------------------------------------------- paging


async def test_paging_returns_every_event_once_with_seed_style_links(shim: Any) -> None:
    await shim.server.ingest(
        [event(at=f"2024-05-01T10:{i:02d}:00", event_id=f"e{i:02d}") for i in range(25)]
    )
    seen: list[str] = []
    query = f"{WIDE}&events=delivery&per_page=10"
    pages = []
    for page in (1, 2, 3):
        status, body = await search(shim, f"{query}&page={page}")
        assert status == 200 and body["total_count"] == 25
        seen += [r["event_id"] for r in body["results"]]
        pages.append(body["links"])
    assert seen == [f"e{i:02d}" for i in reversed(range(25))]  # newest first, each once

    def href(page: int) -> str:
        return (
            f"{PATH}?page={page}&per_page=10&from=2000-01-01T00:00&to=2030-01-01T00:00"
            "&timezone=UTC&events=delivery"
        )

    assert pages[0] == [{"href": href(2), "rel": "next"}, {"href": href(3), "rel": "last"}]
    assert pages[1] == [
        {"href": href(1), "rel": "first"},
        {"href": href(1), "rel": "previous"},
        {"href": href(3), "rel": "next"},
        {"href": href(3), "rel": "last"},
    ]
    assert pages[2] == [{"href": href(1), "rel": "first"}, {"href": href(2), "rel": "previous"}]
    # Following the links gives the same pages.
    status, body, _ = await shim.get(pages[0][0]["href"], headers=auth(shim.server.api_key))
    assert [r["event_id"] for r in body["results"]] == seen[10:20]
    # A page past the end is empty, not an error.
    status, body = await search(shim, f"{query}&page=9")
    assert status == 200 and body["results"] == [] and body["total_count"] == 25


async def test_per_page_defaults_to_1000(shim: Any) -> None:
    await shim.server.ingest(
        [event(at="2024-05-01T10:00:00", event_id=f"e{i:04d}") for i in range(1001)]
    )
    _, body = await search(shim, WIDE)
    assert len(body["results"]) == 1000 and body["total_count"] == 1001
    assert [link["rel"] for link in body["links"]] == ["next", "last"]
    assert "page=2&per_page=1000&" in body["links"][0]["href"]


# ---------------------------------------------------------------- cursor form


async def test_a_walk_by_next_links_while_events_arrive_returns_each_earlier_event_once(
    shim: Any,
) -> None:
    await shim.server.ingest(
        [event(at=f"2024-05-01T10:{i // 2:02d}:00", event_id=f"e{i:02d}") for i in range(37)]
    )
    url = f"{PATH}?{WIDE}&per_page=5"
    seen: list[str] = []
    n = 0
    while url:
        status, body, _ = await shim.get(url, headers=auth(shim.server.api_key))
        assert status == 200, body
        seen += [r["event_id"] for r in body["results"]]
        url = {link["rel"]: link["href"] for link in body["links"]}.get("next", "")
        print(len(body["results"]), body["total_count"], url[:60])
        # Newer events push every offset down; older ones join the end.
        await shim.server.ingest(
            [
                event(at="2024-05-02T00:00:00", event_id=f"new{n}"),
                event(at="2024-04-01T00:00:00", event_id=f"old{n}"),
            ]
        )
        n += 1
    assert len(seen) == len(set(seen))  # nothing repeated
    # Every event there before the walk, once, newest first (ties: newer id first).
    assert [e for e in seen if e.startswith("e")] == [f"e{i:02d}" for i in reversed(range(37))]


async def follow_cursor(shim: Any, url: str, between_pages: Any = None) -> list[str]:
    seen: list[str] = []
    while url:
        status, body, _ = await shim.get(url, headers=auth(shim.server.api_key))
        assert status == 200, body
        seen += [r["event_id"] for r in body["results"]]
        # As clients read it (simple_spark: `result.dig('links', 'next')`).
        assert isinstance(body["links"], dict) and set(body["links"]) <= {"next"}
        url = body["links"].get("next", "")
        if between_pages is not None:
            await between_pages()
    return seen


async def test_cursor_paging_survives_concurrent_inserts(shim: Any) -> None:
    await shim.server.ingest(
        [event(at=f"2024-05-01T10:{i:02d}:00", event_id=f"e{i:02d}") for i in range(23)]
    )
    counter = iter(range(1000))

    async def insert_newer_and_older() -> None:
        n = next(counter)
        await shim.server.ingest(
            [
                event(at="2024-05-01T11:00:00", event_id=f"new{n}"),
                event(at="2024-05-01T09:00:00", event_id=f"old{n}"),
            ]
        )

    seen = await follow_cursor(
        shim, f"{CURSOR_PATH}?{WIDE}&per_page=5&cursor=initial", insert_newer_and_older
    )
    assert seen == [f"e{i:02d}" for i in reversed(range(23))]  # no loss, no duplicate


async def test_cursor_paging_exact_multiple_has_no_empty_last_page(shim: Any) -> None:
    await shim.server.ingest(
        [event(at=f"2024-05-01T10:{i:02d}:00", event_id=f"e{i:02d}") for i in range(10)]
    )
    status, body, _ = await shim.get(
        f"{CURSOR_PATH}?{WIDE}&per_page=10", headers=auth(shim.server.api_key)
    )
    assert status == 200 and len(body["results"]) == 10 and body["total_count"] == 10
    assert body["links"] == {}


async def test_cursor_walk_by_links_next_ends_exactly_on_the_last_page(shim: Any) -> None:
    await shim.server.ingest(
        [event(at=f"2024-05-01T10:{i:02d}:00", event_id=f"e{i:02d}") for i in range(12)]
    )
    url = f"{CURSOR_PATH}?{WIDE}&events=delivery&per_page=5"
    pages: list[list[str]] = []
    while url:
        status, body, _ = await shim.get(url, headers=auth(shim.server.api_key))
        assert status == 200, body
        assert list(body) == ["results", "total_count", "links"] and body["total_count"] == 12
        pages.append([r["event_id"] for r in body["results"]])
        url = body["links"].get("next", "")
        if url:
            query = dict(parse_qsl(urlsplit(url).query))
            assert urlsplit(url).path == CURSOR_PATH and url.startswith(f"{CURSOR_PATH}?cursor=")
            assert query["per_page"] == "5" and query["events"] == "delivery"
            assert query["from"] == "2000-01-01T00:00" and query["to"] == "2030-01-01T00:00"
        else:
            assert body["links"] == {}
    assert [len(page) for page in pages] == [5, 5, 2]
    assert [e for page in pages for e in page] == [f"e{i:02d}" for i in reversed(range(12))]


async def test_cursor_bound_to_its_search(shim: Any) -> None:
    await shim.server.ingest(
        [event(at=f"2024-05-01T10:{i:02d}:00", event_id=f"e{i:02d}") for i in range(4)]
    )
    status, body, _ = await shim.get(
        f"{CURSOR_PATH}?{WIDE}&per_page=2", headers=auth(shim.server.api_key)
    )
    next_href = body["links"]["next"]
    status, body, _ = await shim.get(
        next_href + "&events=bounce", headers=auth(shim.server.api_key)
    )
    assert status == 400
    assert body["errors"][0]["description"] == "cursor is not valid for this search"
    status, body, _ = await shim.get(
        f"{CURSOR_PATH}?cursor=garbage", headers=auth(shim.server.api_key)
    )
    assert status == 400


async def test_cursor_form_default_window_is_24_hours(shim: Any) -> None:
    now = datetime.now(UTC)
    await shim.server.ingest(
        [
            event(at=(now - timedelta(hours=20)).isoformat(), event_id="in"),
            event(at=(now - timedelta(hours=25)).isoformat(), event_id="out"),
        ]
    )
    _, body, _ = await shim.get(CURSOR_PATH, headers=auth(shim.server.api_key))
    assert [r["event_id"] for r in body["results"]] == ["in"]


# ---------------------------------------------------------------- large pages


async def test_a_large_page_rendered_on_the_workers_equals_small_pages(shim: Any) -> None:
    # Over 1,000 events a page is shared between the event loop and the worker
    # processes; the joined result must be the small pages' results, in order.
    events = list(generate_events(2600, now=datetime(2024, 6, 1, tzinfo=UTC), seed=7))
    await shim.server.ingest(events)
    _, big = await search(shim, f"{WIDE}&per_page=2600")
    small: list[Any] = []
    for page in range(1, 11):
        _, body = await search(shim, f"{WIDE}&per_page=260&page={page}")
        small += body["results"]
    assert big["total_count"] == 2600 and len(big["results"]) == 2600
    assert big["results"] == small
    assert {r["type"] for r in big["results"]} >= {"delivery", "bounce", "open", "click"}

    _, second = await search(shim, f"{WIDE}&per_page=1300&page=2")  # after an offset
    assert second["results"] == small[1300:]

    cursor_small = await follow_cursor(shim, f"{CURSOR_PATH}?{WIDE}&per_page=300&cursor=initial")
    assert cursor_small == [r["event_id"] for r in small]
    for per_page in (2000, 2600, 1300):  # read in responses of 1,000, or of the page
        cursor_big = await follow_cursor(
            shim, f"{CURSOR_PATH}?{WIDE}&per_page={per_page}&cursor=initial"
        )
        assert cursor_big == cursor_small
