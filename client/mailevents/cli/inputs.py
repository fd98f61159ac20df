"""`mailevents ingest`'s input and summary; the import itself is `bulk`.

One bad line must not stop an import of millions, and must not vanish
either: every line that cannot be stored is written to a rejects file (named
here) with its line number and reason, ready to be fixed and fed back.
"""

from __future__ import annotations

import gzip
import io
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class IngestSummary:
    """What became of the input's events."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0

    def __str__(self) -> str:
        return f"{self.stored} stored, {self.duplicates} duplicates, {self.rejected} rejected"


def default_rejects_path(source: str) -> Path:
    """FILE.rejected.jsonl next to the input; stdin.rejected.jsonl for `-`."""
    return Path("stdin.rejected.jsonl" if source == "-" else f"{source}.rejected.jsonl")


def open_input(source: str, stack: ExitStack) -> io.BufferedIOBase:
    """The input as bytes, gunzipped when it starts like gzip (whatever its name)."""
    raw = sys.stdin.buffer if source == "-" else stack.enter_context(open(source, "rb"))
    # peek() looks at the first bytes without consuming them, even on a pipe.
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        unzipped = gzip.GzipFile(fileobj=buffered, mode="rb")
        stack.callback(unzipped.close)
        return unzipped
    return buffered
