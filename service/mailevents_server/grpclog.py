"""grpc.aio's log lines about clients that went away, as warnings without a traceback.

When a call's deadline passes (or its client cancels) while the server is
writing a response, the write fails in gRPC's core. grpc.aio notices the
client has gone only when its cancellation callback has run; when the failed
write is noticed first, it logs `ExecuteBatchError raised in core by servicer
method [...]` with `logger.exception`: an ERROR and a traceback for what is a
client leaving. The handlers already stop writing once the deadline has
passed (see `auth`), which makes this rare; `quiet_gone_clients` turns what
remains of the race into one WARNING line.
"""

from __future__ import annotations

import logging

_GRPC_LOGGER = "grpc._cython.cygrpc"
_PREFIX = "ExecuteBatchError raised in core by servicer method"


class _GoneClient(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(_PREFIX):
            record.msg = f"{record.getMessage()}: the client had gone (deadline or cancellation)"
            record.args = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


_FILTER = _GoneClient()


def quiet_gone_clients() -> None:
    """Install the filter on grpc.aio's logger (once; calling again changes nothing)."""
    logging.getLogger(_GRPC_LOGGER).addFilter(_FILTER)
