"""Bad input through real HTTP: every case is the dialect's own 4xx, never a 5xx,
and the server log stays quiet (no ERROR line, no traceback).

The cases are those a hostile client found: keys that cannot be gRPC
metadata, integers past int64, dates at the calendar's ends, JSON that parses
into something unusable, bodies that are not what their Content-Encoding
says, and requests aiohttp itself refuses.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from badinput import (
    assert_quiet,
    is_copernica_error,
    is_interaction_error,
    is_sparkpost_error,
    is_tastypie_error,
    is_webhook_error,
    raw_http,
    request_bytes,
)

from .restshim_events import event

INTERACTION = b"/api/3.0/messages/interaction-data/"
GOOD_REPORT = {
    "interactionType": "sends",
    "fromDate": "1972-01-01",
    "toDate": "2023-12-31",
    "pageNumber": 1,
    "order": "asc",
}


@pytest.fixture(autouse=True)
def quiet(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield
    assert_quiet(caplog)


def port(shim: Any) -> int:
    return int(urlsplit(shim.base).port or 0)


async def send(shim: Any, method: str, target: bytes, headers: Any = (), body: bytes = b"") -> Any:
    return await raw_http(port(shim), request_bytes(method, target, list(headers), body))


def bearer(shim: Any) -> tuple[bytes, bytes]:
    return (b"Authorization", b"Bearer " + shim.server.api_key.encode())


# -- 1. keys that cannot be gRPC metadata -------------------------------------

# (aiohttp itself refuses control characters in a header with a 400: see REFUSED.)
BAD_KEYS = [b"m\xc3\xa9k", b"\xff\xfe", b"\xe2\x80\x8bkey", b"k" * 600]
BAD_QUERY_KEYS = [b"%C3%A9", b"%00", b"%0D%0A", b"%FF", b"a%01b"]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_a_key_that_cannot_be_metadata_is_each_dialects_401_in_a_header(
    shim: Any, key: bytes
) -> None:
    answer = await send(shim, "GET", b"/api/v1/message-events", [(b"Authorization", key)])
    assert answer.status == 401 and is_sparkpost_error(401, answer.json())
    answer = await send(
        shim, "GET", b"/api/messageevent/", [(b"Authorization", b"ApiKey user:" + key)]
    )
    assert answer.status == 401 and answer.body == b""
    answer = await send(
        shim,
        "POST",
        INTERACTION + b"1",
        [(b"Authorization", b"Bearer " + key)],
        json.dumps(GOOD_REPORT).encode(),
    )
    assert answer.status == 401 and is_interaction_error(401, answer.json())
    for hook in (b"/webhooks/sparkpost", b"/webhooks/sendgrid"):
        answer = await send(shim, "POST", hook, [(b"Authorization", b"Bearer " + key)], b"[]")
        assert answer.status == 401 and is_webhook_error(401, answer.json())
        assert "retry-after" not in answer.headers


@pytest.mark.parametrize("key", BAD_QUERY_KEYS)
async def test_a_key_that_cannot_be_metadata_is_each_dialects_401_in_the_query(
    shim: Any, key: bytes
) -> None:
    answer = await send(shim, "GET", b"/api/messageevent/?username=u&api_key=" + key)
    assert answer.status == 401 and answer.body == b""
    answer = await send(shim, "GET", b"/api/messageevent/5/?username=u&api_key=" + key)
    assert answer.status == 401 and answer.body == b""
    answer = await send(shim, "GET", b"/v1/message/m1/events?access_token=" + key)
    assert answer.status == 400
    assert answer.json() == {"error": {"message": "Invalid access token"}}


async def test_a_webhook_basic_password_with_a_non_utf8_byte_is_401(shim: Any) -> None:
    import base64

    basic = b"Basic " + base64.b64encode(b"user:\xff\xfekey")
    answer = await send(shim, "POST", b"/webhooks/sparkpost", [(b"Authorization", basic)], b"[]")
    assert answer.status == 401 and "retry-after" not in answer.headers
    token = (b"X-MessageSystems-Webhook-Token", b"\xc3\xa9\xff")
    answer = await send(shim, "POST", b"/webhooks/sparkpost", [token], b"[]")
    assert answer.status == 401 and "retry-after" not in answer.headers


# -- 2. integers past int64, and the calendar's ends --------------------------


@pytest.mark.parametrize(
    "query",
    [
        b"event_timestamp__week_day=-9223372036854775809",
        b"event_timestamp__hour=9223372036854775808",
        b"bulk_email_id=99999999999999999999",
        b"send_email_id__in=1,18446744073709551616",
        b"limit=" + b"9" * 5000,
        b"offset=" + b"9" * 40,
    ],
)
async def test_tastypie_integers_past_int64_are_400(shim: Any, query: bytes) -> None:
    key = shim.server.api_key.encode()
    answer = await send(shim, "GET", b"/api/messageevent/?username=u&api_key=" + key + b"&" + query)
    assert answer.status in (200, 400), answer.body
    assert answer.status == 200 or is_tastypie_error(400, answer.json())


@pytest.mark.parametrize("pk", [b"99999999999999999999", b"9223372036854775808", b"9" * 5000])
async def test_a_tastypie_id_past_int64_is_404(shim: Any, pk: bytes) -> None:
    key = shim.server.api_key.encode()
    answer = await send(shim, "GET", b"/api/messageevent/" + pk + b"/?username=u&api_key=" + key)
    assert answer.status == 404


@pytest.mark.parametrize("page", [b"9" * 30, b"9" * 5000, b"18446744073709551616"])
async def test_sparkpost_page_past_int64_is_400(shim: Any, page: bytes) -> None:
    key = shim.server.api_key.encode()
    answer = await send(
        shim, "GET", b"/api/v1/message-events?page=" + page, [(b"Authorization", key)]
    )
    assert answer.status == 400 and is_sparkpost_error(400, answer.json())


@pytest.mark.parametrize(
    "query",
    [
        b"from=9999-12-31T23:59&timezone=America/New_York",
        b"from=0001-01-01T00:00&to=0001-01-01T05:00&timezone=Asia/Tokyo",
        b"from=0001-01-01T00:00&to=9999-12-31T23:59&timezone=Pacific/Kiritimati",
        b"timezone=" + b"a" * 1000,
        b"timezone=Europe/" + b"%00",
    ],
)
async def test_sparkpost_windows_at_the_calendars_ends(shim: Any, query: bytes) -> None:
    key = shim.server.api_key.encode()
    answer = await send(shim, "GET", b"/api/v1/message-events?" + query, [(b"Authorization", key)])
    assert answer.status in (200, 400), answer.body
    if answer.status == 400:
        assert is_sparkpost_error(400, answer.json())


@pytest.mark.parametrize(
    "query", [b"start=9999-12-15", b"end=0001-01-15", b"start=9999-12-31&end=9999-12-31"]
)
async def test_copernica_windows_are_clamped_at_the_calendars_ends(shim: Any, query: bytes) -> None:
    await shim.server.ingest([event("delivery", "2024-01-01T00:00:00", transmission_id="m1")])
    key = shim.server.api_key.encode()
    answer = await send(shim, "GET", b"/v1/message/m1/events?access_token=" + key + b"&" + query)
    assert answer.status == 200 and answer.json() == []


async def test_interaction_to_date_9999_12_31_means_until_ever(shim: Any) -> None:
    await shim.server.ingest(
        [
            event("injection", "1972-01-01T00:00:00", event_id="early", bulk_email_id=7),
            event("injection", "2999-06-01T00:00:00", event_id="late", bulk_email_id=7),
        ]
    )
    body = {**GOOD_REPORT, "fromDate": "0001-01-01", "toDate": "9999-12-31"}
    answer = await send(shim, "POST", INTERACTION + b"7", [bearer(shim)], json.dumps(body).encode())
    assert answer.status == 200, answer.body
    assert answer.json()["total_rows"] == 2


async def test_a_copernica_message_id_longer_than_any_is_400(shim: Any) -> None:
    key = shim.server.api_key.encode()
    answer = await send(shim, "GET", b"/v1/message/" + b"m" * 6000 + b"/events?access_token=" + key)
    assert answer.status == 400 and is_copernica_error(400, answer.json())


@pytest.mark.parametrize(
    "message_id", [b"9223372036854775808", b"9" * 5000, b"0" * 30 + b"18446744073709551616"]
)
async def test_interaction_message_ids_past_int64_are_400(shim: Any, message_id: bytes) -> None:
    answer = await send(
        shim, "POST", INTERACTION + message_id, [bearer(shim)], json.dumps(GOOD_REPORT).encode()
    )
    assert answer.status == 400 and is_interaction_error(400, answer.json())


# -- 3. JSON that parses into something unusable ------------------------------

NASTY_JSON: list[bytes] = [
    b'{"interactionType":"sends","fromDate":"2023-01-01","toDate":"2023-01-02","order":"asc",'
    + b'"pageNumber":'
    + number
    + b"}"
    for number in (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"1" + b"0" * 400, b"1e300")
] + [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, b"\xff\xfe"]


@pytest.mark.parametrize("body", NASTY_JSON, ids=range(len(NASTY_JSON)))
async def test_interaction_nasty_json_is_400(shim: Any, body: bytes) -> None:
    answer = await send(shim, "POST", INTERACTION + b"1", [bearer(shim)], body)
    assert answer.status == 400 and is_interaction_error(400, answer.json())


WEBHOOK_BODIES: list[bytes] = [
    b"[" * 100_000 + b"]" * 100_000,
    b'[{"msys":' * 50_000 + b"{}" + b"}]" * 50_000,
    b'[{"timestamp":' + b"1" * 400 + b',"event":"delivered","sg_event_id":"x"}]',
    b"[NaN]",
    b'[{"timestamp":Infinity}]',
    b"[1e999]",
]


@pytest.mark.parametrize("body", WEBHOOK_BODIES, ids=range(len(WEBHOOK_BODIES)))
@pytest.mark.parametrize("hook", [b"/webhooks/sparkpost", b"/webhooks/sendgrid"])
async def test_webhook_nasty_json_is_400(shim: Any, hook: bytes, body: bytes) -> None:
    answer = await send(shim, "POST", hook, [bearer(shim)], body)
    assert answer.status == 400 and is_webhook_error(400, answer.json()), answer.body


async def test_a_webhook_event_nested_past_what_can_be_kept_is_rejected_alone(shim: Any) -> None:
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    body = b'[{"msys":{"message_event":{"type":"delivery","event_id":"d1","x":' + deep + b"}}}]"
    answer = await send(shim, "POST", b"/webhooks/sparkpost", [bearer(shim)], body)
    assert answer.status in (200, 400), answer.body
    if answer.status == 200:
        assert answer.json()["rejected"] == 1


ENCODINGS = [b"gzip", b"deflate", b"br", b"zstd", b"gzip, gzip"]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_body_that_is_not_its_content_encoding_is_400(shim: Any, encoding: bytes) -> None:
    headers = [bearer(shim), (b"Content-Encoding", encoding)]
    for target, envelope in (
        (INTERACTION + b"1", is_interaction_error),
        (b"/webhooks/sparkpost", is_webhook_error),
    ):
        answer = await send(shim, "POST", target, headers, b"this is not compressed at all")
        assert answer.status == 400
        if encoding in (b"gzip", b"deflate"):  # aiohttp refuses the others before us
            assert envelope(400, answer.json()), answer.body


async def test_a_truncated_gzip_body_is_400(shim: Any) -> None:
    body = gzip.compress(json.dumps([{"msys": {}}] * 100).encode())[:-20]
    answer = await send(
        shim, "POST", b"/webhooks/sparkpost", [bearer(shim), (b"Content-Encoding", b"gzip")], body
    )
    assert answer.status == 400 and is_webhook_error(400, answer.json())


# -- 6. what aiohttp refuses itself is one WARNING line ------------------------

REFUSED: list[Callable[[Any], bytes]] = [
    lambda key: request_bytes("GET", b"/api/v1/message-events?x=" + b"a" * 9000, []),
    lambda key: request_bytes("GET", b"/api/v1/message-events?x=\x00", []),
    lambda key: (
        b"POST /webhooks/sparkpost HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    ),
    lambda key: request_bytes(
        "GET", b"/api/v1/message-events", [(b"X-H%d" % i, b"v") for i in range(200)]
    ),
    lambda key: request_bytes(
        "POST", b"/webhooks/sparkpost", [(b"Content-Encoding", b"br")], b"[]"
    ),
    lambda key: request_bytes("GET", b"/api/v1/message-events", [(b"X-Big", b"v" * 9000)]),
]


@pytest.mark.parametrize("make", REFUSED, ids=range(len(REFUSED)))
async def test_requests_aiohttp_refuses_are_400_and_one_warning(
    shim: Any, make: Callable[[Any], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    answer = await raw_http(port(shim), make(shim.server.api_key))
    assert 400 <= answer.status < 500
    warnings = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(warnings) <= 1
    assert all(r.levelno == logging.WARNING and "\n" not in r.getMessage() for r in warnings)
    # and the shim still answers
    key = shim.server.api_key.encode()
    ok = await send(shim, "GET", b"/api/v1/message-events", [(b"Authorization", key)])
    assert ok.status == 200
