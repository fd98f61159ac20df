"""Tastypie-style messageevent through real HTTP: /api/messageevent/ and /{id}/."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from mailevents.sparkpost import event_to_sparkpost

from .restshim_events import event

LIST = "/api/messageevent/"
CANNED = {"error_message": "Sorry, this request could not be processed. Please try again later."}


class Events:
    """The fixture's events: their store ids and the shim to query."""

    def __init__(self, shim: Any, ids: dict[str, int]) -> None:
        self.shim = shim
        self.ids = ids
        self.auth = f"api_key={shim.server.api_key}&username=alice"

    async def get(self, query: str = "", path: str = LIST) -> tuple[int, Any]:
        sep = "&" if query else ""
        status, body, _ = await self.shim.get(f"{path}?{self.auth}{sep}{query}")
        return status, body

    async def names(self, query: str) -> list[str]:
        status, body = await self.get(query)
        assert status == 200, body
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id[obj["id"]] for obj in body["objects"]]


@pytest.fixture
async def tp(shim: Any) -> Events:
    # Ingested in timestamp order, so store ids ascend with time (ties: e1 < e5).
    specs = [
        ("e4", event("bounce", "2023-12-31T23:59:59", send_email_id=14)),  # a Sunday
        ("e1", event("open", "2024-05-05T10:20:30", bulk_email_id=1, send_email_id=11)),
        (
            "e5",
            event(
                "delivery", "2024-05-05T10:20:30", bulk_email_id=3, send_email_id=15, archived=True
            ),
        ),
        ("e2", event("click", "2024-05-06T11:21:31", bulk_email_id=1, send_email_id=12)),
        ("e3", event("Open_100%", "2024-06-07T12:22:32.5", bulk_email_id=2)),  # a Friday
    ]
    response = await shim.server.ingest([ev for _, ev in specs])
    return Events(
        shim, {name: result.id for (name, _), result in zip(specs, response.results, strict=True)}
    )


# ---------------------------------------------------------------- envelope


async def test_list_envelope_exact_bytes(tp: Events) -> None:
    status, raw, response = await tp.shim.get_raw(f"{LIST}?{tp.auth}&event_name=click")
    assert status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    click_id = tp.ids["e2"]
    status, detail, _ = await tp.shim.get(f"{LIST}{click_id}/?{tp.auth}")
    expected = {
        "meta": {"limit": 20, "next": None, "offset": 0, "previous": None, "total_count": 1},
        "objects": [detail],
    }
    assert raw == json.dumps(expected, sort_keys=True, ensure_ascii=False).encode()
    assert list(detail) == [
        "_extra", "archived", "bulk_email", "event_id", "event_json", "event_name",
        "event_timestamp", "event_type", "id", "resource_uri", "send_email",
    ]  # fmt: skip
    assert detail["_extra"] == {}
    assert detail["archived"] is False
    assert detail["bulk_email"] == "/api/bulkemail/1/"
    assert detail["send_email"] == "/api/sendemail/12/"
    assert detail["event_name"] == "click"
    assert detail["event_type"] == "track_event"
    assert detail["event_timestamp"] == "2024-05-06T11:21:31"
    assert detail["resource_uri"] == f"/api/messageevent/{click_id}/"
    assert detail["id"] == click_id


async def test_object_fields(tp: Events) -> None:
    _, body = await tp.get("limit=100")
    objects = {obj["id"]: obj for obj in body["objects"]}
    e3, e4, e5 = (objects[tp.ids[name]] for name in ("e3", "e4", "e5"))
    assert e3["event_timestamp"] == "2024-06-07T12:22:32.500000"  # microseconds when non-zero
    assert e3["send_email"] is None and e3["event_type"] is None
    assert e4["bulk_email"] is None
    assert e5["archived"] is True
    # event_json is the event in SparkPost's form.
    _status, body, _ = await tp.shim.get(
        "/api/v1/message-events?from=2000-01-01T00:00&to=2030-01-01T00:00&events=delivery",
        headers={"Authorization": tp.shim.server.api_key},
    )
    assert e5["event_json"] == body["results"][0]


async def test_defaults_limit_20_offset_0_ascending_id(shim: Any) -> None:
    response = await shim.server.ingest([event(at=f"2024-05-01T10:{i:02d}:00") for i in range(25)])
    ids = [r.id for r in response.results]
    status, body, _ = await shim.get(f"{LIST}?api_key={shim.server.api_key}&username=u")
    assert status == 200
    assert [obj["id"] for obj in body["objects"]] == sorted(ids)[:20]
    meta = body["meta"]
    assert (meta["limit"], meta["offset"], meta["total_count"], meta["previous"]) == (
        20,
        0,
        25,
        None,
    )
    assert meta["next"] == f"{LIST}?api_key={shim.server.api_key}&username=u&limit=20&offset=20"


