"""The SQLite store: messages, feed heads and the query indexes (ARCHITECTURE.md, "I/O code").

WAL mode: a crash or power cut at any point leaves the last committed state (SQLite's
journal guarantees it). Only one process
writes: a writer holds an exclusive lock file for as long as it has the store open, and only
the ingest path (`ssbsync.node.ingest`) calls `append`.
"""

from __future__ import annotations

import binascii
import fcntl
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ssbsync.core import jsonv8
from ssbsync.core.clock import VectorClock
from ssbsync.core.message import FeedState
from ssbsync.core.refs import FeedId, MsgId
from ssbsync.node.schema import MIGRATIONS


class StoreError(Exception):
    """The store cannot be opened or used; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    key: MsgId
    value_json: str  # JSON.stringify(value): exactly the bytes every peer is served
    received: float
    rts: float | None = None  # the feed-order time, for createFeedStream items

    def as_kvt(self) -> dict[str, jsonv8.JSONValue]:
        """`{key, value, timestamp}` as ssb-db streams it (timestamp = our receive time)."""
        item = {"key": self.key, "value": jsonv8.parse(self.value_json), "timestamp": self.received}
        if self.rts is not None:
            item["rts"] = self.rts
        return item

    def as_raw_kvt(self) -> jsonv8.RawJSON:
        """The same object as JSON text, built without parsing the stored message."""
        rts = "" if self.rts is None else ',"rts":' + jsonv8.format_number(self.rts)
        return jsonv8.RawJSON(
            '{"key":"' + self.key + '","value":' + self.value_json
            + ',"timestamp":' + jsonv8.format_number(self.received) + rts + "}"
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LinkRow:
    source: FeedId
    dest: str
    rel: str
    key: MsgId


class NewMessage(NamedTuple):
    """One message the ingest path has validated, with what the indexes need."""

    key: MsgId
    author: FeedId
    sequence: int
    timestamp: jsonv8.JSONValue  # as claimed by the author
    kind: str | None  # content.type
    json: str  # JSON.stringify(value), the wire form
    links: list[tuple[str, str]]
    received_us: int  # receive time in µs, strictly increasing: becomes the rowid


@dataclass(frozen=True, slots=True)
class Range:
    """Query bounds shared by the streams (ssb-db's gt/gte/lt/lte, limit, reverse)."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    limit: int | None = None
    reverse: bool = False

    def where(self, column: str, scale: float = 1) -> tuple[str, list[float]]:
        clauses, params = [], []
        for op, bound in ((">", self.gt), (">=", self.gte), ("<", self.lt), ("<=", self.lte)):
            if bound is not None:
                clauses.append(f"{column} {op} ?")
                params.append(bound * scale)
        return " AND ".join(clauses) or "1", params


_SELECT = "SELECT m.key, m.value, m.rowid / 1000.0 FROM messages m"
_US_PER_MS = 1000  # receive-time bounds are given in ms, rowids are µs
PAGE = 256  # rows per query when streaming
BULK_PAGE = 4096  # rows per query for an export, which nothing pauses
_RANGE_FROM = " FROM messages m JOIN feeds f ON m.feed = f.id"
_RANGE_WHERE = "f.author = ? AND m.sequence BETWEEN ? AND ?"


class Store:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock_fd: int | None = None
        if not readonly:
            self._lock_fd = _take_writer_lock(path.with_name(path.name + ".lock"))
        elif not path.exists():
            raise StoreError(f"no store at {path} yet (nothing has been published or imported)")
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        try:
            # One thread at a time uses the connection, but not always the same one: the ingest
            # path commits from its apply thread.
            self._db = sqlite3.connect(
                uri, uri=True, isolation_level=None, timeout=30, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                # NORMAL in WAL mode: a power cut may drop the last commits but never corrupts;
                # `append(durable=True)` (our own publishes) syncs before returning.
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._db.execute("PRAGMA cache_size = -16384")
                self._migrate()
            # Streams (history, log, …) read through their own connection: a cursor suspended
            # mid-stream then never holds the writer's connection, and WAL gives it a snapshot.
            self._read = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            self._read.execute("PRAGMA busy_timeout = 30000")
        except sqlite3.DatabaseError as err:
            self.close()
            raise StoreError(f"cannot open the store {path}: {err}") from None
        self._feed_rowids: dict[str, int] = {}

    def close(self) -> None:
        for name in ("_read", "_db"):
            connection = getattr(self, name, None)
            if connection is not None:
                connection.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"the store has schema {version}, newer than this ssbsync knows")
        for number in range(version, len(MIGRATIONS)):
            script = MIGRATIONS[number]
            self._db.executescript(
                f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number + 1}; COMMIT;"
            )

    # -- reads ---------------------------------------------------------------------------

    def feed_state(self, author: FeedId) -> FeedState | None:
        row = self._db.execute(
            "SELECT latest_key, sequence, latest_timestamp FROM feeds WHERE author = ?", (author,)
        ).fetchone()
        return None if row is None else FeedState(row[0], row[1], jsonv8.parse(row[2]))

    def key_at(self, author: FeedId, sequence: int) -> MsgId | None:
        row = self._db.execute(
            "SELECT m.key FROM messages m JOIN feeds f ON m.feed = f.id"
            " WHERE f.author = ? AND m.sequence = ?",
            (author, sequence),
        ).fetchone()
        return None if row is None else MsgId(row[0])

    def get(self, key: str) -> StoredMessage | None:
        row = self._read.execute(
            _SELECT + " WHERE m.key_hash = ? AND m.key = ?", (key_hash(key), key)
        ).fetchone()
        return None if row is None else StoredMessage(*row)

    def vector_clock(self) -> VectorClock:
        rows = self._read.execute("SELECT author, sequence FROM feeds")
        return VectorClock({FeedId(a): s for a, s in rows})

    def latest(self) -> Iterator[tuple[FeedId, int, jsonv8.JSONValue]]:
        for author, seq, ts in self._read.execute(
            "SELECT author, sequence, latest_timestamp FROM feeds ORDER BY id"
        ):
            yield FeedId(author), seq, jsonv8.parse(ts)

    def history(self, author: FeedId, window: Range) -> Iterator[StoredMessage]:
        where, params = window.where("m.sequence")
        sql = _SELECT + " JOIN feeds f ON m.feed = f.id"
        return self._messages(
            sql, f"f.author = ? AND {where}", [author, *params], window, "m.sequence"
        )

    def log(self, window: Range) -> Iterator[StoredMessage]:
        where, params = window.where("m.rowid", _US_PER_MS)
        return self._messages(_SELECT, where, params, window, "m.rowid")

    def by_feed_time(self, window: Range) -> Iterator[StoredMessage]:
        where, params = window.where("m.feed_time")
        sql = "SELECT m.key, m.value, m.rowid / 1000.0, m.feed_time FROM messages m"
        return self._messages(sql, where, params, window, "m.feed_time", "m.rowid")

    def by_type(self, kind: str, window: Range) -> Iterator[StoredMessage]:
        where, params = window.where("m.rowid", _US_PER_MS)
        return self._messages(
            _SELECT, f"m.type = ? AND {where}", [kind, *params], window, "m.rowid"
        )

    def links(
        self, source: str | None, dest: str | None, rel: str | None, window: Range
    ) -> Iterator[LinkRow]:
        clauses: list[str] = ["1"]
        params: list[object] = []
        if dest is not None:
            clauses.append("l.dest_hash = ?")
            params.append(key_hash(dest))
        for column, wanted in (("f.author", source), ("l.dest", dest), ("l.rel", rel)):
            if wanted is not None:
                clauses.append(f"{column} = ?")
                params.append(wanted)
        sql = (
            "SELECT f.author, l.dest, l.rel, m.key FROM links l"
            " JOIN messages m ON l.message = m.rowid JOIN feeds f ON m.feed = f.id"
        )
        for row in self._paged(sql, " AND ".join(clauses), params, window, ("l.rowid",)):
            yield LinkRow(*row)

    def _messages(
        self, select: str, where: str, params: Sequence[object], window: Range, *order: str
    ) -> Iterator[StoredMessage]:
        for row in self._paged(select, where, params, window, order):
            yield StoredMessage(*row)

    def _paged(
        self,
        select: str,
        where: str,
        params: Sequence[object],
        window: Range,
        order: tuple[str, ...],
        page: int = PAGE,
    ) -> Iterator[tuple[Any, ...]]:
        """Rows in `order` (unique together), one short query per page.

        No statement stays open while the caller holds a row: a stream that pauses (a slow
        peer) would otherwise pin the reader to an old snapshot and hide every later commit.
        """
        keys = ", ".join(order)
        direction, step = ("DESC", "<") if window.reverse else ("ASC", ">")
        sql = f"{select.replace(' FROM ', f', {keys} FROM ', 1)} WHERE {where}"
        order_by = " ORDER BY " + ", ".join(f"{k} {direction}" for k in order)
        remaining, after = window.limit, None
        while remaining is None or remaining > 0:
            size = page if remaining is None else min(page, remaining)
            bound = "" if after is None else f" AND ({keys}) {step} ({', '.join('?' * len(order))})"
            query = sql + bound + order_by + f" LIMIT {size}"
            rows = self._read.execute(query, [*params, *(after or ())]).fetchall()
            for row in rows:
                yield row[: -len(order)]
            if len(rows) < size:
                return
            after = rows[-1][-len(order) :]
            remaining = None if remaining is None else remaining - len(rows)

    # -- feed ranges (what bundles and sticks carry) ---------------------------------------

    def range_values(self, author: FeedId, first: int, last: int) -> Iterator[str]:
        """The stored JSON of messages `first`..`last` of a feed, in sequence order."""
        sql = "SELECT m.value" + _RANGE_FROM
        rows = self._paged(
            sql, _RANGE_WHERE, (author, first, last), Range(), ("m.sequence",), BULK_PAGE
        )
        for (value,) in rows:
            yield value

    def range_sizes(self, author: FeedId, first: int, last: int) -> Iterator[tuple[int, int]]:
        """(sequence, bytes of its stored JSON) for messages `first`..`last` of a feed."""
        sql = "SELECT m.sequence, length(CAST(m.value AS BLOB))" + _RANGE_FROM
        yield from self._paged(sql, _RANGE_WHERE, (author, first, last), Range(), ("m.sequence",))

    def range_blobs(self, author: FeedId, first: int, last: int) -> set[str]:
        """Blob ids linked from messages `first`..`last` of a feed."""
        rows = self._read.execute(
            "SELECT DISTINCT l.dest FROM links l JOIN messages m ON l.message = m.rowid"
            " JOIN feeds f ON m.feed = f.id WHERE " + _RANGE_WHERE + " AND l.dest LIKE '&%'",
            (author, first, last),
        )
        return {dest for (dest,) in rows}

    def last_received_us(self) -> int:
        row = self._db.execute("SELECT max(rowid) FROM messages").fetchone()
        return int(row[0] or 0)

    def count_messages(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM messages").fetchone()[0])

    def check(self) -> list[str]:
        """Consistency problems between the tables (empty when all is well)."""
        problems = [r[0] for r in self._db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        bad_heads = self._db.execute(
            "SELECT f.author FROM feeds f LEFT JOIN messages m"
            " ON m.feed = f.id AND m.sequence = f.sequence AND m.key = f.latest_key"
            " WHERE m.rowid IS NULL"
            " OR (SELECT max(sequence) FROM messages WHERE feed = f.id) != f.sequence"
            " OR (SELECT count(*) FROM messages WHERE feed = f.id) != f.sequence"
        ).fetchall()
        problems += [f"feed {a}: head does not match its messages" for (a,) in bad_heads]
        return problems

    # -- the one write (called by the ingest path only) ------------------------------------

    def append(
        self, batch: list[NewMessage], heads: dict[FeedId, FeedState], *, durable: bool = False
    ) -> None:
        """Store `batch` and the new feed heads in one transaction: all of it or none.

        `durable`: on disk before returning. Needed for our own messages: if a power cut
        dropped one that a peer already has, our next publish would fork our own feed.
        """
        if not batch:
            return
        db = self._db
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        db.execute("BEGIN IMMEDIATE")
        try:
            message_rows = [self._message_row(new) for new in batch]
            link_rows = [
                (n.received_us, key_hash(dest), rel, dest) for n in batch for rel, dest in n.links
            ]
            db.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?)", message_rows)
            db.executemany("INSERT INTO links VALUES (?,?,?,?)", link_rows)
            db.executemany(
                "UPDATE feeds SET sequence = ?, latest_key = ?, latest_timestamp = ? WHERE id = ?",
                [
                    (h.sequence, h.id, jsonv8.stringify(h.timestamp), self._feed_rowid(a))
                    for a, h in heads.items()
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._feed_rowids.clear()
            raise

    def _message_row(self, new: NewMessage) -> tuple[object, ...]:
        # ssb-db `resolveTimestamp`: trust the claim unless it is missing or in the future.
        received = new.received_us / _US_PER_MS
        claimed = new.timestamp
        is_number = type(claimed) in (int, float)
        feed_time = claimed if is_number and claimed and claimed <= received else received
        return (
            new.received_us,
            key_hash(new.key),
            new.key,
            self._feed_rowid(new.author),
            new.sequence,
            feed_time,
            new.kind,
            new.json,
        )

    def _feed_rowid(self, author: FeedId) -> int:
        rowid = self._feed_rowids.get(author)
        if rowid is None:
            self._db.execute(
                "INSERT OR IGNORE INTO feeds (author, sequence, latest_key, latest_timestamp)"
                " VALUES (?, 0, '', 'null')",
                (author,),
            )
            found = self._db.execute("SELECT id FROM feeds WHERE author = ?", (author,))
            rowid = self._feed_rowids[author] = found.fetchone()[0]
        return rowid


def key_hash(key: str) -> int:
    """The first 8 bytes of an id's key or hash, as a signed 64-bit integer (any sigil)."""
    try:
        raw = binascii.a2b_base64(key[1:13])
    except (binascii.Error, ValueError):
        return 0
    return int.from_bytes(raw[:8].ljust(8, b"\0"), "big", signed=True)


def _take_writer_lock(lock_path: Path) -> int:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise StoreError(
            f"the store is in use by process {holder} (a running node or another command);"
            " stop it or wait for it to finish"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
