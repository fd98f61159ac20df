"""Copernica (Marketing Suite REST v1): `GET /v1/message/{id}/events`.

"The message" is a mailing, our `transmission_id`. The response is one JSON
array of every event of the message in a window of at most one month, chosen
by the seed's rules from `start` and `end` (UTC dates, end exclusive). It is
not paged, so the body is streamed batch by batch as the service sends them.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import field_mask_pb2

from mailevents.errors import MailEventsError
from mailevents.event_types import type_name
from mailevents.v1 import message_event_pb2 as ev_pb
from mailevents.v1 import message_event_service_pb2 as pb

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

PATH = "/v1/message/{message_id}/events"
PARAMS = ("access_token", "start", "end", "tags")

#: Our event types as Copernica's Marketing Suite names its events.
EVENT_NAMES: dict[int, str] = {
    ev_pb.EVENT_TYPE_INJECTION: "attempt",
    ev_pb.EVENT_TYPE_RELAY_INJECTION: "attempt",
    ev_pb.EVENT_TYPE_DELIVERY: "delivery",
    ev_pb.EVENT_TYPE_RELAY_DELIVERY: "delivery",
    ev_pb.EVENT_TYPE_BOUNCE: "failure",
    ev_pb.EVENT_TYPE_OUT_OF_BAND: "failure",
    ev_pb.EVENT_TYPE_POLICY_REJECTION: "failure",
    ev_pb.EVENT_TYPE_GENERATION_FAILURE: "failure",
    ev_pb.EVENT_TYPE_GENERATION_REJECTION: "failure",
    ev_pb.EVENT_TYPE_RELAY_REJECTION: "failure",
    ev_pb.EVENT_TYPE_RELAY_PERMFAIL: "failure",
    ev_pb.EVENT_TYPE_DELAY: "retry",
    ev_pb.EVENT_TYPE_RELAY_TEMPFAIL: "retry",
    ev_pb.EVENT_TYPE_OPEN: "open",
    ev_pb.EVENT_TYPE_INITIAL_OPEN: "open",
    ev_pb.EVENT_TYPE_CLICK: "click",
    ev_pb.EVENT_TYPE_SPAM_COMPLAINT: "abuse",
    ev_pb.EVENT_TYPE_LIST_UNSUBSCRIBE: "unsubscribe",
    ev_pb.EVENT_TYPE_LINK_UNSUBSCRIBE: "unsubscribe",
}

_SEND_TIME_MASK = field_mask_pb2.FieldMask(paths=["timestamp", "send_time"])


def error(message: str) -> web.Response:
    return json_response({"error": {"message": message}}, status=400)


def invalid_token() -> web.Response:
    """Copernica answers a bad token with 400, not 401."""
    return error("Invalid access token")


def _parse_date(params: Any, name: str) -> date | None:
    """A `yyyy-mm-dd` parameter; ValueError when present but not such a date."""
    text = params.getall(name, [""])[-1]
    if text == "":
        return None
    parsed = date.fromisoformat(text) if len(text) == 10 else None
    if parsed is None or parsed.isoformat() != text:
        raise ValueError(name)
    return parsed


def window(
    start: date | None, end: date | None, sent: datetime | None
) -> tuple[datetime, datetime]:
    """The seed's rules: at most one month, the start leading, dates as UTC midnights."""
    if start is not None:
        begin = timeutil.day_start(start)
        month_on = timeutil.add_months(begin, 1)
        finish = month_on if end is None else min(timeutil.day_start(end), month_on)
        return begin, finish
    if end is not None:
        finish = timeutil.day_start(end)
        return timeutil.add_months(finish, -1), finish
    assert sent is not None
    return sent, timeutil.add_months(sent, 1)


async def _send_time(caller: Caller, message_id: str) -> datetime | None:
    """When the message was sent: its first event's send time (or time); None if unknown."""
    query = pb.EventQuery(
        conditions=[condition("transmission_id", pb.OPERATOR_EXACT, [message_id])],
        order=pb.ORDER_TIMESTAMP_ASC,
    )
    events = await caller.read(query, 1, read_mask=_SEND_TIME_MASK)
    if not events:
        return None
    first = events[0]
    sent = first.send_time if first.HasField("send_time") else first.timestamp
    return timeutil.from_timestamp(sent)


