"""Interaction-data dialect through real HTTP: POST /api/3.0/messages/interaction-data/{id}."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .restshim_events import event

PATH = "/api/3.0/messages/interaction-data/"
SEED_BODY = {
    "interactionType": "sends",
    "fromDate": "1972-01-01",
    "toDate": "2023-12-31",
    "pageNumber": 1,
    "order": "asc",
}


async def report(
    shim: Any, body: Any, message: str = "123", key: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key or shim.server.api_key}"}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    status, parsed, _ = await shim.post(PATH + message, data=data, headers=headers)
    return status, parsed


@pytest.fixture
async def sends(shim: Any) -> Any:
    """250 sends of mailing 123 in 2023, plus events that must not show up."""
    await shim.server.ingest(
        [
            event(
                "injection",
                f"2023-05-{1 + i // 24:02d}T{i % 24:02d}:04:59",
                event_id=f"s{i:03d}",
                bulk_email_id=123,
                contact_id=111000 + i,
                recipient=f"c{i}@example.com",
                send_time=f"2023-05-{1 + i // 24:02d}T{i % 24:02d}:04:59",
            )
            for i in range(250)
        ]
        + [
            event("injection", "2023-05-01T00:00:00", event_id="other-mailing", bulk_email_id=124),
            event("injection", "2024-01-01T00:00:00", event_id="next-year", bulk_email_id=123),
            event(
                "open",
                "2023-06-01T08:00:00",
                event_id="o1",
                bulk_email_id=123,
                contact_id=1,
                recipient="c1@example.com",
                send_time="2023-05-01T01:04:59",
            ),
            event("initial_open", "2023-06-02T08:00:00", event_id="o2", bulk_email_id=123),
            event("click", "2023-06-03T08:00:00", event_id="k1", bulk_email_id=123),
            event("delivery", "2023-06-03T08:00:00", event_id="d1", bulk_email_id=123),
            event("bounce", "2023-06-03T08:00:00", event_id="b1", bulk_email_id=123),
            event("out_of_band", "2023-06-03T08:00:01", event_id="b2", bulk_email_id=123),
            event("list_unsubscribe", "2023-06-04T08:00:00", event_id="u1", bulk_email_id=123),
            event("link_unsubscribe", "2023-06-04T08:00:01", event_id="u2", bulk_email_id=123),
            event("spam_complaint", "2023-06-05T08:00:00", event_id="c1", bulk_email_id=123),
        ]
    )
    return shim


async def test_seed_request_replayed(sends: Any) -> None:
    status, body = await report(sends, SEED_BODY)
    assert status == 200
    assert list(body) == ["result", "page_size", "total_pages", "total_rows", "data"]
    assert (body["result"], body["page_size"], body["total_pages"], body["total_rows"]) == (
        "success",
        100,
        3,
        250,
    )
    assert len(body["data"]) == 100
    assert body["data"][0] == {
        "contact_id": 111000,
        "contact_email": "c0@example.com",
        "send_date": "2023-05-01 00:04:59",
        "interaction_type": "sends",
        "interaction_date": "2023-05-01 00:04:59",
        "message_id": 123,
        "page_number": 1,
    }
    assert list(body["data"][0]) == [
        "contact_id", "contact_email", "send_date", "interaction_type", "interaction_date",
        "message_id", "page_number",
    ]  # fmt: skip
    # Page 2, as in the seed, carries no totals.
    status, body = await report(sends, SEED_BODY | {"pageNumber": 2})
    assert list(body) == ["result", "data"]
    assert body["data"][0]["contact_id"] == 111100 and body["data"][0]["page_number"] == 2


async def test_paging_both_orders_returns_every_row_once(sends: Any) -> None:
    for order, expected in (("asc", range(250)), ("desc", reversed(range(250)))):
        seen: list[int] = []
        for page in (1, 2, 3, 4):
            status, body = await report(sends, SEED_BODY | {"pageNumber": page, "order": order})
            assert status == 200
            seen += [row["contact_id"] for row in body["data"]]
        assert seen == [111000 + i for i in expected]


@pytest.mark.parametrize(
    ("kind", "count"),
    [
        ("sends", 250),
        ("deliveries", 1),
        ("opens", 2),
        ("clicks", 1),
        ("bounces", 2),
        ("unsubscribes", 2),
        ("complaints", 1),
    ],
)
async def test_interaction_types(sends: Any, kind: str, count: int) -> None:
    status, body = await report(sends, SEED_BODY | {"interactionType": kind})
    assert status == 200 and body["total_rows"] == count
    assert {row["interaction_type"] for row in body["data"]} == {kind}


async def test_dates_are_inclusive_days(sends: Any) -> None:
    body = SEED_BODY | {"fromDate": "2023-05-02", "toDate": "2023-05-02"}
    _, parsed = await report(sends, body)
    assert parsed["total_rows"] == 24  # the whole of 2 May, midnight to 23:04:59
    _status, parsed = await report(
        sends, SEED_BODY | {"interactionType": "opens", "fromDate": "2023-06-01"}
    )
    assert parsed["data"][0]["send_date"] == "2023-05-01 01:04:59"
    assert parsed["data"][1]["contact_id"] is None and parsed["data"][1]["send_date"] is None


async def test_defaults_and_empty(sends: Any) -> None:
    body = {k: v for k, v in SEED_BODY.items() if k != "pageNumber"}
    status, parsed = await report(sends, body)
    assert status == 200 and parsed["data"][0]["page_number"] == 1
    status, parsed = await report(sends, SEED_BODY, message="999")
    assert parsed == {
        "result": "success",
        "page_size": 100,
        "total_pages": 0,
        "total_rows": 0,
        "data": [],
    }
    status, parsed = await report(sends, SEED_BODY | {"pageNumber": "9"})
    assert parsed == {"result": "success", "data": []}


@pytest.mark.parametrize(
    ("body", "status_text"),
    [
        (SEED_BODY | {"pageNumber": "x"}, "pageNumber is not numeric"),  # the seed's own
        (SEED_BODY | {"pageNumber": True}, "pageNumber is not numeric"),
        (SEED_BODY | {"pageNumber": 0}, "pageNumber must be a whole number of 1 or more"),
        (SEED_BODY | {"pageNumber": 1.5}, "pageNumber must be a whole number of 1 or more"),
        (
            {k: v for k, v in SEED_BODY.items() if k != "interactionType"},
            "interactionType is required",
        ),
        (
            SEED_BODY | {"interactionType": "views"},
            "interactionType must be one of sends, deliveries, opens, clicks, bounces, "
            "unsubscribes, complaints",
        ),
        ({k: v for k, v in SEED_BODY.items() if k != "fromDate"}, "fromDate is required"),
        (SEED_BODY | {"fromDate": "01/01/1972"}, "fromDate is not a valid date (yyyy-mm-dd)"),
        (SEED_BODY | {"fromDate": "2023-02-30"}, "fromDate is not a valid date (yyyy-mm-dd)"),
        ({k: v for k, v in SEED_BODY.items() if k != "toDate"}, "toDate is required"),
        (SEED_BODY | {"toDate": 20231231}, "toDate is not a valid date (yyyy-mm-dd)"),
        ({k: v for k, v in SEED_BODY.items() if k != "order"}, "order is required"),
        (SEED_BODY | {"order": "up"}, "order must be asc or desc"),
        (SEED_BODY | {"fromDate": "2024-01-01"}, "fromDate is after toDate"),
        ("not json", "request body is not valid JSON"),
        ("[1]", "request body must be a JSON object"),
    ],
)
async def test_every_bad_field_is_400(sends: Any, body: Any, status_text: str) -> None:
    status, parsed = await report(sends, body)
    assert status == 400
    assert parsed == {"result": "error", "status": status_text, "code": 400}


async def test_bad_message_id_and_credentials(sends: Any) -> None:
    for message in ("abc", "%7B1%7D"):  # braces too: the dialect answers, not aiohttp
        status, parsed = await report(sends, SEED_BODY, message=message)
        assert (status, parsed["status"]) == (400, "messageId is not numeric")
    unauthorized = {"result": "error", "status": "Unauthorized", "code": 401}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        status, parsed, _ = await sends.post(PATH + "123", json=SEED_BODY, headers=headers)
        assert (status, parsed) == (401, unauthorized), headers
    status, parsed = await report(sends, {"pageNumber": "x"}, key="wrong")  # 401 before 400
    assert status == 401
    status, parsed, _ = await sends.post(
        PATH + "123", json=SEED_BODY, headers={"X-Api-Key": sends.server.api_key}
    )
    assert status == 200 and parsed["total_rows"] == 250
    status, parsed = await report(sends, SEED_BODY, key=sends.server.other_api_key)
    assert parsed["total_rows"] == 0
