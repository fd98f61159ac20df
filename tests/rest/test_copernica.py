"""Copernica dialect through real HTTP: GET /v1/message/{id}/events."""

from __future__ import annotations

from typing import Any

import pytest

from mailevents.v1 import message_event_pb2 as pb

from .restshim_events import event

TX = "tx1"


@pytest.fixture
async def cop(shim: Any) -> Any:
    common = {
        "transmission_id": TX,
        "recipient": "a@x.com",
        "sender": "news@shop.com",
        "contact_id": 5,
        "template_id": "tpl",
        "send_time": "2024-03-10T09:00:00",
    }
    await shim.server.ingest(
        [
            event(
                "injection",
                "2024-03-10T09:00:00",
                event_id="inj",
                tags=["spring", "promo"],
                **common,
            ),
            event("delivery", "2024-03-10T09:00:05", event_id="dlv", num_retries=2, **common),
            event(
                "open",
                "2024-03-20T10:00:00",
                event_id="opn",
                tags=["promo"],
                ip_address="1.2.3.4",
                user_agent="Mozilla",
                geo_ip=pb.GeoIp(country="US", region="MD", city="Columbia"),
                **common,
            ),
            event(
                "click",
                "2024-04-10T08:59:59",
                event_id="clk",
                target_link_url="http://e.com",
                **common,
            ),
            event(
                "bounce",
                "2024-04-10T09:00:00",
                event_id="bnc",
                error_code="554",
                reason="550 no such user",
                **common,
            ),
            event("delay", "2024-04-15T00:00:00", event_id="dly", **common),
            event(
                "spam_complaint", "2024-05-01T00:00:00", event_id="spm", fbtype="abuse", **common
            ),
            event("delivery", "2024-03-15T00:00:00", event_id="other-tx", transmission_id="tx2"),
            event("delivery", "2024-02-28T12:00:00", event_id="feb28", transmission_id="leap"),
            event("delivery", "2024-02-29T12:00:00", event_id="feb29", transmission_id="leap"),
        ]
    )
    return shim


async def events(shim: Any, message: str = TX, query: str = "", slash: str = "") -> list[str]:
    status, body, response = await shim.get(
        f"/v1/message/{message}/events{slash}?access_token={shim.server.api_key}&{query}"
    )
    assert status == 200, body
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return [item["id"] for item in body]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # No dates: from the message's send time to one month after (exclusive).
        ("", ["inj", "dlv", "opn", "clk"]),
        # Start only: a month from the start.
        ("start=2024-04-01", ["clk", "bnc", "dly"]),
        # End only: the month before the (exclusive) end.
        ("end=2024-04-15", ["opn", "clk", "bnc"]),
        # Both, shorter than a month: as given.
        ("start=2024-03-10&end=2024-03-11", ["inj", "dlv"]),
        # Both, longer than a month: cut to a month, the start leading.
        ("start=2024-03-01&end=2024-12-31", ["inj", "dlv", "opn"]),
        ("start=2024-03-11&end=2024-03-10", []),
        ("tags=promo", ["inj", "opn"]),
        ("tags=spring;nothing", ["inj"]),
        ("tags=nothing", []),
    ],
)
async def test_windows_and_tags(cop: Any, query: str, expected: list[str]) -> None:
    assert await events(cop, query=query) == expected


async def test_a_month_from_31_january_ends_on_29_february(cop: Any) -> None:
    assert await events(cop, "leap", "start=2024-01-31") == ["feb28"]


async def test_trailing_slash_unknown_message_and_other_tenant(cop: Any) -> None:
    assert await events(cop, slash="/") == ["inj", "dlv", "opn", "clk"]
    assert await events(cop, "no-such-message") == []
    assert await events(cop, "%7Bx%7D") == []  # braces too: the dialect answers, not aiohttp
    status, body, _ = await cop.get(
        f"/v1/message/{TX}/events?access_token={cop.server.other_api_key}"
    )
    assert (status, body) == (200, [])


async def test_rendering(cop: Any) -> None:
    by_id = {}
    for start in ("2024-03-01", "2024-04-01", "2024-05-01"):
        _, body, _ = await cop.get(
            f"/v1/message/{TX}/events?access_token={cop.server.api_key}&start={start}"
        )
        by_id.update({item["id"]: item for item in body})
    common = {
        "message": TX,
        "email": "a@x.com",
        "senderdomain": "shop.com",
        "profile": 5,
        "template": "tpl",
    }
    assert by_id["inj"] == {
        "event": "attempt",
        "type": "attempt",
        "id": "inj",
        "time": "2024-03-10 09:00:00",
        "tags": "spring;promo",
        **common,
    }
    assert list(by_id["inj"])[:4] == ["event", "type", "id", "message"]
    assert by_id["dlv"]["event"] == "delivery" and by_id["dlv"]["attempts"] == 3
    assert by_id["opn"] == {
        "event": "open",
        "type": "open",
        "id": "opn",
        "time": "2024-03-20 10:00:00",
        "tags": "promo",
        **common,
        "ip": "1.2.3.4",
        "header": "Mozilla",
        "countrycode": "US",
        "regioncode": "MD",
        "city": "Columbia",
    }
    assert by_id["clk"]["event"] == "click" and by_id["clk"]["linkinfo"] == "http://e.com"
    assert {k: by_id["bnc"][k] for k in ("event", "type", "kind", "code", "description")} == {
        "event": "failure",
        "type": "failure",
        "kind": "bounce",
        "code": "554",
        "description": "550 no such user",
    }
    assert by_id["dly"]["event"] == by_id["dly"]["type"] == "retry"
    assert by_id["dly"]["kind"] == "delay"
    assert by_id["spm"]["event"] == by_id["spm"]["type"] == "abuse"
    assert by_id["spm"]["kind"] == "abuse"  # the complaint's fbtype
    for item in by_id.values():
        assert item["event"] == item["type"]


@pytest.mark.parametrize("token", ["", "wrong"])
async def test_bad_token_is_400(cop: Any, token: str) -> None:
    for query in (f"access_token={token}", f"access_token={token}&start=nope"):
        status, body, _ = await cop.get(f"/v1/message/{TX}/events?{query}")
        assert (status, body) == (400, {"error": {"message": "Invalid access token"}})


@pytest.mark.parametrize("query", ["start=2024-3-1", "end=yesterday", "start=2024-02-30"])
async def test_bad_dates_are_400(cop: Any, query: str) -> None:
    status, body, _ = await cop.get(
        f"/v1/message/{TX}/events?access_token={cop.server.api_key}&{query}"
    )
    assert status == 400
    assert body["error"]["message"].startswith("Invalid value for parameter")


async def test_large_message_streams_every_event_once(shim: Any) -> None:
    await shim.server.ingest(
        [
            event(
                "delivery",
                f"2024-03-{1 + i // 1000:02d}T00:00:{i % 60:02d}",
                event_id=f"e{i}",
                transmission_id="big",
            )
            for i in range(12_500)
        ]
    )
    got = await events(shim, "big", "start=2024-03-01")
    assert sorted(got) == sorted(f"e{i}" for i in range(12_500))
