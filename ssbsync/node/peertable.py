"""The peer table: every peer address the node knows, with how dialling it has gone
(PROTOCOL.md §14; ssb-gossip 1.1.1 keeps the same in `gossip.json`).

The table lives in memory — the scheduler reads it every second and changes it from the event
loop — and in the store's `peers` table (schema migration), written in one transaction per
flush from a worker thread. It has its own SQLite connection: the store's writer connection
belongs to the ingest thread, whose open transaction a write of ours would join (and could
be rolled back with). SQLite's lock orders the two writers; WAL keeps readers unblocked.

A crash loses at most the changes since the last flush (a second's worth of counters), never
the table: each flush is one transaction. Entries found on the LAN (source 'local') are not
written, as ssb-gossip does not: they are rediscovered, and stale ones would mislead.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from ssbsync.core.address import AddressError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId
from ssbsync.core.schedule import PeerRecord, announced, parse_peer_address

log = logging.getLogger("ssbsync.gossip")

_COLUMNS = (
    "address", "key", "source", "announcers", "failures", "state_change", "last_attempt",
    "last_success", "next_attempt", "sessions", "connected_seconds",
)  # fmt: skip
_UPSERT = (
    f"INSERT OR REPLACE INTO peers ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_COLUMNS))})"
)
MAX_PEERS = 10_000  # entries kept; announcements beyond are ignored (pub spam)
NOT_STORED = frozenset({"local"})


class PeerTable:
    """Known peers by address. Use from one thread (the event loop), except `write`."""

    def __init__(self, database: Path, me: FeedId) -> None:
        self.me = me
        self._db = sqlite3.connect(
            database, isolation_level=None, timeout=30, check_same_thread=False
        )
        self._write_lock = threading.Lock()
        try:
            self._db.execute("PRAGMA busy_timeout = 30000")
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM peers").fetchall()
        except sqlite3.DatabaseError:
            self._db.close()
            raise
        self._peers: dict[str, PeerRecord] = {}
        for row in rows:
            record = PeerRecord(*row)
            try:
                parse_peer_address(record.address)
            except AddressError:
                log.warning("peer table: ignoring the unusable address %r", record.address)
                continue
            self._peers[record.address] = record
        self._dirty: set[str] = set()

    def close(self) -> None:
        with self._write_lock:
            self._db.close()

    # -- reading ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[PeerRecord]:
        return iter(list(self._peers.values()))

    def __len__(self) -> int:
        return len(self._peers)

    def get(self, address: str) -> PeerRecord | None:
        return self._peers.get(address)

    def with_key(self, key: FeedId) -> list[PeerRecord]:
        return [p for p in self._peers.values() if p.key == key]

    def find(self, what: object) -> list[PeerRecord]:
        """Entries named by an address (any accepted form) or a feed id."""
        if isinstance(what, str) and what.startswith("@") and "~" not in what:
            found = self.with_key(FeedId(what))
            if found:
                return found
        try:
            address = str(parse_peer_address(what))
        except AddressError:
            return []
        record = self._peers.get(address)
        return [] if record is None else [record]

    # -- changing --------------------------------------------------------------------------

    def add(self, what: object, source: str, now: float) -> tuple[PeerRecord | None, bool]:
        """Add (or re-announce) an address; (entry, is new). (None, False) for our own
        address or when the table is full. AddressError if `what` is not a peer address."""
        address = parse_peer_address(what)
        if address.feed == self.me:
            return None, False  # ssb-gossip: "not pointing at self"
        old = self._peers.get(str(address))
        if old is not None:
            return self.put(announced(old, source, now)), False
        if len(self._peers) >= MAX_PEERS:
            log.warning("the peer table is full (%d entries): %s not added", MAX_PEERS, address)
            return None, False
        return self.put(PeerRecord.new(address, source)), True

    def put(self, record: PeerRecord) -> PeerRecord:
        if self._peers.get(record.address) != record:
            self._peers[record.address] = record
            self._dirty.add(record.address)
        return record

    def remove(self, record: PeerRecord) -> None:
        if self._peers.pop(record.address, None) is not None:
            self._dirty.add(record.address)

    # -- persisting ------------------------------------------------------------------------

    def changes(self) -> tuple[list[PeerRecord], list[str]]:
        """What changed since the last call: (rows to write, addresses to delete)."""
        upserts, deletes = [], []
        for address in self._dirty:
            record = self._peers.get(address)
            if record is None or record.source in NOT_STORED:
                deletes.append(address)
            else:
                upserts.append(record)
        self._dirty.clear()
        return upserts, deletes

    def requeue(self, upserts: list[PeerRecord], deletes: list[str]) -> None:
        """A write failed: these are still to be written."""
        self._dirty.update(r.address for r in upserts)
        self._dirty.update(deletes)

    def write(self, upserts: list[PeerRecord], deletes: list[str]) -> None:
        """Write changes in one transaction (may run in a worker thread)."""
        if not upserts and not deletes:
            return
        with self._write_lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_UPSERT, [dataclasses.astuple(r) for r in upserts])
                db.executemany("DELETE FROM peers WHERE address = ?", [(a,) for a in deletes])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def flush(self) -> None:
        """Write every pending change now (at shutdown, and in tests)."""
        upserts, deletes = self.changes()
        try:
            self.write(upserts, deletes)
        except sqlite3.Error:
            self.requeue(upserts, deletes)
            raise


def peer_json(record: PeerRecord, state: str | None, client: bool | None) -> JSONValue:
    """One entry in ssb-gossip's `gossip.peers` shape (times in ms since the epoch), plus
    `nextAttempt`: when the scheduler will next try it."""
    address = parse_peer_address(record.address)
    item: dict[str, JSONValue] = {
        "address": record.address,
        "key": record.key,
        "host": address.host,
        "port": address.port,
        "source": record.source,
        "announcers": record.announcers,
        "failure": record.failures,
        "nextAttempt": _ms(record.next_attempt),
    }
    if state is not None:
        item["state"] = state
    if record.state_change is not None:
        item["stateChange"] = _ms(record.state_change)
    if client is not None:
        item["client"] = client
    if record.sessions:
        total = record.connected_seconds * 1000
        item["duration"] = {"mean": round(total / record.sessions), "count": record.sessions}
    return item


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