async def test_natural_order_is_store_id_not_timestamp(shim: Any) -> None:
    response = await shim.server.ingest(
        [event(at="2024-05-01T10:00:00"), event(at="2020-01-01T00:00:00")]
    )
    ids = [r.id for r in response.results]
    _status, body, _ = await shim.get(f"{LIST}?api_key={shim.server.api_key}&username=u")
    assert [obj["id"] for obj in body["objects"]] == ids


def django_order(rows: list[tuple[int, str]], order_by: list[str]) -> list[int]:
    """Rows (id, timestamp) sorted as Django's order_by(*order_by) sorts them.

    Python's sort is stable: sorting by each key from the last to the first
    sorts by the first, then the next among its ties, and so on.
    """
    out = list(rows)
    for key in reversed(order_by):
        column = 0 if key.lstrip("-") == "id" else 1
        out.sort(key=lambda row: row[column], reverse=key.startswith("-"))
    return [row[0] for row in out]


@pytest.mark.parametrize(
    "order_by",
    [
        ["-event_timestamp", "id"],
        ["event_timestamp", "-id"],
        ["-event_timestamp", "-id"],
        ["event_timestamp", "id"],
        ["id", "-event_timestamp"],
        ["-id", "event_timestamp"],
        ["-event_timestamp", "event_timestamp", "id"],
        ["event_timestamp", "event_timestamp", "-id"],
    ],
)
async def test_several_order_by_sort_by_each_in_turn(shim: Any, order_by: list[str]) -> None:
    # Runs of equal timestamps, each run ingested out of time order.
    stamps = [f"2024-05-01T10:{(i * 7) % 5:02d}:00" for i in range(23)]
    response = await shim.server.ingest([event(at=at) for at in stamps])
    rows = [(r.id, at) for r, at in zip(response.results, stamps, strict=True)]
    expected = django_order(rows, order_by)
    ordering = "&".join(f"order_by={key}" for key in order_by)
    url = f"{LIST}?api_key={shim.server.api_key}&username=u&limit=4&{ordering}"
    seen: list[int] = []
    while url:  # page by page: each follow-on page resumes in the same order
        status, body, _ = await shim.get(url)
        assert status == 200, body
        seen += [obj["id"] for obj in body["objects"]]
        url = body["meta"]["next"]
    assert seen == expected
    _, body, _ = await shim.get(
        f"{LIST}?api_key={shim.server.api_key}&username=u&limit=5&offset=13&{ordering}"
    )
    assert [obj["id"] for obj in body["objects"]] == expected[13:18]  # a deep page alone


@pytest.mark.parametrize(
    ("query", "limit"),
    [("limit=0", 1000), ("limit=5000", 1000), ("limit=%205%20", 5), ("limit=%2B3", 3)],
)
async def test_limit_coercion(tp: Events, query: str, limit: int) -> None:
    status, body = await tp.get(query)
    assert status == 200 and body["meta"]["limit"] == limit


async def test_offset_past_the_end_is_empty(tp: Events) -> None:
    status, body = await tp.get("offset=50")
    assert status == 200 and body["objects"] == [] and body["meta"]["total_count"] == 5
    assert body["meta"]["next"] is None
    assert body["meta"]["previous"].endswith("limit=20&offset=30")


async def test_next_previous_keep_parameters_in_order(tp: Events) -> None:
    key = tp.shim.server.api_key
    status, body, _ = await tp.shim.get(
        f"{LIST}?event_name__in=open,click&api_key={key}&limit=1&offset=1&username=a%20b"
        "&event_name__in=bounce&format=json"
    )
    assert status == 200
    base = (
        f"{LIST}?event_name__in=open%2Cclick&event_name__in=bounce&api_key={quote(key)}"
        "&username=a+b&format=json"
    )
    assert body["meta"]["next"] == f"{base}&limit=1&offset=2"
    assert body["meta"]["previous"] == f"{base}&limit=1&offset=0"


