"""How the CLI prints events and counts: JSON for programs, aligned columns for people.

JSON output is proto3 JSON with the proto's field names, with two changes
that make it pleasant in `jq` and round-trip with the CLI's own filters:
`type` is the lowercase type name ("bounce", as `--type` takes it) rather
than "EVENT_TYPE_BOUNCE", and 64-bit integers are numbers, not strings.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from google.protobuf.json_format import MessageToDict

from mailevents.event_types import NAME_BY_TYPE, type_name
from mailevents.v1 import message_event_service_pb2 as pb
from mailevents.v1.message_event_pb2 import MessageEvent

#: The names `--by` takes, per GroupBy value.
GROUP_NAMES: dict[int, str] = {
    pb.GROUP_BY_TYPE: "type",
    pb.GROUP_BY_CAMPAIGN: "campaign",
    pb.GROUP_BY_RECIPIENT_DOMAIN: "domain",
    pb.GROUP_BY_HOUR: "hour",
    pb.GROUP_BY_DAY: "day",
}

_TYPE_WIDTH = max(len(name) for name in NAME_BY_TYPE.values())
# (header, width) of the fixed columns; the detail column takes what is left.
_COLUMNS = (("TIMESTAMP", 20), ("TYPE", _TYPE_WIDTH), ("RECIPIENT", 32), ("CAMPAIGN", 20))
_MIN_DETAIL = 20


# protobuf releases before the option existed print 64-bit integers as strings.
_UNQUOTED_INT64: dict[str, Any] = (
    {"unquote_int64_if_possible": True}
    if "unquote_int64_if_possible" in inspect.signature(MessageToDict).parameters
    else {}
)


def event_to_dict(event: MessageEvent) -> dict[str, Any]:
    """One event as a JSON-ready dict (see the module docstring for the format)."""
    data = MessageToDict(event, preserving_proto_field_name=True, **_UNQUOTED_INT64)
    if "type" in data:
        data["type"] = type_name(event.type) or data["type"]
    return data


def table_header() -> str:
    """The header line of `table_rows`."""
    return _line([name for name, _ in _COLUMNS], "DETAIL", _detail_width())


def table_rows(events: Iterable[MessageEvent]) -> str:
    """Events as fixed-width lines, one per event, each ending in a newline.

    Widths are fixed rather than fitted to the data so that a stream prints
    each batch as it arrives and the columns still line up across batches;
    longer values are cut with an ellipsis.
    """
    width = _detail_width()
    return "".join(_line(_cells(event), _detail(event), width) + "\n" for event in events)


def _cells(event: MessageEvent) -> list[str]:
    timestamp = ""
    if event.HasField("timestamp"):
        timestamp = event.timestamp.ToDatetime(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        timestamp,
        type_name(event.type) or event.type_name,
        event.recipient,
        event.campaign_id,
    ]


def _detail(event: MessageEvent) -> str:
    """What is worth a glance for the event's kind: why it failed, or what was clicked."""
    return event.reason or event.raw_reason or event.target_link_url or event.user_agent


def _detail_width() -> int:
    used = sum(width + 2 for _, width in _COLUMNS)
    return max(_MIN_DETAIL, shutil.get_terminal_size().columns - used)


def _line(cells: list[str], detail: str, detail_width: int) -> str:
    parts = [_fit(cell, width) for cell, (_, width) in zip(cells, _COLUMNS, strict=True)]
    return "  ".join([*parts, _clip(detail, detail_width)]).rstrip()


def _fit(text: str, width: int) -> str:
    return _clip(text, width).ljust(width)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())  # a multi-line reason must stay on its row
    return text if len(text) <= width else text[: width - 1] + "…"


def count_to_dict(response: pb.CountMessageEventsResponse) -> dict[str, Any]:
    """`{"total": n, "groups": {"type": {"bounce": 3, ...}, ...}}`, buckets in server order."""
    return {
        "total": response.total,
        "groups": {
            _group_name(group.group_by): {b.key: b.count for b in group.buckets}
            for group in response.groups
        },
    }


def count_table(response: pb.CountMessageEventsResponse) -> str:
    """The total, then each group's buckets as aligned `key  count` lines."""
    lines = [f"total  {response.total}"]
    for group in response.groups:
        keys = [b.key or "(none)" for b in group.buckets]
        width = max((len(k) for k in keys), default=0)
        counts = [str(b.count) for b in group.buckets]
        count_width = max((len(c) for c in counts), default=0)
        lines.append("")
        lines.append(f"by {_group_name(group.group_by)}")
        lines.extend(
            f"  {k.ljust(width)}  {c.rjust(count_width)}" for k, c in zip(keys, counts, strict=True)
        )
    return "\n".join(lines) + "\n"


def _group_name(group_by: int) -> str:
    return GROUP_NAMES.get(group_by, str(group_by))
