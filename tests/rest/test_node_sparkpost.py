"""SparkPost's own Node client (npm `sparkpost` 2.1.4) against the shim.

Runs when the package is installed: in `$MAILEVENTS_NODE_MODULES` or in
`.tools/node_modules` (see the report's proposed `scripts/node-sparkpost.sh`);
skipped otherwise, since no test may reach a registry.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from .restshim_events import event

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def node_modules() -> Path | None:
    for candidate in (os.environ.get("MAILEVENTS_NODE_MODULES"), REPO / ".tools" / "node_modules"):
        if candidate and (Path(candidate) / "sparkpost" / "package.json").is_file():
            return Path(candidate)
    return None


pytestmark = pytest.mark.skipif(
    node_modules() is None or shutil.which("node") is None,
    reason="npm package sparkpost@2.1.4 is not installed",
)


async def test_node_sparkpost_client_pages_and_errors(shim: Any) -> None:
    await shim.server.ingest(
        [event("bounce", f"2024-05-01T10:0{i}:00", event_id=f"b{i}") for i in range(3)]
        + [event("delay", f"2024-05-01T11:0{i}:00", event_id=f"d{i}") for i in range(2)]
        + [event("delivery", "2024-05-01T12:00:00", event_id="v0")]
    )
    modules = node_modules()
    assert modules is not None
    process = await asyncio.create_subprocess_exec(
        "node",
        str(HERE / "node_sparkpost_driver.js"),
        shim.base,
        shim.server.api_key,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    seen = json.loads(stdout)
    assert seen["pages"] == [
        {"ids": ["d1", "d0"], "total": 5, "rels": ["next", "last"]},
        {"ids": ["b2", "b1"], "total": 5, "rels": ["first", "previous", "next", "last"]},
        {"ids": ["b0"], "total": 5, "rels": ["first", "previous"]},
    ]
    assert seen["cursor"] == ["v0", "d1", "d0", "b2", "b1", "b0"]
    assert seen["error"]["statusCode"] == 400
    assert seen["error"]["errors"][0]["code"] == "1200"
    assert seen["unauthorized"]["statusCode"] == 401
