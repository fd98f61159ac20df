"""Log output of the serving commands: today's text lines, or one JSON object a line.

`--log-format json` writes each record as one JSON object: `time` (UTC,
RFC 3339), `level`, `logger`, `message`, and where the record has them
`method` (gRPC) or `route` and `dialect` (REST), `status`, `duration_ms`,
`trace_id` (when tracing is on) and `exception` (a traceback). Log
collectors parse it without patterns.

The access log is the `mailevents.access` logger: one INFO line per call.
Nothing logged carries an API key: calls are logged by method or route (the
path pattern, never the query string, where two dialects carry keys), and
metadata and headers are never logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from mailevents_server import tracing

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Record attributes that JSON lines carry when a record has them.
_FIELDS = ("method", "route", "dialect", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        trace_id = getattr(record, "trace_id", None) or tracing.current_trace_id()
        if trace_id:
            out["trace_id"] = trace_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return orjson.dumps(out, default=str).decode()


def _rfc3339(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def configure(level: str, fmt: str = "text") -> None:
    """Root logging for a serving process: `level` (debug, info, ...) in `fmt`."""
    if fmt not in FORMATS:
        raise SystemExit(f"error: --log-format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
