"""Private messages in the node: boxing what we publish, opening what is addressed to us,
and showing it — to the master only — as ssb-db 20 does (PROTOCOL.md §9).

Opening happens once, after each commit (and on start, for anything a crash left untried):
the index table `private_messages` holds every message we could open, with its content and
unbox key. A high-water mark (`private_progress.tried_up_to`, a message rowid) says what has
been tried; it moves in the same transaction as the rows it covers, so a crash loses nothing.
Only messages with no plain `type` (content strings) are candidates, found through the type
index, so bulk ingest of public messages costs two small reads per commit and no write.

Nothing here changes what peers are served: streams show opened content only when the
caller asks with `private: true`, and only master-only methods accept that option.
"""

from __future__ import annotations

import heapq
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

from ssbsync.core import jsonv8
from ssbsync.core import privatebox as pb
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId, is_msg_id
from ssbsync.node.session import CallError, Method
from ssbsync.node.store import PAGE, Range, StoredMessage, key_hash

log = logging.getLogger("ssbsync.node.private")

_US_PER_MS = 1000  # receive-time bounds are ms, rowids µs (as in store.py)
# Valid messages end with `"content":…,"signature":…` (§5.1), so a box shows as this text.
_BOXED = pb.SUFFIX + '","signature":'
_CANDIDATES = "SELECT rowid, value FROM messages WHERE type IS NULL AND rowid > ?"
INDEX_PAGE = 2000  # candidates tried per transaction


def autobox(
    content: JSONValue, us: FeedId, random_bytes: Callable[[int], bytes] = os.urandom
) -> JSONValue:
    """What `publish` signs: `content`, or its box when `content.recps` asks for one.

    ssb-db 20 `autobox`: a falsy `recps` means public; a string becomes a one-element array
    (inside the encrypted content too); otherwise it must be a non-empty array of 1..7 feed
    ids (ssb-private1). ssb-server boxes for exactly `content.recps`, so an author who is not
    listed cannot read their own message again. We also box for ourselves when we are not
    listed and a slot is free (the count allows 7): the extra slot changes nothing for the
    listed recipients, and `content.recps` stays as the author wrote it. With 7 others
    listed we box for them only, as ssb-server does.
    """
    if not isinstance(content, dict) or _falsy(content.get("recps")):
        return content
    if isinstance(content["recps"], str):
        content = {**content, "recps": [content["recps"]]}
    recipients = pb.recipients_of(content)
    assert recipients is not None
    if us not in recipients and len(recipients) < pb.MAX_RECIPIENTS:
        recipients = [*recipients, us]
    return pb.box_content(content, recipients, pb.BoxRandomness.draw(random_bytes))


def _falsy(value: JSONValue) -> bool:
    """JavaScript's falsy values among JSON values (an empty array or object is truthy)."""
    if isinstance(value, bool):
        return not value
    return value is None or value == "" or (isinstance(value, int | float) and value == 0)


def truthy(value: JSONValue) -> bool:
    return not _falsy(value)


def get_options(key: JSONValue) -> dict[str, JSONValue]:
    """`get`'s argument as options: an id, `{id, private, unbox, meta}`, or a message link
    with `?unbox=<key>` (ssb-db create.js: that means `{id, private: true, unbox, meta}`)."""
    if isinstance(key, dict):
        return dict(key)
    if isinstance(key, str) and len(key) > 52 and "?" in key:
        link, _, query = key.partition("?")
        params = urllib.parse.parse_qs(query)
        if is_msg_id(link) and "unbox" in params:
            found: dict[str, JSONValue] = {"id": link, "private": True}
            found["unbox"] = params["unbox"][0]
            found["meta"] = params["meta"][0] if "meta" in params else None
            return found
    return {"id": key}


