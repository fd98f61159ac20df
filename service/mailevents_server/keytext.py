"""What an API key may look like before it is sent anywhere or looked up.

A key travels as gRPC metadata (`authorization: Bearer <key>`), whose values
are printable ASCII only: anything else makes the channel refuse the call
before it leaves the process. Keys we issue are 47 URL-safe characters, so a
key that is not printable ASCII, or is far longer than any key, cannot be
valid; every door (the dialects, the webhooks, the key resolver) refuses it as
that door's own 401 instead of failing on it.
"""

from __future__ import annotations

#: Far above the 47 characters of the keys we issue, far below gRPC's 8 KiB metadata limit.
MAX_KEY_CHARS = 512


def usable_key(key: str) -> bool:
    """Whether `key` can be a key at all: 1 to MAX_KEY_CHARS printable ASCII characters."""
    return 0 < len(key) <= MAX_KEY_CHARS and key.isascii() and key.isprintable()
