"""The Citus layout, made by the service itself on a database with the extension.

Every query filters on `tenant_id` first, and every commit touches one
tenant: so everything a tenant owns is distributed by `tenant_id` and
co-located (its events, dedup keys, commit position and retention floor sit
on one worker, and a commit is a single-shard transaction on it), and the
small tables every request reads, whatever its tenant (API keys, tenants,
the token secret, the schema version), are reference tables, copied to
every node.

The layout is made after the migrations, under the same advisory lock, on
every start, and is idempotent: a table already laid out is left alone. On
a database that held data before Citus was added, `create_distributed_table`
copies each table's rows into its shards (writes to that table wait
meanwhile), then the coordinator's local copy is emptied. docs/deploy.md
says when to expect that.
"""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger(__name__)

#: Small tables read by every request, whatever its tenant; order matters
#: (api_keys refers to tenants).
REFERENCE_TABLES = ("mev_schema", "meta", "tenants", "api_keys")
#: Tables of per-tenant rows, co-located with the first.
DISTRIBUTED_TABLES = ("tenant_positions", "event_keys", "events", "retention_floors")
DISTRIBUTION_COLUMN = "tenant_id"


async def has_citus(conn: asyncpg.Connection) -> bool:
    """Whether the database has the citus extension (so: is a Citus coordinator)."""
    return bool(await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'citus'"))


async def layout(conn: asyncpg.Connection) -> dict[str, str]:
    """How each of our tables is laid out now: 'reference', 'distributed' or 'local'."""
    found: dict[str, str] = {}
    for table in (*REFERENCE_TABLES, *DISTRIBUTED_TABLES):
        method = await conn.fetchval(
            "SELECT partmethod::text FROM pg_dist_partition WHERE logicalrelid = to_regclass($1)",
            table,
        )
        found[table] = {"h": "distributed", "n": "reference"}.get(str(method), "local")
    return found


async def make_layout(conn: asyncpg.Connection) -> None:
    """Turn every table that is still local into its reference or distributed table."""
    now = await layout(conn)
    for table in REFERENCE_TABLES:
        if now[table] == "local":
            log.info("Citus: making %s a reference table", table)
            had_rows = await _has_rows(conn, table)
            await conn.execute("SELECT create_reference_table($1)", table)
            if had_rows:
                await _drop_local_copy(conn, table)
    anchor = DISTRIBUTED_TABLES[0]
    for table in DISTRIBUTED_TABLES:
        if now[table] == "local":
            log.info("Citus: distributing %s by %s", table, DISTRIBUTION_COLUMN)
            had_rows = await _has_rows(conn, table)
            await conn.execute(
                "SELECT create_distributed_table($1, $2, colocate_with => $3)",
                table,
                DISTRIBUTION_COLUMN,
                "default" if table == anchor else anchor,
            )
            if had_rows:
                await _drop_local_copy(conn, table)


async def _has_rows(conn: asyncpg.Connection, table: str) -> bool:
    # The names are ours (the constants above), never input.
    return bool(await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"))


async def _drop_local_copy(conn: asyncpg.Connection, table: str) -> None:
    """Rows a table held before it was distributed stay on the coordinator, hidden,
    until removed: remove them (they are in the shards now)."""
    await conn.execute("SELECT truncate_local_data_after_distributing_table($1)", table)
