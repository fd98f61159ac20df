import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mailevents.v1 import message_event_pb2 as _message_event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Operator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATOR_UNSPECIFIED: _ClassVar[Operator]
    OPERATOR_EXACT: _ClassVar[Operator]
    OPERATOR_IEXACT: _ClassVar[Operator]
    OPERATOR_IN: _ClassVar[Operator]
    OPERATOR_CONTAINS: _ClassVar[Operator]
    OPERATOR_ICONTAINS: _ClassVar[Operator]
    OPERATOR_STARTS_WITH: _ClassVar[Operator]
    OPERATOR_ISTARTS_WITH: _ClassVar[Operator]
    OPERATOR_ENDS_WITH: _ClassVar[Operator]
    OPERATOR_IENDS_WITH: _ClassVar[Operator]
    OPERATOR_IS_NULL: _ClassVar[Operator]
    OPERATOR_GT: _ClassVar[Operator]
    OPERATOR_GTE: _ClassVar[Operator]
    OPERATOR_LT: _ClassVar[Operator]
    OPERATOR_LTE: _ClassVar[Operator]

class DatePart(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATE_PART_UNSPECIFIED: _ClassVar[DatePart]
    DATE_PART_YEAR: _ClassVar[DatePart]
    DATE_PART_MONTH: _ClassVar[DatePart]
    DATE_PART_DAY: _ClassVar[DatePart]
    DATE_PART_WEEK_DAY: _ClassVar[DatePart]
    DATE_PART_HOUR: _ClassVar[DatePart]
    DATE_PART_MINUTE: _ClassVar[DatePart]
    DATE_PART_SECOND: _ClassVar[DatePart]

class Order(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_UNSPECIFIED: _ClassVar[Order]
    ORDER_TIMESTAMP_DESC: _ClassVar[Order]
    ORDER_TIMESTAMP_ASC: _ClassVar[Order]
    ORDER_ID_ASC: _ClassVar[Order]
    ORDER_ID_DESC: _ClassVar[Order]
    ORDER_TIMESTAMP_DESC_ID_ASC: _ClassVar[Order]
    ORDER_TIMESTAMP_ASC_ID_DESC: _ClassVar[Order]

class GroupBy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_BY_UNSPECIFIED: _ClassVar[GroupBy]
    GROUP_BY_TYPE: _ClassVar[GroupBy]
    GROUP_BY_CAMPAIGN: _ClassVar[GroupBy]
    GROUP_BY_RECIPIENT_DOMAIN: _ClassVar[GroupBy]
    GROUP_BY_HOUR: _ClassVar[GroupBy]
    GROUP_BY_DAY: _ClassVar[GroupBy]

class IngestStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_STATUS_UNSPECIFIED: _ClassVar[IngestStatus]
    INGEST_STATUS_STORED: _ClassVar[IngestStatus]
    INGEST_STATUS_DUPLICATE: _ClassVar[IngestStatus]
    INGEST_STATUS_REJECTED: _ClassVar[IngestStatus]
OPERATOR_UNSPECIFIED: Operator
OPERATOR_EXACT: Operator
OPERATOR_IEXACT: Operator
OPERATOR_IN: Operator
OPERATOR_CONTAINS: Operator
OPERATOR_ICONTAINS: Operator
OPERATOR_STARTS_WITH: Operator
OPERATOR_ISTARTS_WITH: Operator
OPERATOR_ENDS_WITH: Operator
OPERATOR_IENDS_WITH: Operator
OPERATOR_IS_NULL: Operator
OPERATOR_GT: Operator
OPERATOR_GTE: Operator
OPERATOR_LT: Operator
OPERATOR_LTE: Operator
DATE_PART_UNSPECIFIED: DatePart
DATE_PART_YEAR: DatePart
DATE_PART_MONTH: DatePart
DATE_PART_DAY: DatePart
DATE_PART_WEEK_DAY: DatePart
DATE_PART_HOUR: DatePart
DATE_PART_MINUTE: DatePart
DATE_PART_SECOND: DatePart
ORDER_UNSPECIFIED: Order
ORDER_TIMESTAMP_DESC: Order
ORDER_TIMESTAMP_ASC: Order
ORDER_ID_ASC: Order
ORDER_ID_DESC: Order
ORDER_TIMESTAMP_DESC_ID_ASC: Order
ORDER_TIMESTAMP_ASC_ID_DESC: Order
GROUP_BY_UNSPECIFIED: GroupBy
GROUP_BY_TYPE: GroupBy
GROUP_BY_CAMPAIGN: GroupBy
GROUP_BY_RECIPIENT_DOMAIN: GroupBy
GROUP_BY_HOUR: GroupBy
GROUP_BY_DAY: GroupBy
INGEST_STATUS_UNSPECIFIED: IngestStatus
INGEST_STATUS_STORED: IngestStatus
INGEST_STATUS_DUPLICATE: IngestStatus
INGEST_STATUS_REJECTED: IngestStatus

class Condition(_message.Message):
    __slots__ = ("field", "operator", "values", "date_part", "time_zone")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    DATE_PART_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    field: str
    operator: Operator
    values: _containers.RepeatedScalarFieldContainer[str]
    date_part: DatePart
    time_zone: str
    def __init__(self, field: _Optional[str] = ..., operator: _Optional[_Union[Operator, str]] = ..., values: _Optional[_Iterable[str]] = ..., date_part: _Optional[_Union[DatePart, str]] = ..., time_zone: _Optional[str] = ...) -> None: ...

class EventQuery(_message.Message):
    __slots__ = ("conditions", "start_time", "end_time", "order")
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    conditions: _containers.RepeatedCompositeFieldContainer[Condition]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    order: Order
    def __init__(self, conditions: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., order: _Optional[_Union[Order, str]] = ...) -> None: ...

class SearchMessageEventsRequest(_message.Message):
    __slots__ = ("query", "read_mask", "batch_size", "resume_token", "max_events", "follow", "heartbeat_interval", "skip")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    READ_MASK_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    query: EventQuery
    read_mask: _field_mask_pb2.FieldMask
    batch_size: int
    resume_token: str
    max_events: int
    follow: bool
    heartbeat_interval: _duration_pb2.Duration
    skip: int
    def __init__(self, query: _Optional[_Union[EventQuery, _Mapping]] = ..., read_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., batch_size: _Optional[int] = ..., resume_token: _Optional[str] = ..., max_events: _Optional[int] = ..., follow: _Optional[bool] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., skip: _Optional[int] = ...) -> None: ...

class Watermark(_message.Message):
    __slots__ = ("position", "time")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    position: int
    time: _timestamp_pb2.Timestamp
    def __init__(self, position: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SearchStats(_message.Message):
    __slots__ = ("events", "batches", "elapsed")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    events: int
    batches: int
    elapsed: _duration_pb2.Duration
    def __init__(self, events: _Optional[int] = ..., batches: _Optional[int] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SearchMessageEventsResponse(_message.Message):
    __slots__ = ("events", "resume_token", "stats", "watermark")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_message_event_pb2.MessageEvent]
    resume_token: str
    stats: SearchStats
    watermark: Watermark
    def __init__(self, events: _Optional[_Iterable[_Union[_message_event_pb2.MessageEvent, _Mapping]]] = ..., resume_token: _Optional[str] = ..., stats: _Optional[_Union[SearchStats, _Mapping]] = ..., watermark: _Optional[_Union[Watermark, _Mapping]] = ...) -> None: ...

class ListMessageEventsRequest(_message.Message):
    __slots__ = ("query", "read_mask", "page_size", "page_token", "include_total_size", "skip")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    READ_MASK_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    query: EventQuery
    read_mask: _field_mask_pb2.FieldMask
    page_size: int
    page_token: str
    include_total_size: bool
    skip: int
    def __init__(self, query: _Optional[_Union[EventQuery, _Mapping]] = ..., read_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_total_size: _Optional[bool] = ..., skip: _Optional[int] = ...) -> None: ...

class ListMessageEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token", "total_size")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_message_event_pb2.MessageEvent]
    next_page_token: str
    total_size: int
    def __init__(self, events: _Optional[_Iterable[_Union[_message_event_pb2.MessageEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetMessageEventRequest(_message.Message):
    __slots__ = ("id", "event_id", "read_mask")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    READ_MASK_FIELD_NUMBER: _ClassVar[int]
    id: int
    event_id: str
    read_mask: _field_mask_pb2.FieldMask
    def __init__(self, id: _Optional[int] = ..., event_id: _Optional[str] = ..., read_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class GetMessageEventResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _message_event_pb2.MessageEvent
    def __init__(self, event: _Optional[_Union[_message_event_pb2.MessageEvent, _Mapping]] = ...) -> None: ...

class CountMessageEventsRequest(_message.Message):
    __slots__ = ("query", "group_by", "time_zone", "max_buckets")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    MAX_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    query: EventQuery
    group_by: _containers.RepeatedScalarFieldContainer[GroupBy]
    time_zone: str
    max_buckets: int
    def __init__(self, query: _Optional[_Union[EventQuery, _Mapping]] = ..., group_by: _Optional[_Iterable[_Union[GroupBy, str]]] = ..., time_zone: _Optional[str] = ..., max_buckets: _Optional[int] = ...) -> None: ...

class CountBucket(_message.Message):
    __slots__ = ("key", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: int
    def __init__(self, key: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class CountGroup(_message.Message):
    __slots__ = ("group_by", "buckets")
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    group_by: GroupBy
    buckets: _containers.RepeatedCompositeFieldContainer[CountBucket]
    def __init__(self, group_by: _Optional[_Union[GroupBy, str]] = ..., buckets: _Optional[_Iterable[_Union[CountBucket, _Mapping]]] = ...) -> None: ...

class CountMessageEventsResponse(_message.Message):
    __slots__ = ("total", "groups")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    total: int
    groups: _containers.RepeatedCompositeFieldContainer[CountGroup]
    def __init__(self, total: _Optional[int] = ..., groups: _Optional[_Iterable[_Union[CountGroup, _Mapping]]] = ...) -> None: ...

class IngestMessageEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_message_event_pb2.MessageEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_message_event_pb2.MessageEvent, _Mapping]]] = ...) -> None: ...

class IngestResult(_message.Message):
    __slots__ = ("index", "event_id", "status", "id", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    event_id: str
    status: IngestStatus
    id: int
    reason: str
    def __init__(self, index: _Optional[int] = ..., event_id: _Optional[str] = ..., status: _Optional[_Union[IngestStatus, str]] = ..., id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class IngestMessageEventsResponse(_message.Message):
    __slots__ = ("results", "stored", "duplicates", "rejected")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[IngestResult]
    stored: int
    duplicates: int
    rejected: int
    def __init__(self, results: _Optional[_Iterable[_Union[IngestResult, _Mapping]]] = ..., stored: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class IngestMessageEventsStreamRequest(_message.Message):
    __slots__ = ("events", "batch_id")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_message_event_pb2.MessageEvent]
    batch_id: str
    def __init__(self, events: _Optional[_Iterable[_Union[_message_event_pb2.MessageEvent, _Mapping]]] = ..., batch_id: _Optional[str] = ...) -> None: ...

class IngestMessageEventsStreamResponse(_message.Message):
    __slots__ = ("sequence", "batch_id", "results", "stored", "duplicates", "rejected")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    batch_id: str
    results: _containers.RepeatedCompositeFieldContainer[IngestResult]
    stored: int
    duplicates: int
    rejected: int
    def __init__(self, sequence: _Optional[int] = ..., batch_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[IngestResult, _Mapping]]] = ..., stored: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class WatchMessageEventsRequest(_message.Message):
    __slots__ = ("query", "read_mask", "resume_token", "batch_size", "heartbeat_interval", "max_events")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    READ_MASK_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    query: EventQuery
    read_mask: _field_mask_pb2.FieldMask
    resume_token: str
    batch_size: int
    heartbeat_interval: _duration_pb2.Duration
    max_events: int
    def __init__(self, query: _Optional[_Union[EventQuery, _Mapping]] = ..., read_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., resume_token: _Optional[str] = ..., batch_size: _Optional[int] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_events: _Optional[int] = ...) -> None: ...

class WatchMessageEventsResponse(_message.Message):
    __slots__ = ("events", "resume_token", "watermark")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_message_event_pb2.MessageEvent]
    resume_token: str
    watermark: Watermark
    def __init__(self, events: _Optional[_Iterable[_Union[_message_event_pb2.MessageEvent, _Mapping]]] = ..., resume_token: _Optional[str] = ..., watermark: _Optional[_Union[Watermark, _Mapping]] = ...) -> None: ...
