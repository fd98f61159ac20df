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
#: Live-stream positions (watch, search with follow): a commit position, not a keyset.
_LIVE_VERSION = 2
_LIVE_LAYOUT = struct.Struct(">BQ8sq")  # version, tenant, fingerprint, position
_MAC_BYTES = 16


@dataclass(frozen=True)
class Cursor:
    """Where a paged or streamed read continues."""

    tenant_id: int
    fingerprint: bytes
    ts_us: int
    id: int
    max_id: int


@dataclass(frozen=True)
class LivePosition:
    """Where a live stream continues: right after this commit position (an event id)."""

    tenant_id: int
    fingerprint: bytes
    position: int


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
        return self._seal(payload)

    def encode_live(self, live: LivePosition) -> str:
        payload = _LIVE_LAYOUT.pack(_LIVE_VERSION, live.tenant_id, live.fingerprint, live.position)
        return self._seal(payload)

    def decode(self, token: str, field: str, tenant_id: int, expected: bytes) -> Cursor:
        """The cursor in `token`, or InvalidArgument naming `field`."""
        decoded = self.decode_stream(token, field, tenant_id, expected)
        if not isinstance(decoded, Cursor):
            raise _bad(field)
        return decoded

    def decode_stream(
        self, token: str, field: str, tenant_id: int, expected: bytes
    ) -> Cursor | LivePosition:
        """A keyset cursor or a live position: what a following search or a watch resumes from."""
        payload = self._open(token, field)
        decoded: Cursor | LivePosition
        if len(payload) == _LAYOUT.size:
            version, tenant, fp, ts_us, event_id, max_id = _LAYOUT.unpack(payload)
            decoded, expected_version = Cursor(tenant, fp, ts_us, event_id, max_id), _VERSION
        else:
            version, tenant, fp, position = _LIVE_LAYOUT.unpack(payload)
            decoded, expected_version = LivePosition(tenant, fp, position), _LIVE_VERSION
        # Another tenant's token reads as garbage: it must not reveal that it is valid.
        if version != expected_version or tenant != tenant_id:
            raise _bad(field)
        if fp != expected:
            raise invalid(
                field,
                "this token was issued for a different query; repeat the query of the first call",
                "TOKEN_QUERY_MISMATCH",
            )
        return decoded

    def _seal(self, payload: bytes) -> str:
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    def _open(self, token: str, field: str) -> bytes:
        """The signed payload of a well-formed token of either layout."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise _bad(field) from None
        if len(raw) - _MAC_BYTES not in (_LAYOUT.size, _LIVE_LAYOUT.size):
            raise _bad(field)
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        good = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, good):
            raise _bad(field)
        return payload


def _bad(field: str) -> InvalidArgument:
    return invalid(field, "not a valid token for this tenant", "INVALID_TOKEN")
