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
    # invites this node created as a pub (PROTOCOL.md §10; ssbsync.node.invites).
    """
    CREATE TABLE invites (
        id TEXT PRIMARY KEY,               -- the invite key pair's id (@…=.ed25519)
        total INTEGER NOT NULL,            -- how many guests may use it
        used INTEGER NOT NULL DEFAULT 0,
        note TEXT,                         -- copied into the contact message it publishes
        created INTEGER NOT NULL           -- ms since the epoch
    );
    """,
    # the peer table of the connection scheduler (PROTOCOL.md §14; ssbsync.node.peertable).
    """
    CREATE TABLE peers (
        address TEXT PRIMARY KEY,          -- canonical multiserver address (net:H:P~shs:K)
        key TEXT NOT NULL,                 -- the peer's feed id
        source TEXT NOT NULL,              -- seed, manual, invite, pub, ...
        announcers INTEGER NOT NULL,
        failures INTEGER NOT NULL,         -- consecutive failed attempts
        state_change REAL,                 -- seconds since the epoch, as the times below
        last_attempt REAL,
        last_success REAL,
        next_attempt REAL NOT NULL,
        sessions INTEGER NOT NULL,
        connected_seconds REAL NOT NULL
    );
    """,
    # private messages we could open (node/private.py, PROTOCOL.md §9), and how far we tried.
    """
    CREATE TABLE private_messages (
        message INTEGER PRIMARY KEY REFERENCES messages(rowid),
        unbox_key TEXT NOT NULL,           -- base64 of [N] ‖ body key: ssb-db's meta.unbox
        type TEXT,                         -- content.type of the opened content
        content TEXT NOT NULL              -- the opened content, JSON.stringify form
    );
    CREATE INDEX private_messages_by_type ON private_messages(type);
    CREATE TABLE private_progress (
        tried_up_to INTEGER NOT NULL       -- every message with a rowid up to this was tried
    );
    INSERT INTO private_progress VALUES (0);
    """,
    # 5: the clocks other nodes had when we last learned them (a stick's record of the places
    # it visited), for `bundle export --for-peer` (ssbsync.node.peerclocks).
    """
    CREATE TABLE peer_clocks (
        peer TEXT PRIMARY KEY,             -- the node's feed id
        clock TEXT NOT NULL,               -- its vector clock, JSON {feed: sequence}
        learned INTEGER NOT NULL,          -- ms since the epoch, when that clock was its own
        source TEXT NOT NULL               -- where we learned it: stick, ...
    );
    """,
    # 6: bytes held per feed, for browsing (ssbsync.node.browse): kept by a trigger inside the
    # append transaction, so it is never out of step; counted once here for what is stored.
    """
    CREATE TABLE feed_bytes (
        feed INTEGER PRIMARY KEY REFERENCES feeds(id),
        bytes INTEGER NOT NULL             -- sum of the stored values' UTF-8 lengths
    );
    INSERT INTO feed_bytes SELECT feed, sum(length(CAST(value AS BLOB))) FROM messages
        GROUP BY feed;
    CREATE TRIGGER feed_bytes_on_append AFTER INSERT ON messages BEGIN
        INSERT INTO feed_bytes VALUES (NEW.feed, length(CAST(NEW.value AS BLOB)))
            ON CONFLICT (feed) DO UPDATE SET bytes = bytes + excluded.bytes;
    END;
    """,
)
