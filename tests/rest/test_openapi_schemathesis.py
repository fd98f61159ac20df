"""Schemathesis against the shim's own `/openapi.json`, served by a real
`mailevents serve`: every documented operation, with generated valid and invalid
parameters and bodies. No answer is a 5xx, every status a route gives is one
the document lists (so the document and the routes cannot drift apart), and
the server's log has no ERROR line or traceback.

The example budget is the hypothesis profile's (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from live_support import MAILEVENTS, create_keys, free_port
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from mailevents_server.rest import openapi


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """A real `mailevents serve` with its HTTP shim: (base URL, API key, log file)."""
    directory = tmp_path_factory.mktemp("schemathesis")
    database = str(directory / "events.db")
    (key,) = asyncio.run(create_keys(database, "acme"))
    http_port = free_port()
    log_path = directory / "serve.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                str(MAILEVENTS),
                "serve",
                "--database",
                database,
                "--grpc-address",
                f"127.0.0.1:{free_port()}",
                "--http-address",
                f"127.0.0.1:{http_port}",
                "--workers",
                "1",
                "--log-level",
                "info",
            ],
            stdout=log,
            stderr=log,
        )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                requests.get(base + "/openapi.json", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base, key, log_path
    finally:
        process.terminate()
        process.wait(20)


#: The document the shim serves is built by this function; the first test
#: checks that what is served is exactly it.
schema = schemathesis.openapi.from_dict(openapi.document())


def test_the_served_document_is_the_one_tested(served: tuple[str, str, Path]) -> None:
    base, _, _ = served
    assert requests.get(base + openapi.PATH, timeout=10).json() == openapi.document()


def with_key(case: Any, key: str) -> None:
    """Credentials where each dialect reads them, unless the case generated its own."""
    path = case.operation.path
    if path.startswith("/api/messageevent/"):
        case.query = {"username": "u", "api_key": key, **(case.query or {})}
    elif path.startswith("/v1/message/"):
        case.query = {"access_token": key, **(case.query or {})}
    else:
        prefix = "" if path.startswith("/api/v1/") else "Bearer "
        case.headers = {"Authorization": prefix + key, **(case.headers or {})}


@schema.parametrize()
def test_the_openapi_document_and_the_routes_agree(
    case: Any, served: tuple[str, str, Path]
) -> None:
    base, key, log = served
    with_key(case, key)
    case.call_and_validate(
        base_url=base, checks=[not_a_server_error, status_code_conformance], timeout=60
    )
    text = log.read_text(errors="replace")
    assert " ERROR " not in text and "Traceback" not in text, text[-3000:]