def decorated(value: dict[str, JSONValue], opened: pb.Unboxed) -> dict[str, JSONValue]:
    """A message value as ssb-db 20 shows an opened one (autobox.js `decorate`): content
    replaced, the ciphertext kept in `meta.original.content`, plus the old top-level
    `cyphertext`, `private` and `unbox` fields, in that order."""
    ciphertext = value.get("content")
    shown = {**value, "content": opened.content}
    shown["meta"] = {
        "original": {"content": ciphertext},
        "private": True,
        "unbox": opened.unbox_key_text,
    }
    shown["cyphertext"] = ciphertext
    shown["private"] = True
    shown["unbox"] = opened.unbox_key_text
    return shown


class PrivateMessages:
    """The index of messages we opened, in the store's file, through its own connection
    (so it never interleaves with the ingest path's transactions)."""

    def __init__(self, database: Path, keys: Keypair) -> None:
        self._secret = pb.curve_secret_key(keys.secret)
        self._db = sqlite3.connect(
            database, isolation_level=None, timeout=30, check_same_thread=False
        )
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._lock = threading.Lock()  # one thread at a time on the connection

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- opening ---------------------------------------------------------------------------

    def index_new(self) -> int:
        """Try every message stored since the last call; returns how many we could open.

        A failure (disk full, say) is logged, not raised: it must not fail the commit that
        called us, and the mark did not move, so the next call tries the same messages.
        """
        try:
            return self._index_new()
        except sqlite3.Error as err:
            log.warning("could not index private messages (will retry): %s", err)
        except Exception:  # a bug here must not undo a commit's report or stop the node
            log.exception("could not index private messages (will retry)")
        return 0

    def _index_new(self) -> int:
        with self._lock:
            mark = self._db.execute("SELECT tried_up_to FROM private_progress").fetchone()[0]
            if self._db.execute(_CANDIDATES + " LIMIT 1", (mark,)).fetchone() is None:
                return 0  # nothing new without a plain type: nothing to write either
            opened, finished = 0, False
            while not finished:  # a page per transaction: a long backlog is not all in memory
                count, finished = self._index_page()
                opened += count
            return opened

    def _index_page(self) -> tuple[int, bool]:
        """Open the next page of candidates and move the mark past them, in one transaction;
        (how many opened, whether that was the last page)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            mark = db.execute("SELECT tried_up_to FROM private_progress").fetchone()[0]
            rows = db.execute(
                _CANDIDATES + f" ORDER BY rowid LIMIT {INDEX_PAGE}", (mark,)
            ).fetchall()
            finished = len(rows) < INDEX_PAGE
            if finished:  # every message stored so far has now been tried
                top = db.execute("SELECT max(rowid) FROM messages").fetchone()[0] or 0
            else:
                top = rows[-1][0]
            opened = [entry for rowid, value in rows if (entry := self._open(rowid, value))]
            db.executemany("INSERT OR REPLACE INTO private_messages VALUES (?,?,?,?)", opened)
            db.execute("UPDATE private_progress SET tried_up_to = ?", (top,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(opened), finished

    def _open(self, rowid: int, value_json: str) -> tuple[int, str, str | None, str] | None:
        if _BOXED not in value_json:
            return None  # cheap filter: the content string is not a ".box"
        value = jsonv8.parse(value_json)  # stored messages are valid JSON objects
        opened = pb.open_content(
            value.get("content") if isinstance(value, dict) else None, self._secret
        )
        if opened is None:
            return None
        kind = opened.content.get("type")
        text = jsonv8.stringify(opened.content)
        return rowid, opened.unbox_key_text, kind if isinstance(kind, str) else None, text

    # -- reading ---------------------------------------------------------------------------

    def lookup(self, key: str) -> pb.Unboxed | None:
        """What we opened of message `key`, if anything."""
        with self._lock:
            row = self._db.execute(
                "SELECT p.content, p.unbox_key FROM private_messages p"
                " JOIN messages m ON m.rowid = p.message WHERE m.key_hash = ? AND m.key = ?",
                (key_hash(key), key),
            ).fetchone()
        if row is None:
            return None
        content = jsonv8.parse(row[0])
        assert isinstance(content, dict)
        return pb.Unboxed(content, pb.parse_unbox_key(row[1]))

    def shown(self, rows: Iterable[StoredMessage]) -> Iterator[StoredMessage]:
        """`rows` with every message we opened shown opened (the `private: true` option)."""
        for row in rows:
            yield self.shown_one(row)

    def shown_one(self, row: StoredMessage, unbox_key: JSONValue = None) -> StoredMessage:
        """`row` shown opened if we opened it, or if `unbox_key` (base64, someone shared
        it) opens it; else as stored. Raises ValueError for a malformed key."""
        if '"content":"' not in row.value_json:
            return row  # public content: nothing to open
        opened = self.lookup(row.key)
        value = jsonv8.parse(row.value_json)
        assert isinstance(value, dict)
        if opened is None and unbox_key is not None:
            key = pb.parse_unbox_key(unbox_key)
            opened = pb.open_content_with_key(value.get("content"), key)
        if opened is None:
            return row
        return replace(row, value_json=jsonv8.stringify(decorated(value, opened)))

    def with_type(
        self, public: Iterable[StoredMessage], kind: str, window: Range
    ) -> Iterator[StoredMessage]:
        """messagesByType: the public rows of `kind` merged, in receive order, with the
        private ones whose opened content has that type (ssb-db indexes opened content)."""
        private = self._by_type(kind, window)
        merged = heapq.merge(public, private, key=lambda r: r.received, reverse=window.reverse)
        return islice(merged, window.limit)

    def _by_type(self, kind: str, window: Range) -> Iterator[StoredMessage]:
        where, params = window.where("m.rowid", _US_PER_MS)
        order = "DESC" if window.reverse else "ASC"
        step = "<" if window.reverse else ">"
        after: int | None = None
        while True:
            bound = "" if after is None else f" AND m.rowid {step} {after}"
            with self._lock:
                rows = self._db.execute(
                    "SELECT m.key, m.value, m.rowid / 1000.0, m.rowid FROM private_messages p"
                    " JOIN messages m ON m.rowid = p.message"
                    f" WHERE p.type = ? AND {where}{bound} ORDER BY m.rowid {order} LIMIT {PAGE}",
                    [kind, *params],
                ).fetchall()
            for key, value, received, _ in rows:
                yield StoredMessage(key, value, received)
            if len(rows) < PAGE:
                return
            after = rows[-1][3]


# -- `private.unbox`: the RPC of the ssb-private plugin (ssb-server ≤ 15) ----------------------


def unbox_call(keys: Keypair, target: Any) -> JSONValue:
    """`private.unbox(ciphertext | msg)`: a content string's content, or a message
    `{key, value, timestamp}` with its value opened (as ssb-private shapes it); null when it
    is not for us. ssb-server 16 has no `private` plugin; this serves clients written for it.
    Raises ValueError for an argument that is neither.
    """
    secret = pb.curve_secret_key(keys.secret)
    if isinstance(target, str):
        text = target if "." in target else target + pb.SUFFIX
        opened = pb.open_content(text, secret)
        return None if opened is None else opened.content
    value = target.get("value") if isinstance(target, dict) else None
    if not isinstance(value, dict) or not isinstance(value.get("content"), str):
        raise ValueError("private.unbox takes a ciphertext string or a message {key, value}")
    opened = pb.open_content(value["content"], secret)
    if opened is None:
        return None
    fields = ("previous", "author", "sequence", "timestamp", "hash")
    shown: dict[str, JSONValue] = {name: value.get(name) for name in fields}
    shown |= {"content": opened.content, "private": True}
    return {"key": target.get("key"), "value": shown, "timestamp": target.get("timestamp")}


def methods(keys: Keypair) -> dict[tuple[str, ...], Method]:
    """Entries for the node's method table (master only: not in methods.ANONYMOUS)."""

    async def unbox(args: list[Any]) -> JSONValue:
        if not args:
            raise CallError("private.unbox needs a ciphertext or a message")
        try:
            return unbox_call(keys, args[0])
        except ValueError as err:
            raise CallError(str(err)) from None

    return {("private", "unbox"): Method("async", unbox)}