def render(event: ev_pb.MessageEvent) -> dict[str, Any]:
    """One event: its Copernica name, the common fields, then the type's own."""
    name = EVENT_NAMES.get(event.type) or event.type_name or type_name(event.type)
    sender = event.sender or event.mail_from
    # The seed names the event under `event` in one item and under `type` in
    # the next: both keys carry it, so a client reading either finds it.
    out: dict[str, Any] = {
        "event": name,
        "type": name,
        "id": event.event_id,
        "message": event.transmission_id,
        "time": timeutil.format_seconds(timeutil.from_timestamp(event.timestamp)),
        "email": event.recipient if event.HasField("recipient") else None,
        "tags": ";".join(event.tags),
        "senderdomain": sender.rpartition("@")[2] if sender else None,
        "profile": event.contact_id if event.HasField("contact_id") else None,
        "template": event.template_id if event.HasField("template_id") else None,
    }
    if name in ("open", "click"):
        if name == "click":
            out["linkinfo"] = event.target_link_url if event.HasField("target_link_url") else None
        out["ip"] = event.ip_address if event.HasField("ip_address") else None
        out["header"] = event.user_agent if event.HasField("user_agent") else None
        if event.HasField("geo_ip"):
            out["countrycode"] = event.geo_ip.country
            out["regioncode"] = event.geo_ip.region
            out["city"] = event.geo_ip.city
    elif name == "delivery":
        out["attempts"] = event.num_retries + 1
    elif name in ("failure", "retry"):
        out["kind"] = event.type_name or type_name(event.type)
        out["code"] = event.error_code if event.HasField("error_code") else None
        out["description"] = event.reason if event.HasField("reason") else None
    elif name == "abuse":
        out["kind"] = event.fbtype if event.HasField("fbtype") else None
    return out


async def message_events(request: web.Request) -> web.StreamResponse:
    params = request.rel_url.query
    token = params.getall("access_token", [""])[-1]
    if not token:
        return invalid_token()
    caller = request.app[CLIENT_KEY].caller(token)
    message_id = request.match_info["message_id"]
    try:
        start, end = _parse_date(params, "start"), _parse_date(params, "end")
    except ValueError as bad:
        try:
            await caller.check_key()
        except MailEventsError:
            return invalid_token()
        return error(f"Invalid value for parameter '{bad}', expected a date as yyyy-mm-dd")
    tags = [t.strip() for v in params.getall("tags", []) for t in v.replace(",", ";").split(";")]
    tags = [t for t in tags if t]
    try:
        sent = None if start or end else await _send_time(caller, message_id)
        if start is None and end is None and sent is None:
            await caller.check_key()
            return json_response([])
        begin, finish = window(start, end, sent)
        query = pb.EventQuery(
            conditions=[condition("transmission_id", pb.OPERATOR_EXACT, [message_id])],
            order=pb.ORDER_TIMESTAMP_ASC,
        )
        if tags:
            query.conditions.append(condition("tags", pb.OPERATOR_IN, tags))
        if finish <= begin:
            await caller.check_key()
            return json_response([])
        query.start_time.CopyFrom(timeutil.to_timestamp(begin))
        query.end_time.CopyFrom(timeutil.to_timestamp(finish))
        return await _stream(request, caller, query)
    except MailEventsError as failure:
        if unauthenticated(failure):
            return invalid_token()
        if retry_after(failure) is not None:
            unavailable = json_response({"error": {"message": "Service unavailable"}})
            return retry_later(unavailable, failure)
        if failure.code == grpc.StatusCode.INVALID_ARGUMENT:
            # A value the service refuses (a message id longer than any stored one).
            return error(f"Invalid request: {failure.message}")
        return json_response({"error": {"message": "Internal error"}}, status=500)


async def _stream(request: web.Request, caller: Caller, query: pb.EventQuery) -> web.StreamResponse:
    """The array, written as batches arrive; the first batch is read before the
    headers go out, so that a refused key still gets its 400."""
    batches = caller.stream(query)
    first = await anext(batches, None)
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    await response.prepare(request)
    separator = b"["
    batch = first
    while batch is not None:
        for event in batch:
            await response.write(separator + json.dumps(render(event), ensure_ascii=False).encode())
            separator = b","
        batch = await anext(batches, None)
    await response.write(b"[]" if separator == b"[" else b"]")
    await response.write_eof()
    return response


def routes() -> list[web.RouteDef]:
    route = any_segment(PATH)
    return [web.get(route, message_events), web.get(route + "/", message_events)]
