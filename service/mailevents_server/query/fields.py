"""The field registry: which MessageEvent fields can be filtered, how, and where they are stored.

One table drives validation (which operators a field allows, how its values
parse), the stores' column lists and the CLI's help. Adding a filterable field
means adding a row here and a column in each store's schema migration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailevents.v1 import message_event_service_pb2 as spb
from mailevents_server.query.operators import ORDERED, TEXT_MATCH


class Kind(enum.Enum):
    """How a field's values are parsed and compared."""

    TEXT = "text"
    INT = "int"
    BOOL = "bool"
    TIMESTAMP = "timestamp"  # microseconds since the epoch, UTC
    ENUM = "enum"  # EventType; values are type names
    TAGS = "tags"  # a set of strings; EXACT/IN mean "has the tag"


_BASIC = frozenset({spb.OPERATOR_EXACT, spb.OPERATOR_IN, spb.OPERATOR_IS_NULL})

OPERATORS: dict[Kind, frozenset[int]] = {
    Kind.TEXT: _BASIC | TEXT_MATCH | ORDERED,
    Kind.INT: _BASIC | ORDERED,
    Kind.BOOL: _BASIC,
    Kind.TIMESTAMP: _BASIC | ORDERED,
    Kind.ENUM: frozenset({spb.OPERATOR_EXACT, spb.OPERATOR_IN}),
    Kind.TAGS: _BASIC,
}

#: Operators allowed when a condition compares a date part (an integer).
DATE_PART_OPERATORS = frozenset({spb.OPERATOR_EXACT, spb.OPERATOR_IN}) | ORDERED


@dataclass(frozen=True)
class Field:
    """A filterable field: its MessageEvent name, its storage column and its kind."""

    name: str
    column: str
    kind: Kind


def _f(name: str, kind: Kind = Kind.TEXT, column: str | None = None) -> Field:
    return Field(name, column or name, kind)


#: Every filterable field, in storage column order. `recipient_domain` is
#: derived from `recipient` on ingest (lowercased) and stored for grouping.
FIELDS: tuple[Field, ...] = (
    _f("id", Kind.INT),
    _f("event_id"),
    _f("type", Kind.ENUM),
    _f("type_name"),
    _f("event_category"),
    _f("timestamp", Kind.TIMESTAMP, "ts"),
    _f("send_time", Kind.TIMESTAMP),
    _f("message_id"),
    _f("transmission_id"),
    _f("campaign_id"),
    _f("template_id"),
    _f("template_version"),
    _f("customer_id"),
    _f("subaccount_id"),
    _f("bulk_email_id", Kind.INT),
    _f("send_email_id", Kind.INT),
    _f("contact_id", Kind.INT),
    _f("recipient"),
    _f("recipient_domain"),
    _f("raw_recipient"),
    _f("sender"),
    _f("friendly_from"),
    _f("mail_from"),
    _f("routing_domain"),
    _f("ip_address"),
    _f("remote_addr"),
    _f("sending_ip"),
    _f("ip_pool"),
    _f("relay_id"),
    _f("tags", Kind.TAGS),
    _f("msg_size", Kind.INT),
    _f("num_retries", Kind.INT),
    _f("queue_time", Kind.INT),
    _f("delivery_method"),
    _f("bounce_class", Kind.INT),
    _f("error_code"),
    _f("reason"),
    _f("fbtype"),
    _f("report_by"),
    _f("report_to"),
    _f("target_link_name"),
    _f("target_link_url"),
    _f("user_agent"),
    _f("archived", Kind.BOOL),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

#: The stored columns that are not the id (which the store assigns), in order.
DATA_COLUMNS: tuple[str, ...] = tuple(f.column for f in FIELDS if f.name != "id")

#: Tags are stored as one text: each tag enclosed in this separator, so that
#: "has tag X" is a substring test for SEP + X + SEP.
TAG_SEP = "\x1f"
