"""SQLite schema migrations, applied in order; PRAGMA user_version records how many ran.

Migrations are history: never edit one that has shipped, append a new one.
The planner's statistics (ANALYZE) are kept complete by the store at open:
statistics missing for one index mislead SQLite more than none at all.
Indexes follow the query shapes: tenant first (every query is filtered by
tenant before anything else), then the filtered column, then time, with the
rowid (= id) implicitly last so keyset order (ts, id) comes straight from the
index.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: tenants, keys, events
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE tenants (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_us INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        key_hash TEXT PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        label TEXT NOT NULL DEFAULT '',
        created_us INTEGER NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        type INTEGER NOT NULL,
        type_name TEXT NOT NULL,
        event_category TEXT,
        ts INTEGER NOT NULL,
        send_time INTEGER,
        message_id TEXT,
        transmission_id TEXT,
        campaign_id TEXT,
        template_id TEXT,
        template_version TEXT,
        customer_id TEXT,
        subaccount_id TEXT,
        bulk_email_id INTEGER,
        send_email_id INTEGER,
        contact_id INTEGER,
        recipient TEXT,
        recipient_domain TEXT,
        raw_recipient TEXT,
        sender TEXT,
        friendly_from TEXT,
        mail_from TEXT,
        routing_domain TEXT,
        ip_address TEXT,
        remote_addr TEXT,
        sending_ip TEXT,
        ip_pool TEXT,
        relay_id TEXT,
        tags TEXT,
        msg_size INTEGER,
        num_retries INTEGER,
        queue_time INTEGER,
        delivery_method TEXT,
        bounce_class INTEGER,
        error_code TEXT,
        reason TEXT,
        fbtype TEXT,
        report_by TEXT,
        report_to TEXT,
        target_link_name TEXT,
        target_link_url TEXT,
        user_agent TEXT,
        archived INTEGER NOT NULL DEFAULT 0,
        data BLOB NOT NULL
    );
    CREATE UNIQUE INDEX events_event_id ON events(tenant_id, event_id);
    CREATE INDEX events_tenant ON events(tenant_id);
    CREATE INDEX events_ts ON events(tenant_id, ts);
    CREATE INDEX events_type_ts ON events(tenant_id, type, ts);
    CREATE INDEX events_campaign_ts ON events(tenant_id, campaign_id, ts);
    CREATE INDEX events_template_ts ON events(tenant_id, template_id, ts);
    CREATE INDEX events_recipient_ts ON events(tenant_id, recipient, ts);
    CREATE INDEX events_message_ts ON events(tenant_id, message_id, ts);
    CREATE INDEX events_transmission_ts ON events(tenant_id, transmission_id, ts);
    CREATE INDEX events_bulk_email ON events(tenant_id, bulk_email_id);
    CREATE INDEX events_send_email ON events(tenant_id, send_email_id);
    """,
    # 2: the provider's type name (Tastypie's `event_name`), in id order like
    # the other per-mailing lookups: without it, such a filter read every event
    # of the tenant (~230 ms a request on 1M events). Statistics from before
    # it are incomplete; the store refreshes them after migrating
    # (sqlite_statistics.refresh_statistics).
    """
    CREATE INDEX events_type_name ON events(tenant_id, type_name);
    """,
)
