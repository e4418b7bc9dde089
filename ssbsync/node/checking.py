"""The stateless half of ingest: parse, check, verify, index one batch (PROTOCOL.md §5.7).

Runs in worker processes for large imports (each has its own GIL, so parsing, V8
serialization and Ed25519 verification use every core) and inline for small batches. Its
result is deliberately small and flat, because it crosses a process boundary.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import NamedTuple

from ssbsync.core import jsonv8, links
from ssbsync.core.errors import Reason, RemoteProtocolError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.message import FeedState, prepare, verify_signature
from ssbsync.core.refs import FeedId, MsgId


# NamedTuples, not dataclasses: they cross a process boundary by the thousand, and tuples
# pickle several times faster.
class Rejection(NamedTuple):
    reason: Reason
    detail: str
    key: str | None = None
    author: str | None = None
    sequence: int | None = None


class Checked(NamedTuple):
    """A message that passed every stateless rule; the chain rules are still to come."""

    key: MsgId
    author: FeedId
    sequence: int
    previous: JSONValue
    timestamp: JSONValue
    json: str  # JSON.stringify(value): the wire form, what the store keeps and serves
    kind: str | None  # content.type of plain-text content
    links: list[tuple[str, str]]
    signature_ok: bool

    def state(self) -> FeedState:
        return FeedState(self.key, self.sequence, self.timestamp)

    def rejection(self, reason: Reason, detail: str) -> Rejection:
        return Rejection(reason, detail, self.key, self.author, self.sequence)


def exit_with_parent() -> None:
    """Worker-process initializer: die when the importing process dies.

    A SIGKILLed parent otherwise leaves spawn workers blocked on their result pipe forever
    (CPython issue #111873).
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def check_batch(values: list[JSONValue], hmac_key: bytes | None) -> list[Checked | Rejection]:
    """Each value (parsed JSON, or the JSON text of one message) checked and verified."""
    return [_check(value, hmac_key) for value in values]


def _check(value: JSONValue, hmac_key: bytes | None) -> Checked | Rejection:
    try:
        if isinstance(value, str | bytes):
            value = jsonv8.parse(value)
        prepared = prepare(value, hmac_key)
    except jsonv8.JSONParseError as err:
        return Rejection(Reason.BAD_JSON, str(err))
    except RemoteProtocolError as err:
        return _describe(value, err)
    msg = prepared.message
    content = msg.content
    kind = content.get("type") if isinstance(content, dict) else None
    return Checked(
        key=msg.key,
        author=msg.author,
        sequence=msg.sequence,
        previous=msg.previous,
        timestamp=msg.timestamp,
        json=msg.json,
        kind=kind if isinstance(kind, str) else None,
        links=links.content_links(content),
        signature_ok=verify_signature(prepared),
    )


def _describe(value: JSONValue, err: RemoteProtocolError) -> Rejection:
    if not isinstance(value, dict):
        return Rejection(err.reason, err.detail)
    author, seq = value.get("author"), value.get("sequence")
    return Rejection(
        err.reason,
        err.detail,
        None,
        author if isinstance(author, str) else None,
        seq if type(seq) is int else None,
    )
