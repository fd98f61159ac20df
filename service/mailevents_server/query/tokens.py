"""Opaque, signed keyset cursors: page tokens and stream resume tokens.

A token carries the position after which to continue (timestamp, id), the
snapshot bound, the tenant and a fingerprint of the query it was issued for,
signed with the store's secret. So a token cannot be forged or edited, is
useless to another tenant, and is refused with a clear error when replayed
against a different query (AIP-158). The secret lives in the database, so
tokens survive restarts and work on every replica sharing the store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

from google.protobuf.message import Message

from mailevents_server.errors import InvalidArgument, invalid

_VERSION = 1
_LAYOUT = struct.Struct(">BQ8sqqq")  # version, tenant, fingerprint, ts_us, id, max_id
_MAC_BYTES = 16


@dataclass(frozen=True)
class Cursor:
    """Where a paged or streamed read continues."""

    tenant_id: int
    fingerprint: bytes
    ts_us: int
    id: int
    max_id: int


def fingerprint(query: Message) -> bytes:
    """A short digest of the request's query, to bind tokens to it."""
    return hashlib.sha256(query.SerializeToString(deterministic=True)).digest()[:8]


class TokenCodec:
    """Signs and checks cursors with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def encode(self, cursor: Cursor) -> str:
        payload = _LAYOUT.pack(
            _VERSION, cursor.tenant_id, cursor.fingerprint, cursor.ts_us, cursor.id, cursor.max_id
        )
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    def decode(self, token: str, field: str, tenant_id: int, expected: bytes) -> Cursor:
        """The cursor in `token`, or InvalidArgument naming `field`."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise _bad(field) from None
        if len(raw) != _LAYOUT.size + _MAC_BYTES:
            raise _bad(field)
        payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        good = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, good):
            raise _bad(field)
        version, tenant, fp, ts_us, event_id, max_id = _LAYOUT.unpack(payload)
        # Another tenant's token reads as garbage: it must not reveal that it is valid.
        if version != _VERSION or tenant != tenant_id:
            raise _bad(field)
        if fp != expected:
            raise invalid(
                field,
                "this token was issued for a different query; repeat the query of the first call",
                "TOKEN_QUERY_MISMATCH",
            )
        return Cursor(tenant, fp, ts_us, event_id, max_id)


def _bad(field: str) -> InvalidArgument:
    return invalid(field, "not a valid token for this tenant", "INVALID_TOKEN")
