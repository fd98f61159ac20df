"""mailevents client: generated gRPC stubs (`mailevents.v1`), a typed async client and the CLI.

`mailevents.query` is the query-building module (`query.query`, `query.where`);
its `query` function is deliberately not re-exported here, where it would
shadow the module of the same name.
"""

from mailevents._retry import RetryNotice, RetryPolicy
from mailevents.client import MailEventsClient
from mailevents.errors import MailEventsError
from mailevents.query import parse_duration, parse_time, parse_where, where

__version__ = "0.1.0"

__all__ = [
    "MailEventsClient",
    "MailEventsError",
    "RetryNotice",
    "RetryPolicy",
    "__version__",
    "parse_duration",
    "parse_time",
    "parse_where",
    "where",
]