async def test_paging_returns_every_event_once(shim: Any) -> None:
    response = await shim.server.ingest([event(at=f"2024-05-01T10:{i:02d}:00") for i in range(45)])
    seen: list[int] = []
    url = f"{LIST}?api_key={shim.server.api_key}&username=u&limit=10"
    while url:
        status, body, _ = await shim.get(url)
        assert status == 200
        seen += [obj["id"] for obj in body["objects"]]
        url = body["meta"]["next"]
    assert seen == sorted(r.id for r in response.results)


async def test_a_walk_by_next_links_while_events_arrive_returns_each_earlier_event_once(
    shim: Any,
) -> None:
    # Newest first: every new event lands before the walk's position, and a
    # pure OFFSET would hand the rows it pushes down out again on the next page.
    response = await shim.server.ingest(
        [event(at=f"2024-05-01T10:{i // 2:02d}:00") for i in range(47)]
    )
    minute = {r.id: i // 2 for i, r in enumerate(response.results)}
    before = set(minute)
    seen: list[int] = []
    url = f"{LIST}?api_key={shim.server.api_key}&username=u&limit=10&order_by=-event_timestamp"
    n = 0
    while url:
        status, body, _ = await shim.get(url)
        assert status == 200, body
        seen += [obj["id"] for obj in body["objects"]]
        url = body["meta"]["next"]
        await shim.server.ingest(
            [event(at="2024-05-02T00:00:00", event_id=f"new{n}"), event(at="2024-04-01T00:00:00")]
        )
        n += 1
    assert len(seen) == len(set(seen))  # nothing repeated
    assert before <= set(seen)  # nothing that was there skipped
    earlier = [i for i in seen if i in before]
    assert earlier == sorted(before, key=lambda i: (-minute[i], -i))


# ---------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["e4", "e1", "e5", "e2", "e3"]),
        ("bulk_email=1", ["e1", "e2"]),
        ("bulk_email_id=2", ["e3"]),  # the seed's parameter name
        ("bulk_email=true", ["e1", "e2"]),  # Tastypie reads true as True, Django as 1
        ("bulk_email=none", ["e4"]),  # exact None is IS NULL
        ("bulk_email__in=1,2", ["e1", "e2", "e3"]),
        ("bulk_email__in=1&bulk_email__in=3", ["e1", "e5", "e2"]),
        ("bulk_email__in=", []),
        ("bulk_email__isnull=true", ["e4"]),
        ("bulk_email__isnull=false", ["e1", "e5", "e2", "e3"]),
        ("send_email=14", ["e4"]),
        ("send_email_id=11", ["e1"]),
        ("send_email__in=11,15", ["e1", "e5"]),
        ("send_email__isnull=True", ["e3"]),
        ("event_name=open", ["e1"]),
        ("event_name=Open", []),
        ("event_name=true", []),  # compares as "True"
        ("event_name=None", []),
        ("event_name__iexact=OPEN", ["e1"]),
        ("event_name__contains=pen", ["e1", "e3"]),
        ("event_name__contains=PEN", []),
        ("event_name__icontains=PEN", ["e1", "e3"]),
        ("event_name__startswith=Open", ["e3"]),
        ("event_name__istartswith=open", ["e1", "e3"]),
        ("event_name__endswith=100%25", ["e3"]),  # % is literal
        ("event_name__contains=_", ["e3"]),  # so is _
        ("event_name__contains=%25", ["e3"]),
        ("event_name__iendswith=CLICK", ["e2"]),
        ("event_name__in=open,click", ["e1", "e2"]),
        ("event_name__in=open&event_name__in=bounce", ["e4", "e1"]),
        ("event_name__in=open,%20click", ["e1"]),  # items are not trimmed
        ("event_name__isnull=false", ["e4", "e1", "e5", "e2", "e3"]),
        ("event_name__isnull=true", []),
        ("event_timestamp=2024-05-05T10:20:30", ["e1", "e5"]),
        ("event_timestamp=2024-05-05%2010:20:30", ["e1", "e5"]),
        ("event_timestamp=2024-05-05T12:20:30%2B02:00", ["e1", "e5"]),
        ("event_timestamp=2024-06-07T12:22:32.5Z", ["e3"]),
        ("event_timestamp=2024-05-05", []),  # a date means midnight
        # Valid times whose UTC is past 9999 or before year 1: no event's time.
        ("event_timestamp=9999-12-31T20:00-10:00", []),
        ("event_timestamp=0001-01-01T00:30%2B01:00", []),
        ("event_timestamp__year=2023", ["e4"]),
        ("event_timestamp__month=6", ["e3"]),
        ("event_timestamp__month=13", []),
        ("event_timestamp__day=07", ["e3"]),
        ("event_timestamp__week_day=1", ["e4", "e1", "e5"]),  # 1 = Sunday
        ("event_timestamp__week_day=6", ["e3"]),  # 6 = Friday
        ("event_timestamp__hour=10", ["e1", "e5"]),
        ("event_timestamp__minute=21", ["e2"]),
        ("event_timestamp__second=32", ["e3"]),
        ("event_name=open&bulk_email=1", ["e1"]),  # filters AND together
        ("event_name=click&event_name=open", ["e1"]),  # repeated: the last one wins
        ("not_a_field=1&format=json&dehydrate=x", ["e4", "e1", "e5", "e2", "e3"]),
        ("order_by=-event_timestamp", ["e3", "e2", "e5", "e1", "e4"]),
        ("order_by=event_timestamp", ["e4", "e1", "e5", "e2", "e3"]),
        ("order_by=-id", ["e3", "e2", "e5", "e1", "e4"]),
        ("order_by=id", ["e4", "e1", "e5", "e2", "e3"]),
        ("sort_by=-event_timestamp", ["e3", "e2", "e5", "e1", "e4"]),
    ],
)
async def test_filters(tp: Events, query: str, expected: list[str]) -> None:
    assert await tp.names(query) == expected


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=abc", "Invalid limit 'abc' provided. Please provide a positive integer."),
        ("limit=5.0", "Invalid limit '5.0' provided. Please provide a positive integer."),
        ("limit=", "Invalid limit '' provided. Please provide a positive integer."),
        # Tastypie HTML-escapes its own ">=" too.
        ("limit=-1", "Invalid limit '-1' provided. Please provide a positive integer &gt;= 0."),
        ("limit=%3Cb%3E", "Invalid limit '&lt;b&gt;' provided. Please provide a positive integer."),
        ("offset=abc", "Invalid offset 'abc' provided. Please provide an integer."),
        ("offset=-1", "Invalid offset '-1' provided. Please provide a positive integer &gt;= 0."),
        ("id=5", "The 'id' field does not allow filtering."),
        ("event_type=x", "The 'event_type' field does not allow filtering."),
        # Stock Tastypie looks the field up on the model before checking filtering.
        ("resource_uri=x", "The 'resource_uri' field is not a valid field name"),
        ("resource_uri__in=x", "The 'resource_uri' field is not a valid field name"),
        # A trailing bit is a lookup only when it is one of the field's own.
        ("event_name__year=1", "The 'event_name' field does not support relations."),
        (
            "event_timestamp__date=x",
            "'date' is not an allowed filter on the 'event_timestamp' field.",
        ),
        ("event_name__search=x", "The 'event_name' field does not support relations."),
        (
            "bulk_email__contains=1",
            "Lookups are not allowed more than one level deep on the 'bulk_email' field.",
        ),
        ("event_name__gt=a", "'gt' is not an allowed filter on the 'event_name' field."),
        ("bulk_email__gte=1", "'gte' is not an allowed filter on the 'bulk_email' field."),
        ("event_timestamp__in=x", "'in' is not an allowed filter on the 'event_timestamp' field."),
        ("event_name__foo=a", "The 'event_name' field does not support relations."),
        (
            "bulk_email__name=x",
            "Lookups are not allowed more than one level deep on the 'bulk_email' field.",
        ),
        ("bulk_email=abc", "Invalid resource lookup data provided (mismatched type)."),
        (
            "bulk_email=/api/bulkemail/1/",
            "Invalid resource lookup data provided (mismatched type).",
        ),
        ("bulk_email__in=1,x", "Invalid resource lookup data provided (mismatched type)."),
        ("event_timestamp__year=abc", "Invalid resource lookup data provided (mismatched type)."),
        ("event_timestamp__day=5.0", "Invalid resource lookup data provided (mismatched type)."),
        ("event_name__contains=none", "Invalid resource lookup data provided (mismatched type)."),
        (
            "event_timestamp=abc",
            "['“abc” value has an invalid format. It must be in "
            "YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ] format.']",
        ),
        (
            "event_timestamp=2019-02-30",
            "['“2019-02-30” value has the correct format (YYYY-MM-DD) but it is an invalid date.']",
        ),
        ("order_by=x", "No matching 'x' field for ordering on."),
        ("order_by=-event_name", "The 'event_name' field does not allow ordering."),
        # Checks run in Tastypie's order: filters, then sorting, then limit.
        ("limit=abc&order_by=x&id=1", "The 'id' field does not allow filtering."),
        ("limit=abc&order_by=x", "No matching 'x' field for ordering on."),
        # Conversion errors come in Django's sorted lookup order.
        (
            "event_timestamp=abc&bulk_email=x",
            "Invalid resource lookup data provided (mismatched type).",
        ),
    ],
)
async def test_errors_are_tastypies(tp: Events, query: str, message: str) -> None:
    status, raw, response = await tp.shim.get_raw(f"{LIST}?{tp.auth}&{query}")
    assert status == 400
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert raw == json.dumps({"error": message}, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "query",
    [
        "bulk_email__isnull=maybe",
        "event_name__in=true",
        "event_name__in=none",
        "event_timestamp__year=99999",
        "event_timestamp=true",
        "order_by=event_timestamp__year",
    ],
)
async def test_what_crashes_django_is_a_400_here(tp: Events, query: str) -> None:
    # Stock Tastypie answers these with its canned 500; bad input never gets a 5xx here.
    status, body = await tp.get(query)
    assert status == 400 and set(body) == {"error"} and body["error"]


