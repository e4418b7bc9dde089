"""What other nodes hold, as last learned: the destination clocks of `bundle export --for-peer`.

A stick records the clock of every node it syncs with (the acknowledgement, docs/bundle-format.md);
syncing with it teaches us those clocks too. A clock only ever replaces an older one of the same
node. Kept in the store's `peer_clocks` table (schema migration 5) through a connection of its
own, in one transaction per update, as the peer table does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

from ssbsync.core.clock import VectorClock
from ssbsync.core.refs import FeedId


def _connect(database: Path) -> sqlite3.Connection:
    db = sqlite3.connect(database, timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 30000")
    return db


def remember(
    database: Path, clocks: Mapping[FeedId, tuple[Mapping[FeedId, int], int]], source: str
) -> None:
    """Store each node's (clock, learned ms) unless we already know a newer one."""
    if not clocks:
        return
    with closing(_connect(database)) as db:
        db.execute("BEGIN IMMEDIATE")
        for peer, (clock, learned) in clocks.items():
            db.execute(
                "INSERT INTO peer_clocks VALUES (?, ?, ?, ?) ON CONFLICT(peer) DO UPDATE SET"
                " clock = excluded.clock, learned = excluded.learned, source = excluded.source"
                " WHERE excluded.learned > peer_clocks.learned",
                (peer, json.dumps(dict(clock)), learned, source),
            )
        db.execute("COMMIT")


def known(database: Path, peer: FeedId) -> tuple[VectorClock, int] | None:
    """(the clock we last learned for `peer`, when it was its own) or None. Read-only: a
    store that was never opened (or not since migration 5) knows no clocks."""
    if not database.exists():
        return None
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=30)) as db:
        try:
            row = db.execute(
                "SELECT clock, learned FROM peer_clocks WHERE peer = ?", (peer,)
            ).fetchone()
        except sqlite3.OperationalError:  # no such table: never migrated that far
            return None
    return None if row is None else (VectorClock.from_json(json.loads(row[0])), int(row[1]))
