"""SparkPost dialect: `GET /api/v1/message-events` and `GET /api/v1/events/message`.

The first is the seed's offset-paged Message Events API (page/per_page,
total_count, first/previous/next/last links); the second is SparkPost's later
cursor-paged Events API, whose `next` cursor is our resume token and so stays
correct while events keep arriving. Both render each event with
`mailevents.sparkpost.event_to_sparkpost`, the one SparkPost mapping of the
project, large pages on several cores (`render`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import quote

import grpc
from aiohttp import web

from mailevents.v1.message_event_pb2 import MessageEvent

from . import render
from .jsonbody import dumps, json_response
from .service import SERVICE_KEY, Caller, RawBatch, ServiceError, retry_later
from .sparkpost_params import (
    LIST_PARAMS,
    SCALAR_PARAMS,
    ParamError,
    Search,
    parse_page,
    parse_search,
)

MESSAGE_EVENTS_PATH = "/api/v1/message-events"
EVENTS_MESSAGE_PATH = "/api/v1/events/message"

#: Every parameter each route reads (the OpenAPI document is built from these).
MESSAGE_EVENTS_PARAMS = (*LIST_PARAMS, *SCALAR_PARAMS, "page")
EVENTS_MESSAGE_PARAMS = (*LIST_PARAMS, *SCALAR_PARAMS, "cursor")

#: SparkPost's extended error codes (support docs, "Extended Error Codes").
CODE_INVALID_PARAMS = "1200"
CODE_UNAUTHORIZED = "1303"
CODE_READ_FAILED = "1501"

_WINDOW_PARAMS = frozenset({"page", "per_page", "from", "to", "timezone", "cursor"})


def api_key(request: web.Request) -> str | None:
    """The key from `Authorization: <key>` or from Basic auth with the key as user."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "basic" and rest.strip():
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user = decoded.partition(":")[0]
        return user or None
    return header


def errors_response(status: int, errors: Iterable[tuple[str, str, str]]) -> web.Response:
    """SparkPost's error envelope: `{"errors": [{"message", "description", "code"}]}`."""
    body = {
        "errors": [
            {"message": message, "description": description, "code": code}
            for message, description, code in errors
        ]
    }
    return json_response(body, status=status)


def unauthorized() -> web.Response:
    return errors_response(
        401,
        [
            (
                "Unauthorized.",
                "A valid API key is required in the Authorization header.",
                CODE_UNAUTHORIZED,
            )
        ],
    )


def param_errors(errors: Iterable[ParamError]) -> web.Response:
    return errors_response(
        400, [("invalid params", error.description, CODE_INVALID_PARAMS) for error in errors]
    )


def service_failure(failure: ServiceError, search: Search) -> web.Response:
    """The service's refusal in SparkPost's words, naming the parameter it came from."""
    if failure.unauthenticated:
        return unauthorized()
    if failure.code == grpc.StatusCode.INVALID_ARGUMENT:
        errors: list[ParamError] = []
        for violation in failure.violations:
            index = violation.condition_index
            if index is not None and index < len(search.condition_params):
                param = search.condition_params[index]
                errors.append(ParamError(param, f"{param}: {violation.description}"))
            elif violation.field.startswith("resume_token"):
                errors.append(ParamError("cursor", "cursor is not valid for this search"))
            else:
                errors.append(ParamError(violation.field, violation.description))
        return param_errors(errors or [ParamError("", failure.message)])
    response = errors_response(
        500, [("Failed to read from database", "Please try again later.", CODE_READ_FAILED)]
    )
    return response if failure.retry_after is None else retry_later(response, failure)


async def _caller_or_error(
    request: web.Request, errors: list[ParamError]
) -> tuple[Caller | None, web.Response | None]:
    """The caller, or the response to give instead: 401 before any 400, as SparkPost."""
    key = api_key(request)
    if key is None:
        return None, unauthorized()
    caller = request.app[SERVICE_KEY].caller(key)
    if errors:
        try:
            await caller.check_key()
        except ServiceError:
            return None, unauthorized()
        return None, param_errors(errors)
    return caller, None


