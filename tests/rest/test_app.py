"""The shim as a whole: routes, the OpenAPI document, and drift against the proto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.rest import create_app
from mailevents_server.rest.client import RPC_USAGE
from mailevents_server.rest.openapi import document
from mailevents_server.rest.sparkpost_params import LIST_PARAMS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dialects.md"


def test_every_rpc_of_the_service_is_accounted_for() -> None:
    """A new RPC must be either used by a dialect or deliberately left out, in RPC_USAGE."""
    rpcs = set(spb.DESCRIPTOR.services_by_name["MessageEventService"].methods_by_name)
    assert rpcs == set(RPC_USAGE)


async def served_routes() -> set[tuple[str, str]]:
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # never dialled
    try:
        app = create_app(channel)
        return {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
    finally:
        await channel.close()


async def test_every_route_is_documented_and_every_documented_path_served() -> None:
    documented = {
        (method.upper(), path)
        for path, operations in document()["paths"].items()
        for method in operations
    }
    assert await served_routes() == documented


async def test_every_dialect_route_is_described_in_the_docs() -> None:
    text = DOCS.read_text()
    for _method, path in await served_routes():
        assert path.rstrip("/") in text, path


async def test_openapi_is_served_and_lists_what_the_parsers_read(shim: Any) -> None:
    status, body, _ = await shim.get("/openapi.json")
    assert status == 200 and body == document()
    params = {p["name"] for p in body["paths"]["/api/v1/message-events"]["get"]["parameters"]}
    seed_params = {
        "bounce_classes", "campaign_ids", "events", "friendly_froms", "from", "message_ids",
        "page", "per_page", "reason", "recipients", "template_ids", "timezone", "to",
        "transmission_ids",
    }  # fmt: skip
    assert seed_params <= params
    assert set(LIST_PARAMS) <= params
    tastypie = {p["name"] for p in body["paths"]["/api/messageevent/"]["get"]["parameters"]}
    assert {
        "bulk_email__in",
        "event_timestamp__week_day",
        "limit",
        "offset",
        "dehydrate",
    } <= tastypie


async def test_unknown_paths_are_404(shim: Any) -> None:
    status, _, _ = await shim.get_raw("/api/v1/nothing")
    assert status == 404
