"""Tastypie-style messageevent: `GET /api/messageevent/` and `/api/messageevent/{id}/`.

Behaves as stock django-tastypie 0.15 does for a ModelResource with the seed's
filtering, ApiKeyAuthentication and the default Paginator (limit 20, max_limit
1000): the same envelope, links, error bodies and status codes, in the same
order of checks (auth, filters, sorting, limit, offset, evaluation).
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

import grpc
from aiohttp import web
from multidict import MultiMapping

from mailevents.event_types import type_name
from mailevents.sparkpost import event_to_sparkpost
from mailevents.v1 import message_event_pb2 as ev_pb
from mailevents.v1 import message_event_service_pb2 as pb

from . import timeutil
from .jsonbody import empty_response, json_response
from .service import SERVICE_KEY, Caller, ServiceError, retry_later
from .tastypie_filters import (
    FILTERING,
    MISMATCHED,
    BadRequest,
    apply_sorting,
    build_filters,
)

LIST_PATH = "/api/messageevent/"
DETAIL_PATH = "/api/messageevent/{pk}/"

DEFAULT_LIMIT = 20
MAX_ID = 2**63 - 1
MAX_LIMIT = 1000

CANNED_ERROR = "Sorry, this request could not be processed. Please try again later."

#: Parameters the resource reads besides its filters (documented in OpenAPI).
LIST_PARAMS = ("limit", "offset", "order_by", "dehydrate", "api_key", "username", "format")
DETAIL_PARAMS = ("dehydrate", "api_key", "username", "format")
FILTER_PARAMS = (
    *(
        name if lookup == "exact" else f"{name}__{lookup}"
        for name, lookups in FILTERING.items()
        for lookup in lookups
    ),
    "bulk_email_id",
    "send_email_id",
)


def sanitize(message: str) -> str:
    """tastypie.resources.sanitize: HTML-escaped, with the quotes put back."""
    return html.escape(message, quote=False)


def error_400(message: str) -> web.Response:
    return json_response({"error": sanitize(message)}, status=400, compact=False)


def canned(status: int) -> web.Response:
    """Tastypie's `_handle_500` body, for unexpected errors (500) and bad ids (404)."""
    return json_response({"error_message": CANNED_ERROR}, status=status, compact=False)


def api_key(request: web.Request) -> str | None:
    """ApiKeyAuthentication: `Authorization: ApiKey user:key`, else ?username=&api_key=.

    Tastypie needs both a username and a key; the username names no user in
    mailevents (keys are per tenant), so any non-empty one is accepted.
    """
    header = request.headers.get("Authorization", "")
    scheme, space, data = header.partition(" ")
    if header and space and scheme.lower() == "apikey":
        username, colon, key = data.strip().partition(":")
        if not colon:
            return None
    else:
        query = request.rel_url.query
        username = query.getall("username", [""])[-1]
        key = query.getall("api_key", [""])[-1]
    return key if username and key else None


def _caller(request: web.Request) -> Caller | None:
    key = api_key(request)
    return request.app[SERVICE_KEY].caller(key) if key else None


async def _refusal(caller: Caller, response: web.Response) -> web.Response:
    """`response`, unless the key is bad: Tastypie authenticates before anything else."""
    try:
        await caller.check_key()
    except ServiceError:
        return empty_response(401)
    return response


def _failure(failure: ServiceError) -> web.Response:
    if failure.unauthenticated:
        return empty_response(401)
    if failure.code == grpc.StatusCode.INVALID_ARGUMENT:
        # The server refused a value it parses itself: Django's ValueError path.
        return error_400(MISMATCHED)
    if failure.retry_after is not None:
        return retry_later(canned(503), failure)
    return canned(500)


def _int_param(params: MultiMapping[str], name: str, default: int) -> int:
    """Paginator.get_limit / get_offset parsing: Python's int(), then the sign check."""
    values = params.getall(name, [])
    text = values[-1] if values else str(default)
    try:
        value = int(text)
    except ValueError:
        suffix = "a positive integer" if name == "limit" else "an integer"
        raise BadRequest(f"Invalid {name} '{text}' provided. Please provide {suffix}.") from None
    if value < 0:
        raise BadRequest(
            f"Invalid {name} '{text}' provided. Please provide a positive integer >= 0."
        )
    return value


