"""PostgreSQL for tests: a fresh database per test on the server named by
MAILEVENTS_TEST_POSTGRES_URL (scripts/postgres.sh starts one; `make test` does
that). Without the variable, PostgreSQL tests skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

URL = os.environ.get("MAILEVENTS_TEST_POSTGRES_URL", "")
SKIP_REASON = (
    "MAILEVENTS_TEST_POSTGRES_URL is unset: no PostgreSQL to test against "
    "(`bash scripts/postgres.sh start` prints a URL; `make test` sets it)"
)

#: Marks a test that needs PostgreSQL: skipped with a reason when there is none.
requires_postgres = [pytest.mark.postgres, pytest.mark.skipif(not URL, reason=SKIP_REASON)]


def database_url(name: str) -> str:
    """The server's URL with another database name."""
    parts = urlsplit(URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    if not URL:
        pytest.skip(SKIP_REASON)
    name = f"mev_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(URL)
    try:
        # FILE_COPY: copying the small template beats WAL-logging it (PG 15+).
        strategy = " STRATEGY = FILE_COPY" if admin.get_server_version().major >= 15 else ""
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0{strategy}")
        try:
            yield database_url(name)
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
