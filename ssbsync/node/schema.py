"""The store's schema as numbered migrations (applied in order, tracked by PRAGMA user_version).

Never edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: feeds, messages in receive order, and the indexes of the ssb-db query set.
    """
    CREATE TABLE feeds (
        id INTEGER PRIMARY KEY,
        author TEXT NOT NULL UNIQUE,
        sequence INTEGER NOT NULL,         -- latest stored sequence
        latest_key TEXT NOT NULL,          -- id of that message
        latest_timestamp TEXT NOT NULL     -- its claimed timestamp, as JSON (any JSON value)
    );
    CREATE TABLE messages (
        -- The local receive time in microseconds, strictly increasing: so rowid order is
        -- receive order and receive-time ranges are rowid ranges, with no extra index.
        rowid INTEGER PRIMARY KEY,
        key_hash INTEGER NOT NULL,         -- the id's first 8 bytes: a small, fast index
        key TEXT NOT NULL,
        feed INTEGER NOT NULL REFERENCES feeds(id),
        sequence INTEGER NOT NULL,
        feed_time REAL NOT NULL,           -- ssb-db's feed order: the claimed timestamp,
                                           -- or the receive time when that is later/absent
        type TEXT,                         -- content.type of plain-text content
        value TEXT NOT NULL                -- JSON.stringify(value): the wire form, served as is
    );
    CREATE UNIQUE INDEX messages_by_feed ON messages(feed, sequence);
    CREATE INDEX messages_by_key ON messages(key_hash);
    CREATE INDEX messages_by_feed_time ON messages(feed_time);
    CREATE INDEX messages_by_type ON messages(type);
    CREATE TABLE links (
        message INTEGER NOT NULL REFERENCES messages(rowid),
        dest_hash INTEGER NOT NULL,        -- dest's first 8 bytes, as for messages.key_hash
        rel TEXT NOT NULL,
        dest TEXT NOT NULL
    );
    CREATE INDEX links_by_dest ON links(dest_hash);
    """,
)
