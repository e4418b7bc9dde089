"""Blob wants and haves between peers, as a pure reducer (PROTOCOL.md §8, "Protocol").

ssb-blobs 1.2.2 (`inject.js`) keeps one want map and one createWants stream per peer. Every item
on those streams is `{blob id: n}`: n ≤ 0 is a want with a hop count (−1 "I want it", −2 "a peer
of mine wants it", …), n > 0 is a have carrying the size in bytes. This module decides, from
what peers say and what we hold, what to tell whom and where to fetch from; the node does the
I/O (streams, files) and reports back with `added` / `fetch_failed`.

Rules (ssb-blobs' behaviour):
  * a peer's want for a blob we hold → a have `{id: size}` to that peer only;
  * a peer's want `n` for a blob we lack → our want becomes n−1, if |n−1| ≤ sympathy and it is
    closer than what we had, and is broadcast to every peer (so −1 and −2 are forwarded, −3 not);
  * a peer's have for a blob we want, with size < max, and no fetch running → fetch from it;
  * a new blob of ours (added or fetched) → a have to every peer; its want and waiters end;
  * a blob we push is announced as −1 until `pushy` peers said they have it.

Invariants: every value in `wants` is ≤ −1; `fetching[id]` is a connected peer that announced
the blob; a peer is in `available` only while connected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ssbsync.core.refs import BlobId, is_blob_id

DEFAULT_MAX = 5 * 1024 * 1024  # ssb-blobs `max`
DEFAULT_SYMPATHY = 3  # ssb-blobs `sympathy`: farthest hop count we act on
DEFAULT_PUSHY = 3  # ssb-blobs `pushy`: a pushed blob is done when this many peers hold it
# Bounds against a peer that floods us with ids (ssb-blobs has none): wants we take on for
# others, and haves we remember per peer for blobs nobody wants yet.
MAX_FORWARDED_WANTS = 10_000
MAX_HAVES_PER_PEER = 10_000

WantMap = dict[BlobId, int]


@dataclass(frozen=True)
class SendTo:
    """Put this item on the createWants stream we serve to `peer`."""

    peer: str
    item: WantMap


@dataclass(frozen=True)
class Broadcast:
    """Put this item on every createWants stream we serve."""

    item: WantMap


@dataclass(frozen=True)
class Fetch:
    """Call `blobs.get({key: blob, max})` on `peer` and store what arrives (hash-checked)."""

    peer: str
    blob: BlobId


@dataclass(frozen=True)
class Pushed:
    """A pushed blob is now held by enough peers."""

    blob: BlobId
    peers: tuple[str, ...]


Action = SendTo | Broadcast | Fetch | Pushed


def parse_item(item: object) -> WantMap:
    """The entries of a createWants item that ssb-blobs would act on (blob id → integer);
    anything else in it is ignored, as JS ignores it."""
    if not isinstance(item, dict):
        return {}
    return {
        BlobId(key): value
        for key, value in item.items()
        if is_blob_id(key) and isinstance(value, int) and not isinstance(value, bool)
    }


@dataclass
class BlobWants:
    max_size: int = DEFAULT_MAX
    sympathy: int = DEFAULT_SYMPATHY
    pushy: int = DEFAULT_PUSHY
    wants: WantMap = field(default_factory=dict)
    available: dict[str, dict[BlobId, int]] = field(default_factory=dict)
    fetching: dict[BlobId, str] = field(default_factory=dict)
    pushing: dict[BlobId, set[str]] = field(default_factory=dict)

    # -- peers ---------------------------------------------------------------------------

    def connected(self, peer: str) -> None:
        """A session with `peer` began: we may fetch from it once it announces haves."""
        self.available.setdefault(peer, {})

    def first_item(self) -> WantMap:
        """The first item of every createWants stream we serve: our wants, plus what we
        push (as −1); possibly empty."""
        return {**self.wants, **dict.fromkeys(self.pushing, -1)}

    def disconnected(self, peer: str) -> list[Action]:
        """The peer is gone: forget what it holds; fetches from it fail separately."""
        self.available.pop(peer, None)
        return []

    # -- what peers say ------------------------------------------------------------------

    def received(
        self, peer: str, item: WantMap, local_sizes: Mapping[BlobId, int | None]
    ) -> list[Action]:
        """One createWants item from `peer`. `local_sizes` holds our size (None: absent) of
        every blob the item wants; the node looks them up before calling."""
        actions: list[Action] = []
        haves: WantMap = {}
        for blob, value in item.items():
            if value <= 0:
                size = local_sizes.get(blob)
                if size:  # ssb-blobs answers only a non-zero size (the empty blob is "wanted")
                    haves[blob] = size
                else:
                    actions += self._wanted_by_peer(blob, value - 1)
            else:
                actions += self.has(peer, blob, value)
        if haves:
            actions.insert(0, SendTo(peer, haves))
        return actions

    def has(self, peer: str, blob: BlobId, size: int) -> list[Action]:
        """`peer` holds `blob` (createWants have, or the legacy `changes`/`has` answers)."""
        held = self.available.setdefault(peer, {})
        if blob in self.wants or blob in held or len(held) < MAX_HAVES_PER_PEER:
            held[blob] = size
        actions: list[Action] = []
        holders = self.pushing.get(blob)
        if holders is not None:
            holders.add(peer)
            if len(holders) >= self.pushy:
                del self.pushing[blob]
                actions.append(Pushed(blob, tuple(sorted(holders))))
        if blob in self.wants and blob not in self.fetching and size < self.max_size:
            actions += self._fetch(peer, blob)
        return actions

    def _wanted_by_peer(self, blob: BlobId, hops: int) -> list[Action]:
        if abs(hops) > self.sympathy:
            return []  # too far away to care (ssb-blobs' "sorry!")
        current = self.wants.get(blob)
        if current is not None and current >= hops:
            return []
        if current is None and len(self.wants) >= MAX_FORWARDED_WANTS:
            return []  # a flood of wants: ours still count, more of theirs do not
        self.wants[blob] = hops
        actions: list[Action] = [Broadcast({blob: hops})]
        holder = self._holder(blob)
        if holder is not None:
            actions += self._fetch(holder, blob)
        return actions

    # -- our own requests ----------------------------------------------------------------

    def want(self, blob: BlobId) -> list[Action]:
        """`blobs.want`: fetch from a peer known to hold it, else ask every peer (−1)."""
        holder = self._holder(blob)
        if holder is not None:
            self.wants[blob] = -1
            return self._fetch(holder, blob)
        self.wants[blob] = -1
        return [Broadcast({blob: -1})]

    def push(self, blob: BlobId) -> list[Action]:
        """`blobs.push`: announce as −1 until `pushy` peers hold it."""
        self.pushing.setdefault(blob, set())
        return [Broadcast({blob: -1})]

    # -- results of our I/O --------------------------------------------------------------

    def added(self, blob: BlobId, size: int) -> list[Action]:
        """A blob is now stored here (added locally or fetched): tell every peer."""
        self.wants.pop(blob, None)
        self.fetching.pop(blob, None)
        return [Broadcast({blob: size})]

    def fetch_failed(self, peer: str, blob: BlobId) -> list[Action]:
        """A fetch ended without the blob (error, wrong hash, too large): try another holder."""
        if self.fetching.get(blob) == peer:
            del self.fetching[blob]
        self.available.get(peer, {}).pop(blob, None)
        if blob not in self.wants:
            return []
        holder = self._holder(blob)
        if holder is not None:
            return self._fetch(holder, blob)
        return [Broadcast({blob: self.wants[blob]})]  # nobody else has it: ask again

    # -- helpers -------------------------------------------------------------------------

    def _holder(self, blob: BlobId) -> str | None:
        for peer, held in self.available.items():
            size = held.get(blob)
            if size is not None and size < self.max_size:
                return peer
        return None

    def _fetch(self, peer: str, blob: BlobId) -> list[Action]:
        if blob in self.fetching or peer not in self.available:
            return []
        self.fetching[blob] = peer
        return [Fetch(peer, blob)]
