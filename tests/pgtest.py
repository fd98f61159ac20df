"""PostgreSQL and Citus for tests.

PostgreSQL: a fresh database per test on the server named by
MAILEVENTS_TEST_POSTGRES_URL (scripts/postgres.sh starts one). Citus: a fresh
schema per test on the coordinator named by MAILEVENTS_TEST_CITUS_URL
(scripts/citus.sh starts a coordinator and two workers); a schema, because a
new Citus database would need the extension and the workers registered
again, on every node. `make test` sets both. Without a variable, its tests
skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

URL = os.environ.get("MAILEVENTS_TEST_POSTGRES_URL", "")
CITUS_URL = os.environ.get("MAILEVENTS_TEST_CITUS_URL", "")
SKIP_REASON = (
    "MAILEVENTS_TEST_POSTGRES_URL is unset: no PostgreSQL to test against "
    "(`bash scripts/postgres.sh start` prints a URL; `make test` sets it)"
)
CITUS_SKIP_REASON = (
    "MAILEVENTS_TEST_CITUS_URL is unset: no Citus cluster to test against "
    "(`bash scripts/citus.sh start` prints a URL; `make test` sets it)"
)

#: Marks a test that needs PostgreSQL: skipped with a reason when there is none.
requires_postgres = [pytest.mark.postgres, pytest.mark.skipif(not URL, reason=SKIP_REASON)]
#: Marks a test that needs a Citus cluster.
requires_citus = [pytest.mark.citus, pytest.mark.skipif(not CITUS_URL, reason=CITUS_SKIP_REASON)]

#: The backends a store test runs against, as pytest params.
SERVER_BACKENDS = [
    pytest.param("postgres", marks=requires_postgres),
    pytest.param("citus", marks=requires_citus),
]


def database_url(name: str) -> str:
    """The server's URL with another database name."""
    parts = urlsplit(URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


@asynccontextmanager
async def fresh_database(backend: str = "postgres") -> AsyncIterator[str]:
    """A new, empty database for one test (a schema on Citus), dropped afterwards."""
    if backend == "citus":
        async with fresh_citus_schema() as url:
            yield url
        return
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


@asynccontextmanager
async def fresh_citus_schema() -> AsyncIterator[str]:
    """A new schema on the Citus coordinator, and a URL whose search_path is it."""
    if not CITUS_URL:
        pytest.skip(CITUS_SKIP_REASON)
    name = f"mev_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(CITUS_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {name}")
        try:
            parts = urlsplit(CITUS_URL)
            yield urlunsplit(parts._replace(query=urlencode({"search_path": name})))
        finally:
            await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await admin.close()
