"""The mapping's tables: each SparkPost key's MessageEvent field and kind, and each
type's documented key order (its shape); read by both directions.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from typing import Final

from google.protobuf.descriptor import FieldDescriptor

from mailevents.v1 import message_event_pb2 as pb


class Kind(enum.Enum):
    """How a value is read from SparkPost JSON and written back."""

    TYPE = "type"  # `type`: enum plus the original name
    TEXT = "text"  # string field; JSON numbers are stored as their string form
    COUNT = "count"  # integer field that SparkPost sends as a string
    NUMBER = "number"  # integer field rendered as a JSON number (our extensions)
    TIME = "time"  # Timestamp: ISO 8601 text or epoch seconds
    TAGS = "tags"  # list of strings
    META = "meta"  # object of string values
    SUBS = "subs"  # any object, stored as compact JSON text
    GEO = "geo"  # GeoIp
    FLAG = "flag"  # bool
    CATEGORY = "category"  # event_category: written only when not the type's usual one


@dataclass(frozen=True, slots=True)
class Field:
    key: str  # SparkPost's key
    field: str  # MessageEvent's field
    kind: Kind
    extension: bool = False  # a mailevents key, not SparkPost's: written only when lossless


_S, _C, _N = Kind.TEXT, Kind.COUNT, Kind.NUMBER

#: Every SparkPost key we type, in the order fields are rendered outside a shape.
FIELDS: Final[tuple[Field, ...]] = (
    Field("type", "type_name", Kind.TYPE),
    Field("event_id", "event_id", _S),
    Field("timestamp", "timestamp", Kind.TIME),
    Field("message_id", "message_id", _S),
    Field("transmission_id", "transmission_id", _S),
    Field("campaign_id", "campaign_id", _S),
    Field("template_id", "template_id", _S),
    Field("template_version", "template_version", _S),
    Field("customer_id", "customer_id", _S),
    Field("subaccount_id", "subaccount_id", _S),
    Field("rcpt_to", "recipient", _S),
    Field("raw_rcpt_to", "raw_recipient", _S),
    Field("msg_from", "sender", _S),
    Field("friendly_from", "friendly_from", _S),
    Field("mailfrom", "mail_from", _S),
    Field("routing_domain", "routing_domain", _S),
    Field("ip_address", "ip_address", _S),
    Field("remote_addr", "remote_addr", _S),
    Field("sending_ip", "sending_ip", _S),
    Field("ip_pool", "ip_pool", _S),
    Field("relay_id", "relay_id", _S),
    Field("rcpt_tags", "tags", Kind.TAGS),
    Field("rcpt_meta", "metadata", Kind.META),
    Field("rcpt_subs", "substitutions_json", Kind.SUBS),
    Field("msg_size", "msg_size", _C),
    Field("num_retries", "num_retries", _C),
    Field("queue_time", "queue_time", _C),
    Field("delv_method", "delivery_method", _S),
    Field("bounce_class", "bounce_class", _C),
    Field("error_code", "error_code", _S),
    Field("reason", "reason", _S),
    Field("raw_reason", "raw_reason", _S),
    Field("fbtype", "fbtype", _S),
    Field("report_by", "report_by", _S),
    Field("report_to", "report_to", _S),
    Field("user_str", "user_str", _S),
    Field("target_link_name", "target_link_name", _S),
    Field("target_link_url", "target_link_url", _S),
    Field("user_agent", "user_agent", _S),
    Field("geo_ip", "geo_ip", Kind.GEO),
    Field("bulk_email_id", "bulk_email_id", _N, extension=True),
    Field("send_email_id", "send_email_id", _N, extension=True),
    Field("contact_id", "contact_id", _N, extension=True),
    Field("send_time", "send_time", Kind.TIME, extension=True),
    Field("archived", "archived", Kind.FLAG, extension=True),
    Field("event_category", "event_category", Kind.CATEGORY, extension=True),
)
_BY_KEY: Final[dict[str, Field]] = {f.key: f for f in FIELDS}


@dataclass(frozen=True, slots=True)
class Shape:
    epoch_timestamp: bool  # the document's out_of_band sample has epoch seconds
    order: tuple[Field, ...]  # what to render: the keys, then every other SparkPost key
    lossless_order: tuple[Field, ...]  # the same, then the mailevents extensions


def _shape(keys: str, *, epoch_timestamp: bool = False) -> Shape:
    """A shape with its render orders worked out once, not per event."""
    listed = tuple(_BY_KEY[key] for key in keys.split())
    rest = tuple(f for f in FIELDS if f not in listed)
    order = listed + tuple(f for f in rest if not f.extension)
    lossless_order = order + tuple(f for f in rest if f.extension)
    return Shape(epoch_timestamp, order, lossless_order)


#: The Message Events API document's sample shape per type: its keys in its order.
SHAPES: Final[dict[int, Shape]] = {
    pb.EVENT_TYPE_BOUNCE: _shape(
        "type bounce_class campaign_id customer_id error_code ip_address message_id msg_from"
        " msg_size num_retries rcpt_meta rcpt_tags rcpt_to reason routing_domain template_id"
        " template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_DELIVERY: _shape(
        "type campaign_id customer_id ip_address message_id msg_from msg_size num_retries"
        " queue_time rcpt_meta rcpt_tags rcpt_to routing_domain template_id template_version"
        " timestamp transmission_id"
    ),
    pb.EVENT_TYPE_INJECTION: _shape(
        "type campaign_id customer_id message_id msg_from msg_size rcpt_meta rcpt_tags rcpt_to"
        " routing_domain template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_SPAM_COMPLAINT: _shape(
        "type campaign_id customer_id fbtype message_id rcpt_meta rcpt_to report_by report_to"
        " template_id timestamp user_str"
    ),
    pb.EVENT_TYPE_OUT_OF_BAND: _shape(
        "type bounce_class campaign_id customer_id error_code message_id msg_from rcpt_to"
        " reason routing_domain template_id template_version timestamp",
        epoch_timestamp=True,
    ),
    pb.EVENT_TYPE_POLICY_REJECTION: _shape(
        "type campaign_id customer_id error_code message_id msg_from rcpt_meta rcpt_tags"
        " rcpt_to reason remote_addr template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_DELAY: _shape(
        "type bounce_class campaign_id customer_id error_code ip_address message_id msg_from"
        " msg_size num_retries queue_time rcpt_meta rcpt_tags rcpt_to reason routing_domain"
        " template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_CLICK: _shape(
        "type campaign_id customer_id ip_address message_id rcpt_meta rcpt_tags rcpt_to"
        " target_link_name target_link_url template_id template_version timestamp"
        " transmission_id user_agent geo_ip"
    ),
    pb.EVENT_TYPE_OPEN: _shape(
        "type campaign_id customer_id ip_address message_id rcpt_meta rcpt_tags rcpt_to"
        " template_id template_version timestamp transmission_id user_agent geo_ip"
    ),
    pb.EVENT_TYPE_GENERATION_FAILURE: _shape(
        "type campaign_id customer_id error_code rcpt_meta rcpt_subs rcpt_tags rcpt_to reason"
        " routing_domain template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_GENERATION_REJECTION: _shape(
        "type campaign_id customer_id error_code rcpt_meta rcpt_subs rcpt_tags rcpt_to reason"
        " routing_domain template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_LIST_UNSUBSCRIBE: _shape(
        "type campaign_id customer_id mailfrom message_id rcpt_meta rcpt_tags rcpt_to"
        " template_id template_version timestamp transmission_id"
    ),
    pb.EVENT_TYPE_LINK_UNSUBSCRIBE: _shape(
        "type campaign_id customer_id mailfrom message_id rcpt_meta rcpt_tags rcpt_to"
        " template_id template_version timestamp transmission_id user_agent"
    ),
    pb.EVENT_TYPE_RELAY_INJECTION: _shape(
        "type rcpt_to msg_size routing_domain customer_id timestamp msg_from relay_id"
    ),
    pb.EVENT_TYPE_RELAY_REJECTION: _shape(
        "type reason rcpt_to error_code msg_from remote_addr timestamp customer_id relay_id"
    ),
    pb.EVENT_TYPE_RELAY_DELIVERY: _shape(
        "type routing_domain msg_from queue_time customer_id timestamp num_retries relay_id"
    ),
    pb.EVENT_TYPE_RELAY_TEMPFAIL: _shape(
        "type routing_domain msg_from queue_time customer_id timestamp num_retries reason"
        " error_code relay_id"
    ),
    pb.EVENT_TYPE_RELAY_PERMFAIL: _shape(
        "type routing_domain msg_from queue_time customer_id timestamp num_retries reason"
        " error_code relay_id"
    ),
}
SHAPES[pb.EVENT_TYPE_INITIAL_OPEN] = SHAPES[pb.EVENT_TYPE_OPEN]
#: For a type the document does not show: `type`, then every present field.
GENERIC_SHAPE: Final = _shape("type")

_GEO_KEYS: Final = ("country", "region", "city", "latitude", "longitude")
GEO_KEY_SET: Final = frozenset(_GEO_KEYS)
INTEGER_TEXT: Final = re.compile(r"[+-]?\d+")
EPOCH_TEXT: Final = re.compile(r"[+-]?\d+(?:\.\d+)?")
ISO_TEXT: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)"
    r"(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?"
    r"\s*(?:[Zz]|([+-])(\d\d)(?::?(\d\d))?)?"
)
EPOCH: Final = dt.datetime(1970, 1, 1)
EPOCH_ORDINAL: Final = EPOCH.toordinal()
DAY: Final = 86_400
# google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31.
MIN_SECONDS: Final = -62_135_596_800
MAX_SECONDS: Final = 253_402_300_799


DESCRIPTORS: Final = pb.MessageEvent.DESCRIPTOR.fields_by_name
_INT32_TYPES: Final = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32)


def integer_bounds(field: str) -> tuple[int, int]:
    """A field's range, from the descriptor, so out-of-range input is named, not a crash."""
    bits = 32 if DESCRIPTORS[field].type in _INT32_TYPES else 64
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


class _Verbatim:
    """Marks a value that is kept as-is in extra_json rather than typed."""


VERBATIM: Final = _Verbatim()

# Speed: both directions run per event on hot paths (webhook ingest, 10,000-event
# REST pages), so what a field's kind decides is decided once, when the tables are
# built: each SparkPost key gets its own reader (its name and bounds bound in), and
# each type its own render plans of (field, has presence, key, writer). Per event
# there is one loop over those. Timestamps are read and written as integer seconds,
# with cached dates and precomputed times of day, never a datetime per event.