def _query_string(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{quote(name, safe='')}={quote(value, safe=':@')}" for name, value in pairs)


def _filter_pairs(request: web.Request) -> list[tuple[str, str]]:
    """The request's filters in their order, without the paging and window parameters."""
    return [(k, v) for k, v in request.rel_url.query.items() if k not in _WINDOW_PARAMS]


async def message_events(request: web.Request) -> web.Response:
    """The seed's offset-paged search, sorted by timestamp descending."""
    params = request.rel_url.query
    search = parse_search(params, default_span=timedelta(hours=1))
    page = parse_page(params, search.errors)
    caller, refusal = await _caller_or_error(request, search.errors)
    if caller is None:
        assert refusal is not None
        return refusal
    offset = (page - 1) * search.per_page
    batches: list[RawBatch] = []
    workers = request.app[SERVICE_KEY].workers

    async def rendered(events: list[MessageEvent]) -> bytes:
        return await render.sparkpost_page(workers, events, batches)

    try:
        results, total = await caller.rendered_with_total(
            search.query, search.per_page, rendered, offset=offset, batches=batches
        )
    except ServiceError as failure:
        return service_failure(failure, search)
    return _results_response(results, total, _page_links(request, search, page, total))


def _results_response(
    results: bytes, total: int, links: list[dict[str, str]] | dict[str, str]
) -> web.Response:
    """`{"results": [...], "total_count": N, "links": ...}` around rendered results."""
    body = b"".join(
        (
            b'{"results":',
            results,
            b',"total_count":',
            b"%d" % total,
            b',"links":',
            dumps(links),
            b"}",
        )
    )
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def _page_links(
    request: web.Request, search: Search, page: int, total: int
) -> list[dict[str, str]]:
    """first/previous when there is an earlier page, next/last when there is a later one.

    As SparkPost wrote them: relative hrefs that pin the window (from, to,
    timezone) so that following a link repeats the same search.
    """
    last_page = max(1, math.ceil(total / search.per_page))
    window = [("from", search.from_text), ("to", search.to_text), ("timezone", search.timezone)]
    rest = _filter_pairs(request)

    def href(number: int) -> str:
        pairs = [("page", str(number)), ("per_page", str(search.per_page)), *window, *rest]
        return f"{MESSAGE_EVENTS_PATH}?{_query_string(pairs)}"

    links: list[dict[str, str]] = []
    if page > 1:
        links.append({"href": href(1), "rel": "first"})
        links.append({"href": href(min(page - 1, last_page)), "rel": "previous"})
    if page < last_page:
        links.append({"href": href(page + 1), "rel": "next"})
        links.append({"href": href(last_page), "rel": "last"})
    return links


async def events_message(request: web.Request) -> web.Response:
    """The cursor-paged Events API: `cursor=initial`, then each `next` link's cursor."""
    params = request.rel_url.query
    search = parse_search(params, default_span=timedelta(hours=24))
    cursor = params.getall("cursor", ["initial"])[-1] or "initial"
    caller, refusal = await _caller_or_error(request, search.errors)
    if caller is None:
        assert refusal is not None
        return refusal
    token = "" if cursor == "initial" else cursor
    batches: list[RawBatch] = []
    try:
        (events, next_token), total = await _gather_page(caller, search, token, batches)
    except ServiceError as failure:
        return service_failure(failure, search)
    # The Events API's envelope: `links` is an object whose `next` is the path
    # of the next page (cursor and per_page first, then the request's filters
    # and its window pinned), and is left out on the last page. Clients stop
    # when `links.next` is missing (`result.dig('links', 'next')`).
    links: dict[str, str] = {}
    if next_token:
        pairs = [
            ("cursor", next_token),
            ("per_page", str(search.per_page)),
            *_filter_pairs(request),
            ("from", search.from_text),
            ("to", search.to_text),
            ("timezone", search.timezone),
        ]
        links["next"] = f"{EVENTS_MESSAGE_PATH}?{_query_string(pairs)}"
    results = await render.sparkpost_page(request.app[SERVICE_KEY].workers, events, batches)
    return _results_response(results, total, links)


async def _gather_page(
    caller: Caller, search: Search, token: str, batches: list[RawBatch]
) -> tuple[tuple[list[MessageEvent], str], int]:
    """A cursor page (with a look-ahead for `next`) and the total, concurrently."""
    page, total = await asyncio.gather(
        caller.read_from(search.query, token, search.per_page, peek=True, batches=batches),
        caller.count(search.query),
    )
    return page, total


def routes() -> list[web.RouteDef]:
    return [
        web.get(MESSAGE_EVENTS_PATH, message_events),
        web.get(EVENTS_MESSAGE_PATH, events_message),
    ]
