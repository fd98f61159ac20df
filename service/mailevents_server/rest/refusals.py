"""aiohttp's own refusals, logged as what they are: one WARNING line each.

Before a request reaches a handler, aiohttp's parser refuses what is not
HTTP it accepts (a URL over 8 KiB, a NUL in the URL, a bad chunk size, too
many headers, a `Content-Encoding` it cannot decode) and answers 400 itself.
It logs each through the server's logger with `logger.exception`, an ERROR
line with a traceback, as if the server had failed. `RefusalLogger` is the
logger the shim's server is given instead: a refusal (an
`HttpProcessingError`) becomes one WARNING line naming the client and the
reason; anything else is still logged as the error it is.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = logging.getLogger("aiohttp.server")


class RefusalLogger(logging.LoggerAdapter[logging.Logger]):
    """`aiohttp.server`, with refused requests logged as one line."""

    def __init__(self, logger: logging.Logger = SERVER_LOGGER) -> None:
        super().__init__(logger, {})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            reason = " ".join(str(exc_info.message or exc_info).split())
            self.warning(f"{msg}: %s %s", *args, exc_info.code, _clip(reason), **kwargs)
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


def _clip(text: str, limit: int = 300) -> str:
    """aiohttp quotes the offending bytes (up to 8 KiB of URL): keep the line short."""
    return text if len(text) <= limit else text[:limit] + "…"
