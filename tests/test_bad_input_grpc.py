"""Bad input over gRPC: malformed protobuf, integers past int64 and repeated fields
that multiply work are INVALID_ARGUMENT with plain words; the log gets at most
one WARNING line per refusal, never an ERROR or a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from badinput import assert_quiet
from factories import cond, error_details, event, mask, query

from mailevents.v1 import message_event_service_pb2 as spb

SERVICE = spb.DESCRIPTOR.services_by_name["MessageEventService"]
INT64_EDGES = ["9223372036854775808", "-9223372036854775809", "18446744073709551616", "9" * 19]


@pytest.fixture(autouse=True)
def quiet(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield
    assert_quiet(caplog)


def _key(number: int, wire_type: int) -> bytes:
    return (
        bytes([number << 3 | wire_type])
        if number < 16
        else bytes([(number << 3 | wire_type) & 0x7F | 0x80, number >> 4])
    )


def bad_utf8(message: Any) -> bytes:
    """Bytes of `message` with invalid UTF-8 in its first (possibly nested) string field."""
    for field in message.fields:
        if field.type == field.TYPE_STRING:
            return _key(field.number, 2) + b"\x02\xff\xfe"
    for field in message.fields:
        if field.type == field.TYPE_MESSAGE:
            inner = bad_utf8(field.message_type)
            if inner:
                return _key(field.number, 2) + bytes([len(inner)]) + inner
    return b""


MALFORMED = {
    "invalid utf-8 in a string": None,
    "truncated varint": b"\x08",
    "overlong varint": b"\x08" + b"\xff" * 11,
    "truncated length": b"\x0a\x7f\x01",
    "random bytes": bytes(range(256))[::7] * 3,
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
async def test_malformed_protobuf_is_invalid_argument_and_one_log_line(
    server: Any, method: str, payload: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    descriptor = SERVICE.methods_by_name[method]
    payload = payload if payload is not None else bad_utf8(descriptor.input_type)
    assert payload
    path = f"/{SERVICE.full_name}/{method}"
    md = server.metadata()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if descriptor.client_streaming:
            call = server.channel.stream_stream(path)(iter([payload]), metadata=md, timeout=10)
            async for _ in call:
                pass
        elif descriptor.server_streaming:
            async for _ in server.channel.unary_stream(path)(payload, metadata=md, timeout=10):
                pass
        else:
            await server.channel.unary_unary(path)(payload, metadata=md, timeout=10)
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    info, _ = error_details(err)
    assert info.reason == "MALFORMED_REQUEST"
    assert "DecodeError" not in (err.details() or "") and "Unexpected" not in (err.details() or "")
    lines = [r for r in caplog.records if r.name == "mailevents_server.malformed"]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    # and the server answers a normal request afterwards
    await server.stub.CountMessageEvents(spb.CountMessageEventsRequest(), metadata=md)


@pytest.mark.parametrize("value", INT64_EDGES)
@pytest.mark.parametrize("part", [spb.DATE_PART_WEEK_DAY, spb.DATE_PART_YEAR])
async def test_a_date_part_past_int64_is_invalid_argument(
    server: Any, value: str, part: int
) -> None:
    await server.ingest([event("e1")])
    q = query(cond("timestamp", spb.OPERATOR_IN, "1", value, date_part=part))
    for call in (
        server.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(query=q), metadata=server.metadata()
        ),
        server.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(query=q), metadata=server.metadata()
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        _, violations = error_details(caught.value)
        assert [f for f, _ in violations] == ["query.conditions[0].values[1]"]


@pytest.mark.parametrize("value", INT64_EDGES)
async def test_an_integer_field_past_int64_is_invalid_argument(server: Any, value: str) -> None:
    q = query(cond("bulk_email_id", spb.OPERATOR_EXACT, value))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(query=q), metadata=server.metadata()
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_group_by_is_capped_and_deduplicated(server: Any) -> None:
    await server.ingest([event("e1"), event("e2")])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(group_by=[spb.GROUP_BY_TYPE] * 1000),
            metadata=server.metadata(),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = error_details(caught.value)
    assert [f for f, _ in violations] == ["group_by"]
    response = await server.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(group_by=[spb.GROUP_BY_TYPE, spb.GROUP_BY_TYPE]),
        metadata=server.metadata(),
    )
    assert [g.group_by for g in response.groups] == [spb.GROUP_BY_TYPE]


async def test_read_mask_paths_are_capped(server: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.stub.ListMessageEvents(
            spb.ListMessageEventsRequest(read_mask=mask(*["id"] * 5000)),
            metadata=server.metadata(),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = error_details(caught.value)
    assert [f for f, _ in violations] == ["read_mask"]


async def test_a_value_longer_than_any_field_is_refused(server: Any) -> None:
    q = query(cond("recipient", spb.OPERATOR_ICONTAINS, "x" * 100_000))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(query=q), metadata=server.metadata()
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = error_details(caught.value)
    assert [f for f, _ in violations] == ["query.conditions[0].values[0]"]


async def test_timestamps_at_the_calendars_ends_are_accepted(server: Any) -> None:
    q = spb.EventQuery()
    q.start_time.seconds = -62135596800  # 0001-01-01
    q.end_time.seconds, q.end_time.nanos = 253402300799, 999_999_999  # 9999-12-31T23:59:59.999…
    await server.ingest([event("e1")])
    response = await server.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(query=q), metadata=server.metadata()
    )
    assert response.total == 1


async def test_deadlines_expiring_mid_search_log_no_error(server: Any) -> None:
    # Large batches a client stops reading: the server's writes wait for HTTP/2
    # flow control when the deadline passes, so the deadline hits mid-write.
    await server.ingest([event(f"e{i}", reason="r" * 500) for i in range(20_000)])
    for attempt in range(12):
        call = server.stub.SearchMessageEvents(
            spb.SearchMessageEventsRequest(batch_size=2000),
            metadata=server.metadata(),
            timeout=0.05 + 0.05 * (attempt % 4),
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                await asyncio.sleep(0.5)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.5)  # let the server finish what it was writing
    response = await server.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(), metadata=server.metadata()
    )
    assert response.total == 20_000


async def test_grpc_aio_s_line_about_a_gone_client_is_one_warning(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The race behind it (a write failing in core before grpc.aio has seen the
    # cancellation) is rare on a quiet machine; the line grpc.aio then writes,
    # with its traceback, must reach the log as one WARNING.
    logger = logging.getLogger("grpc._cython.cygrpc")
    try:
        raise RuntimeError("batch failed")  # stands in for cygrpc.ExecuteBatchError
    except RuntimeError:
        logger.exception("ExecuteBatchError raised in core by servicer method [/x/Search]")
    [line] = [r for r in caplog.records if r.name == "grpc._cython.cygrpc"]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert "client had gone" in line.getMessage()


async def test_date_part_conditions_are_capped(server: Any) -> None:
    parts = [cond("timestamp", spb.OPERATOR_GTE, "1", date_part=spb.DATE_PART_HOUR)] * 9
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.stub.CountMessageEvents(
            spb.CountMessageEventsRequest(query=query(*parts)), metadata=server.metadata()
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = error_details(caught.value)
    assert [f for f, _ in violations] == ["query.conditions"]
    response = await server.stub.CountMessageEvents(
        spb.CountMessageEventsRequest(query=query(*parts[:8])), metadata=server.metadata()
    )
    assert response.total == 0
