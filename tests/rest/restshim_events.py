"""Building events for the REST shim tests: demo-like, with known field values."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import timestamp_pb2

from mailevents.event_types import CATEGORY_BY_TYPE, parse_type
from mailevents.v1 import message_event_pb2 as pb

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"
_ids = itertools.count(1)


def ts(text: str) -> timestamp_pb2.Timestamp:
    """A Timestamp from an ISO text, UTC when it has no offset."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def event(
    type_name: str = "delivery", at: str = "2024-05-01T12:00:00", **fields: Any
) -> pb.MessageEvent:
    """One event of `type_name` at `at` (UTC), with a fresh event_id unless given."""
    event_type = parse_type(type_name) or pb.EVENT_TYPE_UNSPECIFIED
    values: dict[str, Any] = {
        "event_id": f"ev-{next(_ids)}",
        "type": event_type,
        "type_name": type_name,
        "timestamp": ts(at),
    }
    if event_type in CATEGORY_BY_TYPE:
        values["event_category"] = CATEGORY_BY_TYPE[event_type]
    for key, value in fields.items():
        values[key] = ts(value) if key == "send_time" and isinstance(value, str) else value
    return pb.MessageEvent(**values)


def sparkpost_seed_results() -> list[dict[str, Any]]:
    """The per-type sample objects of the SparkPost seed's 200 response, in its order."""
    text = (SEEDS / "sparkpost-message-events.txt").read_text()
    block = re.search(r"```\n(.*?)\n\s*```", text, re.S)
    assert block is not None
    return list(json.loads(block.group(1))["results"])
