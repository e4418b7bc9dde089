"""`ssbsync bundle verify`: check a bundle without importing it (docs/bundle-format.md).

Everything the import would check, except against the store: the structure and trailer, every
message's signature and its chain inside the bundle (each feed's range starts where the header
says, with no gap or fork), and every blob's hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import BinaryIO

from ssbsync.bundle import BundleReader, Header, MessageRecord
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId, blob_id
from ssbsync.node.bundles import OnProgress, Progress
from ssbsync.node.checking import Rejection, check_batch


@dataclass
class VerifySummary:
    header: Header
    messages: int = 0
    blobs: int = 0
    problems: list[str] = field(default_factory=list)
    damage: str | None = None

    @property
    def ok(self) -> bool:
        return self.damage is None and not self.problems

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "writer": self.header.writer,
            "created": self.header.created_ms,
            "feeds": len(self.header.feeds),
            "messages": self.messages,
            "blobs": self.blobs,
            "problems": list(self.problems[:50]),
            "damage": self.damage,
        }


def verify_bundle(
    source: BinaryIO,
    *,
    network_key: bytes,
    hmac_key: bytes | None,
    progress: OnProgress | None = None,
) -> VerifySummary:
    """Check a bundle without importing: structure, trailer, every message's signature and
    chain within the bundle (each range starts where the header says, with no gaps or forks),
    and every blob's hash. `BundleError` when it has no usable header."""
    reader = BundleReader(source, network_key)
    summary = VerifySummary(reader.header)
    chains = _ChainCheck(reader.header, hmac_key, summary.problems)
    pending: list[JSONValue] = []
    digest: tuple[str, hashlib._Hash] | None = None
    for record in reader.records():
        if isinstance(record, MessageRecord):
            pending.append(record.json)
            if len(pending) >= 500:
                chains.check(pending)
                summary.messages += len(pending)
                pending = []
                if progress:
                    progress(Progress("verify", summary.messages, None, "messages"))
            continue
        if record.offset == 0:
            digest = (record.blob_id, hashlib.sha256())
        if digest is not None and digest[0] == record.blob_id:
            digest[1].update(record.data)
            if record.offset + len(record.data) >= record.size:
                summary.blobs += 1
                if blob_id(digest[1].digest()) != record.blob_id:
                    summary.problems.append(f"blob {record.blob_id}: content does not match its id")
    chains.check(pending)
    summary.messages += len(pending)
    chains.finish()
    summary.damage = reader.damage
    return summary


class _ChainCheck:
    """Each feed of the bundle must continue itself: sequence +1 and `previous` = last id."""

    def __init__(self, header: Header, hmac_key: bytes | None, problems: list[str]) -> None:
        self._hmac_key = hmac_key
        self._expected = {r.feed: r for r in header.feeds}
        self._last: dict[FeedId, tuple[int, str]] = {}
        self._problems = problems

    def check(self, values: list[JSONValue]) -> None:
        for item in check_batch(values, self._hmac_key):
            if isinstance(item, Rejection):
                self._problems.append(
                    f"{item.author or 'message'} seq {item.sequence}: {item.detail}"
                )
                continue
            if not item.signature_ok:
                self._problems.append(
                    f"{item.author} seq {item.sequence}: the signature does not verify"
                )
            last = self._last.get(item.author)
            expected = self._expected.get(item.author)
            if last is None:
                if expected is None or item.sequence != expected.first:
                    self._problems.append(
                        f"{item.author} seq {item.sequence}: not in the header's ranges"
                    )
            elif item.sequence != last[0] + 1 or item.previous != last[1]:
                self._problems.append(
                    f"{item.author} seq {item.sequence}: does not follow seq {last[0]}"
                )
            self._last[item.author] = (item.sequence, item.key)

    def finish(self) -> None:
        for feed, expected in self._expected.items():
            got = self._last.get(feed, (expected.first - 1, ""))[0]
            if got != expected.last:
                self._problems.append(
                    f"{feed}: the header promises up to seq {expected.last}, found {got}"
                )