async def list_events(request: web.Request) -> web.Response:
    caller = _caller(request)
    if caller is None:
        return empty_response(401)
    params = request.rel_url.query
    try:
        filters = build_filters(params)
        order = apply_sorting(params)
        limit = _int_param(params, "limit", DEFAULT_LIMIT)
        if not limit or limit > MAX_LIMIT:
            limit = MAX_LIMIT
        offset = _int_param(params, "offset", 0)
    except BadRequest as error:  # ServerFault too: what crashes Tastypie is a 400 here
        return await _refusal(caller, error_400(str(error)))
    if filters.fault_on_evaluation:
        return await _refusal(caller, error_400(MISMATCHED))
    query = pb.EventQuery(conditions=filters.conditions, order=order)  # type: ignore[arg-type]
    dehydrate = _dehydrate(params)

    async def rendered(events: list[ev_pb.MessageEvent]) -> list[dict[str, Any]]:
        return [render(event, dehydrate) for event in events]

    try:
        objects, total = await caller.rendered_with_total(query, limit, rendered, offset=offset)
    except ServiceError as failure:
        return _failure(failure)
    body = {
        "meta": {
            "limit": limit,
            "next": None if offset + limit >= total else _page_uri(params, limit, offset + limit),
            "offset": offset,
            "previous": None if offset - limit < 0 else _page_uri(params, limit, offset - limit),
            "total_count": total,
        },
        "objects": objects,
    }
    return json_response(body, sort_keys=True, compact=False)


async def get_event(request: web.Request) -> web.Response:
    caller = _caller(request)
    if caller is None:
        return empty_response(401)
    pk = request.match_info["pk"]
    try:
        event_id = int(pk)
    except ValueError:
        # obj_get raises NotFound("... mismatched type") -> _handle_500 -> 404.
        return await _refusal(caller, canned(404))
    try:
        if not 0 < event_id <= MAX_ID:  # no such event: ids are positive 64-bit integers
            await caller.check_key()
            return empty_response(404)
        event = await caller.get(event_id)
    except ServiceError as failure:
        return _failure(failure)
    if event is None:
        return empty_response(404)
    return json_response(
        render(event, _dehydrate(request.rel_url.query)), sort_keys=True, compact=False
    )


def _page_uri(params: MultiMapping[str], limit: int, offset: int) -> str:
    """Paginator._generate_uri: the request's parameters (grouped by name, as
    QueryDict.lists() yields them) without limit/offset, then limit and offset."""
    pairs: list[str] = []
    for name in dict.fromkeys(params.keys()):
        if name in ("limit", "offset"):
            continue
        pairs.extend(f"{quote_plus(name)}={quote_plus(value)}" for value in params.getall(name))
    pairs += [f"limit={limit}", f"offset={offset}"]
    return f"{LIST_PATH}?{'&'.join(pairs)}"


def _dehydrate(params: MultiMapping[str]) -> frozenset[str]:
    """`dehydrate=a,b` (repeatable): which fields to expand. Only resource_uri is known."""
    return frozenset(
        part.strip() for value in params.getall("dehydrate", []) for part in value.split(",")
    )


def format_datetime(moment: datetime) -> str:
    """Tastypie's iso-8601 formatting: naive in TIME_ZONE (UTC), microseconds if any."""
    return moment.replace(tzinfo=None).isoformat()


def render(event: ev_pb.MessageEvent, dehydrate: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One messageevent object; keys are sorted when the body is serialised."""
    uri = f"{LIST_PATH}{event.id}/"
    timestamp = format_datetime(timeutil.from_timestamp(event.timestamp))
    name = event.type_name or type_name(event.type) or None
    resource_uri: Any = uri
    if "resource_uri" in dehydrate:
        # "expand resource_uri with additional details": the object's identity
        # in every id space a client may hold, so it needs no second request.
        resource_uri = {
            "uri": uri,
            "id": event.id,
            "event_id": event.event_id,
            "event_name": name,
            "event_timestamp": timestamp,
        }
    return {
        "_extra": {},
        "archived": event.archived,
        "bulk_email": f"/api/bulkemail/{event.bulk_email_id}/"
        if event.HasField("bulk_email_id")
        else None,
        "event_id": event.event_id,
        "event_json": event_to_sparkpost(event),
        "event_name": name,
        "event_timestamp": timestamp,
        "event_type": event.event_category if event.HasField("event_category") else None,
        "id": event.id,
        "resource_uri": resource_uri,
        "send_email": f"/api/sendemail/{event.send_email_id}/"
        if event.HasField("send_email_id")
        else None,
    }


def routes() -> list[web.RouteDef]:
    return [
        web.get(LIST_PATH, list_events),
        web.get("/api/messageevent/{pk:(?s:.*)}/", get_event),  # ids with a newline too
    ]
