"""The webhook receivers on a real aiohttp server, ingesting into a real gRPC server:
SparkPost and SendGrid batches, the auth forms providers send, retries absorbed,
malformed events rejected alone, and 5xx (so the provider retries) when storing fails.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from conftest import Server
from factories import search_all
from pgtest import fresh_database

from mailevents.v1 import message_event_pb2 as pb
from mailevents.v1 import message_event_service_pb2 as spb
from mailevents.v1 import message_event_service_pb2_grpc as sgrpc
from mailevents_server.auth import KeyResolver, hash_key, new_key
from mailevents_server.ingest.receivers import (
    MAX_BODY_BYTES,
    add_webhook_routes,
    through_service,
)
from mailevents_server.ingest.store_sink import IntoStore
from mailevents_server.server import ServerConfig, start_server
from mailevents_server.store import open_store
from mailevents_server.store.base import Store
from mailevents_server.workers import owned_by

SPARKPOST = "/webhooks/sparkpost"
SENDGRID = "/webhooks/sendgrid"


@dataclass
class Hooks:
    base: str
    session: aiohttp.ClientSession

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None, *, raw: bool = False
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        data: Any = body if raw else json.dumps(body).encode()
        if len(data) > 1 << 20:  # aiohttp wants large bodies as a stream
            data = io.BytesIO(data)
        async with self.session.post(self.base + path, data=data, headers=headers) as response:
            text = await response.read()
            return response.status, json.loads(text) if text else None, response


async def start_hooks(
    chan: grpc.aio.Channel,
    *,
    local: tuple[Store, KeyResolver] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> tuple[web.AppRunner, str]:
    """The receivers alone on an app: through the service over `chan`, or with
    `local` (a store and key resolver) into that store, as `serve` mounts them."""
    app = web.Application()
    workers = owned_by(app)
    sink = IntoStore(*local, workers) if local is not None else through_service(chan, workers)
    add_webhook_routes(app, sink, max_body_bytes=max_body_bytes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def into_store(store: Store) -> dict[str, tuple[Store, KeyResolver]]:
    """The options that make the receivers write into `store`, as `serve` mounts them."""
    return {"local": (store, KeyResolver(store))}


#: How the receivers reach storage (webhook_ingest): the shim alone calls the
#: service over gRPC; beside it in `serve`, they write into its store.
SINKS = ["through-service", "into-store"]


@pytest.fixture(params=SINKS)
async def hooks(server: Server, request: pytest.FixtureRequest) -> AsyncIterator[Hooks]:
    local = into_store(server.running.store) if request.param == "into-store" else {}
    runner, base = await start_hooks(server.channel, **local)
    try:
        async with aiohttp.ClientSession() as session:
            yield Hooks(base, session)
    finally:
        await runner.cleanup()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def msys(category: str, **fields: Any) -> dict[str, Any]:
    return {"msys": {category: fields}}


def sparkpost_batch() -> list[dict[str, Any]]:
    when = "2024-06-01T10:00:00.000Z"
    return [
        msys(
            "message_event",
            type="delivery",
            event_id="sp-1",
            timestamp=when,
            rcpt_to="a@example.com",
            campaign_id="summer",
            msg_size="1234",
            rcpt_meta={"customer": "42"},
        ),
        msys(
            "track_event",
            type="click",
            event_id="sp-2",
            timestamp=when,
            rcpt_to="a@example.com",
            target_link_url="https://example.com/x",
        ),
        msys(
            "gen_event",
            type="generation_failure",
            event_id="sp-3",
            timestamp=when,
            rcpt_to="b@example.com",
        ),
        msys(
            "unsubscribe_event",
            type="list_unsubscribe",
            event_id="sp-4",
            timestamp=when,
            rcpt_to="c@example.com",
        ),
        msys("relay_event", type="relay_delivery", event_id="sp-5", timestamp=when, relay_id="r1"),
        {"msys": {}},  # SparkPost's test ping
    ]


async def test_a_sparkpost_batch_is_stored_and_answered_once_durable(
    hooks: Hooks, server: Server
) -> None:
    status, body, _ = await hooks.post(
        SPARKPOST, sparkpost_batch(), basic("sparkpost", server.api_key)
    )
    assert status == 200
    assert body == {"stored": 5, "duplicates": 0, "rejected": 0, "ignored": 1, "rejects": []}
    found = {ev.event_id: ev for ev in await search_all(server)}
    assert sorted(found) == ["sp-1", "sp-2", "sp-3", "sp-4", "sp-5"]
    assert found["sp-1"].type == pb.EVENT_TYPE_DELIVERY
    assert found["sp-1"].event_category == "message_event"
    assert found["sp-1"].msg_size == 1234 and dict(found["sp-1"].metadata) == {"customer": "42"}
    assert found["sp-2"].target_link_url == "https://example.com/x"
    assert found["sp-5"].event_category == "relay_event"


async def test_provider_retries_and_duplicate_deliveries_are_absorbed(
    hooks: Hooks, server: Server
) -> None:
    headers = basic("sparkpost", server.api_key)
    await hooks.post(SPARKPOST, sparkpost_batch(), headers)
    status, body, _ = await hooks.post(SPARKPOST, sparkpost_batch(), headers)
    assert status == 200 and (body["stored"], body["duplicates"]) == (0, 5)
    overlapping = [
        *sparkpost_batch()[:2],
        msys("message_event", type="bounce", event_id="sp-6", timestamp="2024-06-01T11:00:00Z"),
    ]
    status, body, _ = await hooks.post(SPARKPOST, overlapping, headers)
    assert (body["stored"], body["duplicates"]) == (1, 2)
    assert len(await search_all(server)) == 6


@pytest.mark.parametrize(
    "make_headers",
    [
        lambda key: basic("sparkpost", key),
        lambda key: basic(key, ""),
        lambda key: {"Authorization": f"Bearer {key}"},
        lambda key: {"X-MessageSystems-Webhook-Token": key},
    ],
    ids=["basic-password", "basic-user", "bearer", "webhook-token"],
)
async def test_every_auth_form_providers_send_is_accepted(
    hooks: Hooks, server: Server, make_headers: Any
) -> None:
    status, body, _ = await hooks.post(
        SPARKPOST, sparkpost_batch()[:1], make_headers(server.api_key)
    )
    assert status == 200 and body["stored"] == 1


async def test_no_key_or_a_bad_key_is_401_and_stores_nothing(hooks: Hooks, server: Server) -> None:
    status, body, response = await hooks.post(SPARKPOST, sparkpost_batch())
    assert status == 401 and "errors" in body
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    status, _, _ = await hooks.post(SPARKPOST, sparkpost_batch(), basic("x", "mek_wrong"))
    assert status == 401
    assert await search_all(server) == []


async def test_each_key_writes_to_its_own_tenant(hooks: Hooks, server: Server) -> None:
    await hooks.post(SPARKPOST, sparkpost_batch()[:1], basic("x", server.other_api_key))
    assert await search_all(server) == []
    assert len(await search_all(server, key=server.other_api_key)) == 1


async def test_malformed_events_are_rejected_alone_with_their_index(
    hooks: Hooks, server: Server
) -> None:
    batch = [
        sparkpost_batch()[0],
        "not an event",
        msys("message_event", type="delivery", timestamp="2024-06-01T10:00:00Z"),  # no event_id
        msys("message_event", type="delivery", event_id="bad-time", timestamp="yesterday"),
        msys("track_event", type="open", event_id="sp-ok", timestamp="2024-06-01T10:00:00Z"),
    ]
    status, body, _ = await hooks.post(SPARKPOST, batch, basic("x", server.api_key))
    assert status == 200  # a retry could not fix them: no reason to make the provider retry
    assert (body["stored"], body["rejected"]) == (2, 3)
    assert [r["index"] for r in body["rejects"]] == [1, 2, 3]
    assert body["rejects"][1]["reason"] == "event_id is required"
    assert sorted(ev.event_id for ev in await search_all(server)) == ["sp-1", "sp-ok"]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b'{"msys": {}}', 400), (b'"text"', 400)],
)
async def test_a_body_that_is_not_a_batch_is_400(
    hooks: Hooks, server: Server, body: bytes, status: int
) -> None:
    got, answer, _ = await hooks.post(SPARKPOST, body, basic("x", server.api_key), raw=True)
    assert got == status and answer["errors"][0]["message"]


async def test_a_gzipped_batch_is_accepted(hooks: Hooks, server: Server) -> None:
    body = gzip.compress(json.dumps(sparkpost_batch()).encode())
    headers = {**basic("x", server.api_key), "Content-Encoding": "gzip"}
    status, answer, _ = await hooks.post(SPARKPOST, body, headers, raw=True)
    assert status == 200 and answer["stored"] == 5


async def test_an_oversized_batch_is_413(server: Server) -> None:
    runner, base = await start_hooks(server.channel, max_body_bytes=1000)
    try:
        async with aiohttp.ClientSession() as session:
            hooks = Hooks(base, session)
            status, _, _ = await hooks.post(
                SPARKPOST, sparkpost_batch() * 10, basic("x", server.api_key)
            )
    finally:
        await runner.cleanup()
    assert status == 413


async def test_when_the_service_is_down_the_answer_makes_the_provider_retry(
    server: Server,
) -> None:
    dead = grpc.aio.insecure_channel("127.0.0.1:1")
    runner, base = await start_hooks(dead)
    try:
        async with aiohttp.ClientSession() as session:
            status, _, response = await Hooks(base, session).post(
                SPARKPOST, sparkpost_batch(), basic("x", server.api_key)
            )
    finally:
        await runner.cleanup()
        await dead.close()
    assert status == 503 and response.headers["Retry-After"]


async def test_when_the_store_fails_the_answer_makes_the_provider_retry(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "closed.db"))
    await store.open()
    key = "mek_webhook-test-key"
    await store.create_key("acme", hash_key(key))
    resolver = KeyResolver(store)
    await resolver.tenant_for_key(key)  # cached: the write is what fails
    await store.close()
    unused = grpc.aio.insecure_channel("127.0.0.1:1")  # the sink is the store
    runner, base = await start_hooks(unused, local=(store, resolver))
    try:
        async with aiohttp.ClientSession() as session:
            hooks = Hooks(base, session)
            status, _, response = await hooks.post(SPARKPOST, sparkpost_batch(), basic("x", key))
            assert status == 503 and response.headers["Retry-After"]
            status, _, _ = await hooks.post(SPARKPOST, sparkpost_batch(), basic("x", "mek_other"))
            assert status == 503  # the key cannot be looked up: not a 401, a retry
    finally:
        await runner.cleanup()
        await unused.close()


def sendgrid_batch() -> list[dict[str, Any]]:
    return [
        {
            "email": "a@example.com",
            "timestamp": 1717236000,
            "event": "processed",
            "sg_event_id": "sg-1",
            "sg_message_id": "m1.filter",
            "smtp-id": "<x@y>",
            "category": ["summer", "promo"],
            "marketing_campaign_id": 77,
        },
        {
            "email": "a@example.com",
            "timestamp": 1717236060,
            "event": "delivered",
            "sg_event_id": "sg-2",
            "sg_message_id": "m1.filter",
            "ip": "168.1.1.1",
            "response": "250 OK",
            "tls": 1,
            "pool": {"name": "main", "id": 3},
        },
        {
            "email": "a@example.com",
            "timestamp": 1717236120.5,
            "event": "bounce",
            "type": "blocked",
            "sg_event_id": "sg-3",
            "status": "5.0.0",
            "reason": "550 blocked",
            "bounce_classification": "Reputation",
        },
        {
            "email": "a@example.com",
            "timestamp": 1717236180,
            "event": "click",
            "sg_event_id": "sg-4",
            "url": "https://example.com",
            "ip": "10.0.0.9",
            "useragent": "Mozilla",
            "my_unique_arg": "kept",
        },
        {
            "email": "a@example.com",
            "timestamp": 1717236240,
            "event": "group_resubscribe",
            "sg_event_id": "sg-5",
            "asm_group_id": 9,
        },
        {"email": "a@example.com", "timestamp": 1717236300, "event": "open"},  # no sg_event_id
    ]


async def test_a_sendgrid_batch_maps_onto_the_same_fields(hooks: Hooks, server: Server) -> None:
    status, body, _ = await hooks.post(
        SENDGRID, sendgrid_batch(), basic("sendgrid", server.api_key)
    )
    assert status == 200
    assert (body["stored"], body["rejected"]) == (5, 1)
    assert body["rejects"] == [{"index": 5, "reason": "sg_event_id: required"}]
    found = {ev.event_id: ev for ev in await search_all(server)}
    processed, delivered, bounce, click, other = (found[f"sg-{i}"] for i in range(1, 6))
    assert processed.type == pb.EVENT_TYPE_INJECTION and list(processed.tags) == ["summer", "promo"]
    assert processed.campaign_id == "77" and processed.message_id == "m1.filter"
    assert json.loads(processed.extra_json) == {"smtp-id": "<x@y>"}
    assert delivered.type == pb.EVENT_TYPE_DELIVERY and delivered.sending_ip == "168.1.1.1"
    assert delivered.raw_reason == "250 OK" and delivered.ip_pool == "main"
    assert bounce.type == pb.EVENT_TYPE_BOUNCE and bounce.error_code == "5.0.0"
    assert bounce.timestamp.ToMicroseconds() == 1717236120_500000
    assert json.loads(bounce.extra_json) == {
        "type": "blocked",
        "bounce_classification": "Reputation",
    }
    assert click.ip_address == "10.0.0.9" and click.target_link_url == "https://example.com"
    assert json.loads(click.extra_json) == {"my_unique_arg": "kept"}
    assert other.type == pb.EVENT_TYPE_UNSPECIFIED and other.type_name == "group_resubscribe"

    again_status, again, _ = await hooks.post(
        SENDGRID, sendgrid_batch(), basic("s", server.api_key)
    )
    assert again_status == 200 and (again["stored"], again["duplicates"]) == (0, 5)


async def test_a_large_batch_converted_in_the_worker_process_keeps_every_index(
    hooks: Hooks, server: Server
) -> None:
    # Over 256 KiB goes to the conversion worker, and over 10,000 events makes
    # two IngestMessageEvents calls: indexes must still point into the body.
    when = "2024-06-01T10:00:00Z"
    batch: list[Any] = [
        msys("message_event", type="delivery", event_id=f"big-{i}", timestamp=when)
        for i in range(10_050)
    ]
    batch[3] = {"msys": {}}
    batch[5] = msys("message_event", type="delivery", timestamp=when)  # no event_id
    batch[10_020] = msys("message_event", type="delivery", event_id="late", timestamp="soon")
    batch[10_030] = batch[10]  # the same event twice in one body
    status, body, _ = await hooks.post(SPARKPOST, batch, basic("x", server.api_key))
    assert status == 200
    assert (body["stored"], body["duplicates"], body["ignored"]) == (10_046, 1, 1)
    assert [r["index"] for r in body["rejects"]] == [5, 10_020]
    assert body["rejects"][0]["reason"] == "event_id is required"
    stored = {ev.event_id for ev in await search_all(server)}
    assert len(stored) == 10_046 and "big-10049" in stored and "big-3" not in stored


async def test_a_large_body_that_is_not_json_is_400_from_the_worker(
    hooks: Hooks, server: Server
) -> None:
    body = b"[" + b" " * 300_000 + b"{oops"
    status, answer, _ = await hooks.post(SPARKPOST, body, basic("x", server.api_key), raw=True)
    assert status == 400 and answer["errors"][0]["message"].startswith("the body is not JSON")


async def test_serve_mounts_receivers_that_write_into_its_store(tmp_path: Path) -> None:
    running = await start_server(
        ServerConfig(
            grpc_address="127.0.0.1:0", database=str(tmp_path / "e.db"), http_address="127.0.0.1:0"
        )
    )
    try:
        key = new_key()
        await running.store.create_key("acme", hash_key(key))
        base = f"http://127.0.0.1:{running.http_port}"
        async with aiohttp.ClientSession() as session:
            status, body, _ = await Hooks(base, session).post(
                SPARKPOST, sparkpost_batch(), basic("x", key)
            )
            assert status == 200 and body["stored"] == 5 and body["ignored"] == 1
            status, _, _ = await Hooks(base, session).post(
                SPARKPOST, sparkpost_batch(), basic("x", "mek_not-a-key")
            )
            assert status == 401
        channel = grpc.aio.insecure_channel(running.address)
        try:
            stub = sgrpc.MessageEventServiceStub(channel)  # type: ignore[no-untyped-call]
            count = await stub.CountMessageEvents(
                spb.CountMessageEventsRequest(), metadata=(("authorization", f"Bearer {key}"),)
            )
        finally:
            await channel.close()
        assert count.total == 5
    finally:
        await running.stop(grace=0)


@pytest.mark.postgres
async def test_receivers_write_into_a_postgres_store() -> None:
    async with fresh_database() as url:
        store = open_store(url)
        await store.open()
        unused = grpc.aio.insecure_channel("127.0.0.1:1")  # the sink is the store
        try:
            key = new_key()
            await store.create_key("acme", hash_key(key))
            runner, base = await start_hooks(unused, **into_store(store))
            when = "2024-06-01T10:00:00Z"
            large = [
                msys("message_event", type="delivery", event_id=f"pg-{i}", timestamp=when)
                for i in range(3000)  # over 256 KiB: converted and prepared in a worker
            ]
            large[7] = msys("message_event", type="delivery", timestamp=when)  # no event_id
            try:
                async with aiohttp.ClientSession() as session:
                    hooks = Hooks(base, session)
                    first = await hooks.post(SPARKPOST, large, basic("x", key))
                    again = await hooks.post(SPARKPOST, large, basic("x", key))
            finally:
                await runner.cleanup()
        finally:
            await unused.close()
            await store.close()
    assert first[0] == again[0] == 200
    assert (first[1]["stored"], first[1]["duplicates"]) == (2999, 0)
    assert (again[1]["stored"], again[1]["duplicates"]) == (0, 2999)
    assert [r["index"] for r in again[1]["rejects"]] == [7]
