"""A live consumer for the process tests: `python live_consumer.py ADDRESS KEY OUT [TOKEN]`.

Watches every event of the key's tenant and appends one line per message to
OUT, `{"token": ..., "ids": [...]}`, in a single write: a consumer killed at
any moment leaves whole lines, and the last line's token is exactly where it
had got to.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mailevents.client import MailEventsClient


async def main(address: str, key: str, out: str, token: str) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    async with MailEventsClient(address, key) as client:
        async for message in client.watch_batches(resume_token=token, heartbeat_interval=0.5):
            line = {"token": message.resume_token, "ids": [e.event_id for e in message.events]}
            os.write(fd, (json.dumps(line) + "\n").encode())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4], sys.argv[4] if len(sys.argv) > 4 else ""))
