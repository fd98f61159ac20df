import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_INJECTION: _ClassVar[EventType]
    EVENT_TYPE_DELIVERY: _ClassVar[EventType]
    EVENT_TYPE_BOUNCE: _ClassVar[EventType]
    EVENT_TYPE_DELAY: _ClassVar[EventType]
    EVENT_TYPE_POLICY_REJECTION: _ClassVar[EventType]
    EVENT_TYPE_OUT_OF_BAND: _ClassVar[EventType]
    EVENT_TYPE_OPEN: _ClassVar[EventType]
    EVENT_TYPE_CLICK: _ClassVar[EventType]
    EVENT_TYPE_GENERATION_FAILURE: _ClassVar[EventType]
    EVENT_TYPE_GENERATION_REJECTION: _ClassVar[EventType]
    EVENT_TYPE_SPAM_COMPLAINT: _ClassVar[EventType]
    EVENT_TYPE_LIST_UNSUBSCRIBE: _ClassVar[EventType]
    EVENT_TYPE_LINK_UNSUBSCRIBE: _ClassVar[EventType]
    EVENT_TYPE_RELAY_INJECTION: _ClassVar[EventType]
    EVENT_TYPE_RELAY_REJECTION: _ClassVar[EventType]
    EVENT_TYPE_RELAY_DELIVERY: _ClassVar[EventType]
    EVENT_TYPE_RELAY_TEMPFAIL: _ClassVar[EventType]
    EVENT_TYPE_RELAY_PERMFAIL: _ClassVar[EventType]
    EVENT_TYPE_INITIAL_OPEN: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_INJECTION: EventType
EVENT_TYPE_DELIVERY: EventType
EVENT_TYPE_BOUNCE: EventType
EVENT_TYPE_DELAY: EventType
EVENT_TYPE_POLICY_REJECTION: EventType
EVENT_TYPE_OUT_OF_BAND: EventType
EVENT_TYPE_OPEN: EventType
EVENT_TYPE_CLICK: EventType
EVENT_TYPE_GENERATION_FAILURE: EventType
EVENT_TYPE_GENERATION_REJECTION: EventType
EVENT_TYPE_SPAM_COMPLAINT: EventType
EVENT_TYPE_LIST_UNSUBSCRIBE: EventType
EVENT_TYPE_LINK_UNSUBSCRIBE: EventType
EVENT_TYPE_RELAY_INJECTION: EventType
EVENT_TYPE_RELAY_REJECTION: EventType
EVENT_TYPE_RELAY_DELIVERY: EventType
EVENT_TYPE_RELAY_TEMPFAIL: EventType
EVENT_TYPE_RELAY_PERMFAIL: EventType
EVENT_TYPE_INITIAL_OPEN: EventType

class GeoIp(_message.Message):
    __slots__ = ("country", "region", "city", "latitude", "longitude")
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    country: str
    region: str
    city: str
    latitude: float
    longitude: float
    def __init__(self, country: _Optional[str] = ..., region: _Optional[str] = ..., city: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ...) -> None: ...

class MessageEvent(_message.Message):
    __slots__ = ("id", "event_id", "type", "type_name", "event_category", "timestamp", "message_id", "transmission_id", "campaign_id", "template_id", "template_version", "customer_id", "subaccount_id", "bulk_email_id", "send_email_id", "contact_id", "send_time", "recipient", "raw_recipient", "sender", "friendly_from", "mail_from", "routing_domain", "ip_address", "remote_addr", "sending_ip", "ip_pool", "relay_id", "tags", "metadata", "substitutions_json", "msg_size", "num_retries", "queue_time", "delivery_method", "bounce_class", "error_code", "reason", "raw_reason", "fbtype", "report_by", "report_to", "user_str", "target_link_name", "target_link_url", "user_agent", "geo_ip", "archived", "extra_json")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TYPE_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BULK_EMAIL_ID_FIELD_NUMBER: _ClassVar[int]
    SEND_EMAIL_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    RAW_RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    FRIENDLY_FROM_FIELD_NUMBER: _ClassVar[int]
    MAIL_FROM_FIELD_NUMBER: _ClassVar[int]
    ROUTING_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDR_FIELD_NUMBER: _ClassVar[int]
    SENDING_IP_FIELD_NUMBER: _ClassVar[int]
    IP_POOL_FIELD_NUMBER: _ClassVar[int]
    RELAY_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SUBSTITUTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    MSG_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_RETRIES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_METHOD_FIELD_NUMBER: _ClassVar[int]
    BOUNCE_CLASS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RAW_REASON_FIELD_NUMBER: _ClassVar[int]
    FBTYPE_FIELD_NUMBER: _ClassVar[int]
    REPORT_BY_FIELD_NUMBER: _ClassVar[int]
    REPORT_TO_FIELD_NUMBER: _ClassVar[int]
    USER_STR_FIELD_NUMBER: _ClassVar[int]
    TARGET_LINK_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_LINK_URL_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    GEO_IP_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: int
    event_id: str
    type: EventType
    type_name: str
    event_category: str
    timestamp: _timestamp_pb2.Timestamp
    message_id: str
    transmission_id: str
    campaign_id: str
    template_id: str
    template_version: str
    customer_id: str
    subaccount_id: str
    bulk_email_id: int
    send_email_id: int
    contact_id: int
    send_time: _timestamp_pb2.Timestamp
    recipient: str
    raw_recipient: str
    sender: str
    friendly_from: str
    mail_from: str
    routing_domain: str
    ip_address: str
    remote_addr: str
    sending_ip: str
    ip_pool: str
    relay_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    substitutions_json: str
    msg_size: int
    num_retries: int
    queue_time: int
    delivery_method: str
    bounce_class: int
    error_code: str
    reason: str
    raw_reason: str
    fbtype: str
    report_by: str
    report_to: str
    user_str: str
    target_link_name: str
    target_link_url: str
    user_agent: str
    geo_ip: GeoIp
    archived: bool
    extra_json: str
    def __init__(self, id: _Optional[int] = ..., event_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., type_name: _Optional[str] = ..., event_category: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message_id: _Optional[str] = ..., transmission_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., template_id: _Optional[str] = ..., template_version: _Optional[str] = ..., customer_id: _Optional[str] = ..., subaccount_id: _Optional[str] = ..., bulk_email_id: _Optional[int] = ..., send_email_id: _Optional[int] = ..., contact_id: _Optional[int] = ..., send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recipient: _Optional[str] = ..., raw_recipient: _Optional[str] = ..., sender: _Optional[str] = ..., friendly_from: _Optional[str] = ..., mail_from: _Optional[str] = ..., routing_domain: _Optional[str] = ..., ip_address: _Optional[str] = ..., remote_addr: _Optional[str] = ..., sending_ip: _Optional[str] = ..., ip_pool: _Optional[str] = ..., relay_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., substitutions_json: _Optional[str] = ..., msg_size: _Optional[int] = ..., num_retries: _Optional[int] = ..., queue_time: _Optional[int] = ..., delivery_method: _Optional[str] = ..., bounce_class: _Optional[int] = ..., error_code: _Optional[str] = ..., reason: _Optional[str] = ..., raw_reason: _Optional[str] = ..., fbtype: _Optional[str] = ..., report_by: _Optional[str] = ..., report_to: _Optional[str] = ..., user_str: _Optional[str] = ..., target_link_name: _Optional[str] = ..., target_link_url: _Optional[str] = ..., user_agent: _Optional[str] = ..., geo_ip: _Optional[_Union[GeoIp, _Mapping]] = ..., archived: _Optional[bool] = ..., extra_json: _Optional[str] = ...) -> None: ...
