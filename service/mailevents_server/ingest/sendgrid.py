"""SendGrid Event Webhook JSON -> `MessageEvent`, for the second webhook receiver.

SendGrid POSTs a JSON array of flat event objects (`event`, `email`,
`timestamp` in epoch seconds, `sg_event_id`, ...). Each is mapped onto the
same fields as SparkPost's events, so that one query covers both providers;
every key without a typed field (`smtp-id`, `tls`, `asm_group_id`,
`marketing_campaign_name`, the sender's own unique args, ...) is kept verbatim
in `extra_json`, so nothing is lost.

Choices where the two providers differ:

- Types: processed -> injection, delivered -> delivery, deferred -> delay,
  bounce (also `type: "blocked"`) -> bounce, dropped -> policy_rejection,
  open, click, spamreport -> spam_complaint, unsubscribe and
  group_unsubscribe -> link_unsubscribe. Anything else (group_resubscribe,
  account events) keeps its SendGrid name as `type_name`, as unknown
  SparkPost types do.
- `ip` is the sending IP on delivery events (`sending_ip`) and the
  recipient's on opens and clicks (`ip_address`), as SparkPost tells them apart.
- `sg_event_id` is the event id (idempotence key); `sg_message_id` the
  message id; `category` (a string or a list) becomes `tags`; `response`
  (the remote MTA's answer) `raw_reason`; `status` `error_code`; `attempt`
  `num_retries`; `pool.name` `ip_pool`; `marketing_campaign_id`
  `campaign_id`. SendGrid's `bounce_classification` names no SparkPost
  bounce class reliably, so it stays in `extra_json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from mailevents.v1 import message_event_pb2 as pb

_TYPES: dict[str, pb.EventType] = {
    "processed": pb.EVENT_TYPE_INJECTION,
    "delivered": pb.EVENT_TYPE_DELIVERY,
    "deferred": pb.EVENT_TYPE_DELAY,
    "bounce": pb.EVENT_TYPE_BOUNCE,
    "blocked": pb.EVENT_TYPE_BOUNCE,
    "dropped": pb.EVENT_TYPE_POLICY_REJECTION,
    "open": pb.EVENT_TYPE_OPEN,
    "click": pb.EVENT_TYPE_CLICK,
    "spamreport": pb.EVENT_TYPE_SPAM_COMPLAINT,
    "unsubscribe": pb.EVENT_TYPE_LINK_UNSUBSCRIBE,
    "group_unsubscribe": pb.EVENT_TYPE_LINK_UNSUBSCRIBE,
}
#: Year 9999: beyond that no timestamp is valid anyway.
_MAX_SECONDS = 253402300799
_ENGAGEMENT = {"open", "click", "spamreport", "unsubscribe", "group_unsubscribe"}


def _text(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{key}: expected text, got {type(value).__name__}")
    return str(value)


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{key}: expected an integer, got a boolean")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{key}: expected an integer, got {value!r}") from None


#: SendGrid key -> (MessageEvent field, reader). `ip` and `category` are special.
_FIELDS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "email": ("recipient", _text),
    "sg_message_id": ("message_id", _text),
    "useragent": ("user_agent", _text),
    "url": ("target_link_url", _text),
    "reason": ("reason", _text),
    "response": ("raw_reason", _text),
    "status": ("error_code", _text),
    "attempt": ("num_retries", _integer),
    "marketing_campaign_id": ("campaign_id", _text),
}


def event_from_sendgrid(obj: Any) -> pb.MessageEvent:
    """One SendGrid webhook event as a `MessageEvent`; ValueError naming the problem otherwise."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"a SendGrid event must be a JSON object, got {type(obj).__name__}")
    name = obj.get("event")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("event: required")
    event_id = obj.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise ValueError("sg_event_id: required")
    ev = pb.MessageEvent(event_id=event_id, type_name=name)
    kind = name if name != "bounce" or obj.get("type") != "blocked" else "blocked"
    ev.type = _TYPES.get(kind, pb.EVENT_TYPE_UNSPECIFIED)
    _set_timestamp(ev, obj.get("timestamp"))

    extra: dict[str, Any] = {}
    for key, value in obj.items():
        if key in ("event", "sg_event_id", "timestamp"):
            continue
        if value is None:
            extra[key] = value
        elif key in _FIELDS:
            field, read = _FIELDS[key]
            setattr(ev, field, read(key, value))
        elif key == "ip":
            setattr(ev, "ip_address" if name in _ENGAGEMENT else "sending_ip", _text(key, value))
        elif key == "category" and _is_tag_list(value):
            ev.tags.extend([value] if isinstance(value, str) else value)
        elif key == "pool" and isinstance(value, Mapping) and isinstance(value.get("name"), str):
            ev.ip_pool = value["name"]
            extra[key] = value  # its id too
        else:
            extra[key] = value
    if extra:
        ev.extra_json = json.dumps(extra, separators=(",", ":"), ensure_ascii=False)
    return ev


def _is_tag_list(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(tag, str) for tag in value)


def _set_timestamp(ev: pb.MessageEvent, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("timestamp: required, in epoch seconds")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"timestamp: not epoch seconds: {value!r}") from None
    if not math.isfinite(seconds) or abs(seconds) > _MAX_SECONDS:
        raise ValueError(f"timestamp: not epoch seconds: {value!r}")
    micros = round(seconds * 1_000_000)
    ev.timestamp.seconds, fraction = divmod(micros, 1_000_000)
    ev.timestamp.nanos = fraction * 1000