# ---------------------------------------------------------------- auth


async def test_auth(tp: Events) -> None:
    key = tp.shim.server.api_key
    ok = [
        (f"{LIST}?api_key={key}&username=u", {}),
        (LIST, {"Authorization": f"ApiKey u:{key}"}),
        (LIST, {"Authorization": f"apikey u:{key}"}),
    ]
    for url, headers in ok:
        status, _body, _ = await tp.shim.get(url, headers=headers)
        assert status == 200, (url, headers)
    refused = [
        (LIST, {}),
        (f"{LIST}?api_key={key}", {}),  # no username
        (f"{LIST}?username=u", {}),
        (f"{LIST}?api_key=wrong&username=u", {}),
        (LIST, {"Authorization": f"ApiKey {key}"}),  # no "user:"
        (f"{LIST}?api_key=wrong&username=u&id=5&limit=abc", {}),  # 401 before 400
        (f"{LIST}5/?api_key=wrong&username=u", {}),
        (f"{LIST}abc/?api_key=wrong&username=u", {}),
    ]
    for url, headers in refused:
        status, raw, _ = await tp.shim.get_raw(url, headers=headers)
        assert (status, raw) == (401, b""), (url, headers)


async def test_tenants_are_separate(tp: Events) -> None:
    other = tp.shim.server.other_api_key
    status, body, _ = await tp.shim.get(f"{LIST}?api_key={other}&username=u")
    assert body["meta"]["total_count"] == 0
    status, raw, _ = await tp.shim.get_raw(f"{LIST}{tp.ids['e1']}/?api_key={other}&username=u")
    assert (status, raw) == (404, b"")


