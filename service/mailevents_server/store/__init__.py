"""Stores behind one interface; `open_store` picks one from a database URL."""

from __future__ import annotations

from mailevents_server.store.base import Store


def open_store(url: str, **options: object) -> Store:
    """A store for `url`: postgresql://... for PostgreSQL, anything else is a SQLite path."""
    if url.startswith(("postgresql://", "postgres://")):
        from mailevents_server.store.postgres import PostgresStore

        return PostgresStore(url, **options)  # type: ignore[arg-type]
    from mailevents_server.store.sqlite import SQLiteStore

    return SQLiteStore(url, **options)  # type: ignore[arg-type]
