"""Interaction-data report (SenderGuide): `POST /api/3.0/messages/interaction-data/{messageId}`.

"The message" is a mailing identified by an integer, our `bulk_email_id`. The
JSON body names an interaction type, an inclusive UTC date range, an order and
a page of 100 rows; page 1 also carries the totals. The seed does not say how
callers authenticate: we take the API key as `Authorization: Bearer <key>` (or
`X-Api-Key: <key>`), the way the gRPC API does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import grpc
from aiohttp import web

from mailevents.errors import MailEventsError
from mailevents.v1 import message_event_pb2 as ev_pb
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents_server.requestbody import BadBody, TooLarge, parse_json, read_body

from . import timeutil
from .client import (
    CLIENT_KEY,
    Caller,
    condition,
    retry_after,
    retry_later,
    unauthenticated,
)
from .jsonbody import json_response
from .observe import any_segment

PATH = "/api/3.0/messages/interaction-data/{messageId}"
BODY_FIELDS = ("interactionType", "fromDate", "toDate", "pageNumber", "order")
PAGE_SIZE = 100
MAX_MESSAGE_ID = 2**63 - 1
#: Pages past this would start beyond any number of events a store can hold.
MAX_PAGE_NUMBER = 10**12
#: The body is five small fields; anything much larger is not a report request.
MAX_BODY_BYTES = 64 * 1024

#: interactionType -> the event type names it covers.
INTERACTION_TYPES: dict[str, tuple[str, ...]] = {
    "sends": ("injection",),
    "deliveries": ("delivery",),
    "opens": ("open", "initial_open"),
    "clicks": ("click",),
    "bounces": ("bounce", "out_of_band"),
    "unsubscribes": ("list_unsubscribe", "link_unsubscribe"),
    "complaints": ("spam_complaint",),
}

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Invalid(Exception):
    """A 400 whose `status` says what is wrong."""


@dataclass
class Report:
    interaction_type: str
    from_date: date
    to_date: date
    page: int
    descending: bool


def error(status: int, message: str) -> web.Response:
    return json_response({"result": "error", "status": message, "code": status}, status=status)


def api_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return rest.strip()
    return request.headers.get("X-Api-Key") or None


def _date(body: dict[str, Any], name: str) -> date:
    value = body.get(name)
    if value is None or value == "":
        raise Invalid(f"{name} is required")
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise Invalid(f"{name} is not a valid date (yyyy-mm-dd)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{name} is not a valid date (yyyy-mm-dd)") from None


def _page(body: dict[str, Any]) -> int:
    value = body.get("pageNumber", 1)
    if value is None:
        return 1
    number: float
    if isinstance(value, bool):
        raise Invalid("pageNumber is not numeric")
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise Invalid("pageNumber is not numeric") from None
        if not math.isfinite(number):
            raise Invalid("pageNumber is not numeric")
    else:
        raise Invalid("pageNumber is not numeric")
    if number != int(number) or number < 1:
        raise Invalid("pageNumber must be a whole number of 1 or more")
    if number > MAX_PAGE_NUMBER:
        raise Invalid(f"pageNumber must be at most {MAX_PAGE_NUMBER}")
    return int(number)


def parse(body: Any) -> Report:
    """The report the body asks for; Invalid names the first thing wrong."""
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object")
    kind = body.get("interactionType")
    if kind is None or kind == "":
        raise Invalid("interactionType is required")
    if not isinstance(kind, str) or kind not in INTERACTION_TYPES:
        raise Invalid(f"interactionType must be one of {', '.join(INTERACTION_TYPES)}")
    from_date = _date(body, "fromDate")
    to_date = _date(body, "toDate")
    page = _page(body)
    order = body.get("order")
    if order is None or order == "":
        raise Invalid("order is required")
    if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
        raise Invalid("order must be asc or desc")
    if from_date > to_date:
        raise Invalid("fromDate is after toDate")
    return Report(kind, from_date, to_date, page, order.lower() == "desc")


def query_for(message_id: int, report: Report) -> pb.EventQuery:
    query = pb.EventQuery(
        conditions=[
            condition("bulk_email_id", pb.OPERATOR_EXACT, [str(message_id)]),
            condition("type", pb.OPERATOR_IN, INTERACTION_TYPES[report.interaction_type]),
        ],
        order=pb.ORDER_TIMESTAMP_DESC if report.descending else pb.ORDER_TIMESTAMP_ASC,
    )
    query.start_time.CopyFrom(timeutil.to_timestamp(timeutil.day_start(report.from_date)))
    if report.to_date < date.max:  # 9999-12-31, "until ever", has no day after it
        end = timeutil.day_start(report.to_date + timedelta(days=1))
        query.end_time.CopyFrom(timeutil.to_timestamp(end))
    return query


def render(event: ev_pb.MessageEvent, report: Report, message_id: int) -> dict[str, Any]:
    send_time = event.send_time if event.HasField("send_time") else None
    return {
        "contact_id": event.contact_id if event.HasField("contact_id") else None,
        "contact_email": event.recipient if event.HasField("recipient") else None,
        "send_date": timeutil.format_seconds(timeutil.from_timestamp(send_time))
        if send_time is not None
        else None,
        "interaction_type": report.interaction_type,
        "interaction_date": timeutil.format_seconds(timeutil.from_timestamp(event.timestamp)),
        "message_id": message_id,
        "page_number": report.page,
    }


async def interaction_data(request: web.Request) -> web.Response:
    key = api_key(request)
    if key is None:
        return error(401, "Unauthorized")
    caller = request.app[CLIENT_KEY].caller(key)
    try:
        message_id = _message_id(request.match_info["messageId"])
        try:
            body = parse_json(await read_body(request, MAX_BODY_BYTES))
        except TooLarge as bad:
            raise Invalid(f"request body is too large: {bad}") from None
        except BadBody:
            raise Invalid("request body is not valid JSON") from None
        report = parse(body)
    except Invalid as bad:
        return await _refusal(caller, error(400, str(bad)))
    try:
        return await _page_response(caller, message_id, report)
    except MailEventsError as failure:
        if unauthenticated(failure):
            return error(401, "Unauthorized")
        if retry_after(failure) is not None:
            return retry_later(error(503, "Service unavailable"), failure)
        if failure.code == grpc.StatusCode.INVALID_ARGUMENT:
            return error(400, failure.message)
        return error(500, "Internal error")


def _message_id(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise Invalid("messageId is not numeric")
    # Ids are 64-bit: the length check comes first, as int() of thousands of
    # digits is refused (and slow).
    if len(text.lstrip("0")) > 19 or int(text) > MAX_MESSAGE_ID:
        raise Invalid(f"messageId must be at most {MAX_MESSAGE_ID}")
    return int(text)


async def _refusal(caller: Caller, response: web.Response) -> web.Response:
    """Bad credentials are reported before a bad body."""
    try:
        await caller.check_key()
    except MailEventsError:
        return error(401, "Unauthorized")
    return response


async def _page_response(caller: Caller, message_id: int, report: Report) -> web.Response:
    query = query_for(message_id, report)
    offset = (report.page - 1) * PAGE_SIZE
    out: dict[str, Any] = {"result": "success"}
    if report.page == 1:
        events, total = await caller.read_with_total(query, PAGE_SIZE)
        out["page_size"] = PAGE_SIZE
        out["total_pages"] = math.ceil(total / PAGE_SIZE)
        out["total_rows"] = total
    else:
        events = await caller.read(query, PAGE_SIZE, offset=offset)
    out["data"] = [render(event, report, message_id) for event in events]
    return json_response(out)


def routes() -> list[web.RouteDef]:
    return [web.post(any_segment(PATH), interaction_data)]