# ---------------------------------------------------------------- detail


async def test_detail(tp: Events) -> None:
    status, raw, _response = await tp.shim.get_raw(f"{LIST}{tp.ids['e1']}/?{tp.auth}")
    assert status == 200
    body = json.loads(raw)
    assert raw == json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
    assert body["event_name"] == "open" and body["id"] == tp.ids["e1"]
    status, raw, _ = await tp.shim.get_raw(f"{LIST}999999/?{tp.auth}")
    assert (status, raw) == (404, b"")
    status, raw, _ = await tp.shim.get_raw(f"{LIST}0/?{tp.auth}")
    assert (status, raw) == (404, b"")
    for pk in ("abc", "1.5", "1/extra"):
        status, body, _ = await tp.shim.get(f"{LIST}{pk}/?{tp.auth}")
        assert (status, body) == (404, CANNED), pk


async def test_dehydrate_resource_uri(tp: Events) -> None:
    e1 = tp.ids["e1"]
    _status, body, _ = await tp.shim.get(f"{LIST}{e1}/?{tp.auth}&dehydrate=resource_uri")
    assert body["resource_uri"] == {
        "uri": f"/api/messageevent/{e1}/",
        "id": e1,
        "event_id": body["event_id"],
        "event_name": "open",
        "event_timestamp": "2024-05-05T10:20:30",
    }
    _, listed = await tp.get("dehydrate=bulk_email,resource_uri&event_name=open")
    assert listed["objects"][0]["resource_uri"] == body["resource_uri"]
    _, plain = await tp.get("dehydrate=bulk_email&event_name=open")
    assert plain["objects"][0]["resource_uri"] == f"/api/messageevent/{e1}/"
    assert body["event_json"] == event_to_sparkpost_of(plain["objects"][0])


def event_to_sparkpost_of(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["event_json"]


_ = event_to_sparkpost
